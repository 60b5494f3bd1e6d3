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

// Splat returns a 32-byte read-only constant holding v in every byte.
func Splat8(name string, v byte) Mem {
	if m, ok := consts[name]; ok {
		return m
	}
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < 32; i++ {
		DATA(i, U8(v))
	}
	consts[name] = m
	return m
}

// Splat16 returns a 32-byte read-only constant holding v in every word.
func Splat16(name string, v uint16) Mem {
	if m, ok := consts[name]; ok {
		return m
	}
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		DATA(2*i, U16(v))
	}
	consts[name] = m
	return m
}

// Splat32 returns a 32-byte read-only constant holding v in every dword.
func Splat32(name string, v uint32) Mem {
	if m, ok := consts[name]; ok {
		return m
	}
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < 8; i++ {
		DATA(4*i, U32(v))
	}
	consts[name] = m
	return m
}

// Splat32f returns a 32-byte read-only constant holding v in every float32.
func Splat32f(name string, v float32) Mem {
	if m, ok := consts[name]; ok {
		return m
	}
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < 8; i++ {
		DATA(4*i, F32(v))
	}
	consts[name] = m
	return m
}

// Bytes returns a read-only constant with the given bytes.
func Bytes(name string, b []byte) Mem {
	if m, ok := consts[name]; ok {
		return m
	}
	m := GLOBL(name, RODATA|NOPTR)
	for i, v := range b {
		DATA(i, U8(v))
	}
	consts[name] = m
	return m
}

// Bytes32 returns a 32-byte read-only constant with the given bytes.
func Bytes32(name string, b [32]byte) Mem {
	if m, ok := consts[name]; ok {
		return m
	}
	m := GLOBL(name, RODATA|NOPTR)
	for i, v := range b {
		DATA(i, U8(v))
	}
	consts[name] = m
	return m
}

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
