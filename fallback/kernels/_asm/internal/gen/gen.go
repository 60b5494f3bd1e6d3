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
