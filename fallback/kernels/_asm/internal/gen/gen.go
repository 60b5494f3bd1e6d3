// Package gen holds the pieces the kernel generators share: constants,
// fp16 broadcasts, horizontal sums, and the 8x8 dword transpose that builds
// row-interleaved panels.
package gen

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

// Header sets the build constraint every generated file carries: the
// purego tag selects the pure-Go kernels instead.
func Header() {
	ConstraintExpr("!purego")
}

var consts = map[string]Mem{}

// constant returns the read-only constant name, writing it with data the
// first time it is asked for; n elements of size bytes each, element i
// being op(i).
func constant(name string, n, size int, op func(i int) Constant) Mem {
	if m, ok := consts[name]; ok {
		return m
	}
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < n; i++ {
		DATA(size*i, op(i))
	}
	consts[name] = m
	return m
}

// Splat8 returns a 32-byte read-only constant holding v in every byte.
func Splat8(name string, v byte) Mem {
	return constant(name, 32, 1, func(int) Constant { return U8(v) })
}

// Splat16 returns a 32-byte read-only constant holding v in every word.
func Splat16(name string, v uint16) Mem {
	return constant(name, 16, 2, func(int) Constant { return U16(v) })
}

// Splat32 returns a 32-byte read-only constant holding v in every dword.
func Splat32(name string, v uint32) Mem {
	return constant(name, 8, 4, func(int) Constant { return U32(v) })
}

// Splat32f returns a 32-byte read-only constant holding v in every float32.
func Splat32f(name string, v float32) Mem {
	return constant(name, 8, 4, func(int) Constant { return F32(v) })
}

// Bytes returns a read-only constant with the given bytes.
func Bytes(name string, b []byte) Mem {
	return constant(name, len(b), 1, func(i int) Constant { return U8(b[i]) })
}

// Bytes32 returns a 32-byte read-only constant with the given bytes.
func Bytes32(name string, b [32]byte) Mem { return Bytes(name, b[:]) }

// BroadcastFP16 loads the half at m and returns it widened to float32 in
// all eight lanes of a YMM register.
func BroadcastFP16(m Mem) reg.VecVirtual {
	x := XMM()
	VPBROADCASTW(m, x)
	y := YMM()
	VCVTPH2PS(x, y)
	return y
}

// PrefetchAhead is the distance at which the one-token kernels prefetch
// the weights they will read. Streaming from memory, the hardware
// prefetchers stop at each 4 KB page boundary; measured on the
// development machine (a VM), prefetching this far ahead raised
// matrix-vector bandwidth by 10 to 50 percent.
const PrefetchAhead = 4096

// Prefetch emits PREFETCHT0 for each 64-byte line of the n bytes at
// base+disp.
func Prefetch(base reg.Register, disp, n int) {
	for off := 0; off < n; off += 64 {
		PREFETCHT0(Mem{Base: base, Disp: disp + off})
	}
}

// HsumPS reduces the eight float32 lanes of y into the low lane of an XMM
// register (the order of llama.cpp's hsum_float_8).
func HsumPS(y reg.VecVirtual) reg.VecVirtual {
	hi := XMM()
	VEXTRACTF128(Imm(1), y, hi)
	s := XMM()
	VADDPS(y.AsX(), hi, s)
	t := XMM()
	VMOVHLPS(s, s, t)
	VADDPS(t, s, s)
	VMOVSHDUP(s, t)
	VADDSS(t, s, s)
	return s
}

// Transpose8x8 transposes eight rows of eight dwords: out[g] holds dword g
// of every row, row r in dword r.
func Transpose8x8(in [8]reg.VecVirtual) [8]reg.VecVirtual {
	var t [8]reg.VecVirtual
	for i := 0; i < 8; i += 2 {
		t[i], t[i+1] = YMM(), YMM()
		VPUNPCKLDQ(in[i+1], in[i], t[i])
		VPUNPCKHDQ(in[i+1], in[i], t[i+1])
	}
	// u[k] for rows 0-3 (k<4) and 4-7 (k>=4): dwords k%4 and 4+k%4.
	var u [8]reg.VecVirtual
	for h := 0; h < 2; h++ {
		a, b, c, d := t[4*h], t[4*h+1], t[4*h+2], t[4*h+3]
		u[4*h], u[4*h+1], u[4*h+2], u[4*h+3] = YMM(), YMM(), YMM(), YMM()
		VPUNPCKLQDQ(c, a, u[4*h])
		VPUNPCKHQDQ(c, a, u[4*h+1])
		VPUNPCKLQDQ(d, b, u[4*h+2])
		VPUNPCKHQDQ(d, b, u[4*h+3])
	}
	var out [8]reg.VecVirtual
	for k := 0; k < 4; k++ {
		out[k], out[k+4] = YMM(), YMM()
		VPERM2I128(Imm(0x20), u[k+4], u[k], out[k])
		VPERM2I128(Imm(0x31), u[k+4], u[k], out[k+4])
	}
	return out
}

// RowAddr addresses row r (0..7) of a panel of rows spaced stride bytes
// apart, given p0 (row 0), p4 (row 4), stride and stride3 = 3*stride.
func RowAddr(r int, p0, p4, stride, stride3 reg.Register, disp int) Mem {
	base := p0
	if r >= 4 {
		base, r = p4, r-4
	}
	switch r {
	case 0:
		return Mem{Base: base, Disp: disp}
	case 1:
		return Mem{Base: base, Index: stride, Scale: 1, Disp: disp}
	case 2:
		return Mem{Base: base, Index: stride, Scale: 2, Disp: disp}
	}
	return Mem{Base: base, Index: stride3, Scale: 1, Disp: disp}
}

// Nth addresses item i (< 4) of items spaced stride bytes from base, with
// stride3 = 3*stride (nil when i < 3).
func Nth(i int, base, stride, stride3 reg.Register, disp int) Mem {
	switch i {
	case 0:
		return Mem{Base: base, Disp: disp}
	case 1:
		return Mem{Base: base, Index: stride, Scale: 1, Disp: disp}
	case 2:
		return Mem{Base: base, Index: stride, Scale: 2, Disp: disp}
	}
	return Mem{Base: base, Index: stride3, Scale: 1, Disp: disp}
}

// ScaleMinK4 unpacks the 12 scale bytes at m (a Q4_K/Q5_K super-block's
// scales field) into an XMM register: bytes 0-7 the 6-bit scales, bytes
// 8-15 the 6-bit mins, as ggml's get_scale_min_k4 defines them.
func ScaleMinK4(m Mem) reg.VecVirtual {
	a0, a1, a2 := GP32(), GP32(), GP32()
	MOVL(m, a0)
	MOVL(m.Offset(4), a1)
	MOVL(m.Offset(8), a2)
	u1, u3, t := GP32(), GP32(), GP32()
	// u3 = ((a2 >> 4) & 0x0f0f0f0f) | (((a1 >> 6) & 0x03030303) << 4)
	MOVL(a2, u3)
	SHRL(Imm(4), u3)
	ANDL(U32(0x0f0f0f0f), u3)
	MOVL(a1, t)
	SHRL(Imm(6), t)
	ANDL(U32(0x03030303), t)
	SHLL(Imm(4), t)
	ORL(t, u3)
	// u1 = (a2 & 0x0f0f0f0f) | (((a0 >> 6) & 0x03030303) << 4)
	MOVL(a2, u1)
	ANDL(U32(0x0f0f0f0f), u1)
	MOVL(a0, t)
	SHRL(Imm(6), t)
	ANDL(U32(0x03030303), t)
	SHLL(Imm(4), t)
	ORL(t, u1)
	ANDL(U32(0x3f3f3f3f), a0) // scales 0-3
	ANDL(U32(0x3f3f3f3f), a1) // mins 0-3
	sx := XMM()
	VMOVD(a0, sx)
	VPINSRD(Imm(1), u1, sx, sx)
	VPINSRD(Imm(2), a1, sx, sx)
	VPINSRD(Imm(3), u3, sx, sx)
	return sx
}

// HsumPS8X is HsumPS with EVEX instructions only, so that y may be any of
// the 32 registers: the same additions in the same order.
func HsumPS8X(y reg.VecVirtual) reg.VecVirtual {
	x := XMM()
	VEXTRACTF32X4(Imm(1), y, x)
	VADDPS(y.AsX(), x, x)
	t := XMM()
	VMOVHLPS(x, x, t)
	VADDPS(t, x, x)
	VMOVSHDUP(x, t)
	VADDSS(t, x, x)
	return x
}

// HsumPS16 reduces the sixteen float32 lanes of z into the low lane of an
// XMM register, with EVEX instructions only (any of the 32 registers).
func HsumPS16(z reg.VecVirtual) reg.VecVirtual {
	y := YMM()
	VEXTRACTF64X4(Imm(1), z, y)
	VADDPS(z.AsY(), y, y)
	return HsumPS8X(y)
}

// Q6K holds the quant bytes of one half (128 quants) of a Q6_K block:
// ql's two 32-byte rows and the 32 bytes of qh that go with them.
type Q6K struct{ q1, q2, qh reg.VecVirtual }

// LoadQ6K loads half n (0 or 1) of the Q6_K block at w.
func LoadQ6K(w reg.Register, n int) Q6K {
	h := Q6K{YMM(), YMM(), YMM()}
	VMOVDQU(Mem{Base: w, Disp: 64 * n}, h.q1)
	VMOVDQU(Mem{Base: w, Disp: 64*n + 32}, h.q2)
	VMOVDQU(Mem{Base: w, Disp: 128 + 32*n}, h.qh)
	return h
}

// Quants returns the 32 6-bit quants k (0..3) of the half, offset by 32
// as stored (0..63); m4 holds 0x0f in every byte.
func (h Q6K) Quants(k int, m4 reg.VecVirtual) reg.VecVirtual {
	// Low 4 bits: nibbles of q1 (k even) or q2 (k odd), low (k < 2) or
	// high (k >= 2).
	src := h.q1
	if k%2 == 1 {
		src = h.q2
	}
	q := YMM()
	if k < 2 {
		VPAND(m4, src, q)
	} else {
		VPSRLW(Imm(4), src, q)
		VPAND(m4, q, q)
	}
	// High 2 bits: bits 2k, 2k+1 of qh moved to bits 4, 5.
	hi := YMM()
	switch {
	case 2*k < 4:
		VPSLLW(Imm(uint64(4-2*k)), h.qh, hi)
	case 2*k > 4:
		VPSRLW(Imm(uint64(2*k-4)), h.qh, hi)
	default:
		VMOVDQA(h.qh, hi)
	}
	VPAND(Splat8("bits45", 0x30), hi, hi)
	VPOR(hi, q, q)
	return q
}
