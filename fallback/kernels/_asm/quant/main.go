// Command quant generates the AVX2 activation quantizers: rows of float32
// to Q8_0 blocks (llama.cpp's AVX2 quantize_row_q8_0, instruction for
// instruction where the order matters) and to Q8_K blocks
// (quantize_row_q8_K_ref, which llama.cpp uses on x86).
package main

//go:generate go run . -out ../../quant_amd64.s -stubs ../../quant_amd64.go -pkg kernels

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"

	"qinfer/fallback/kernels/_asm/internal/gen"
)

const (
	cmpEQ  = 0 // VCMPPS predicate EQ_OQ
	cmpNEQ = 4 // NEQ_UQ: true for NaN, as C's != is
)

func main() {
	gen.Header()
	q8_0()
	q8K()
	Generate()
}

// permFix returns llama.cpp's VPERMD index that restores element order
// after the lane-wise packs.
func permFix() Mem {
	var b [32]byte
	for i, v := range []byte{0, 4, 1, 5, 2, 6, 3, 7} {
		b[4*i] = v
	}
	return gen.Bytes32("packperm", b)
}

// packQuants converts four registers of rounded float32 to 32 int8 in
// element order at m, as llama.cpp does (VCVTPS2DQ, saturating packs).
func packQuants(v [4]reg.VecVirtual, perm reg.VecVirtual, m Mem) reg.VecVirtual {
	for _, r := range v {
		VCVTPS2DQ(r, r)
	}
	return packInts(v, perm, m)
}

// packInts packs four registers of int32 to 32 saturated int8 in element
// order at m.
func packInts(v [4]reg.VecVirtual, perm reg.VecVirtual, m Mem) reg.VecVirtual {
	VPACKSSDW(v[1], v[0], v[0])
	VPACKSSDW(v[3], v[2], v[2])
	VPACKSSWB(v[2], v[0], v[0])
	VPERMD(v[0], perm, v[0])
	VMOVDQU(v[0], m)
	return v[0]
}

func q8_0() {
	TEXT("quantizeQ8_0AVX2", NOSPLIT, "func(x *float32, nb int, dst *byte)")
	Doc("quantizeQ8_0AVX2 quantizes nb blocks of 32 floats at x to Q8_0 blocks at dst",
		"as llama.cpp's AVX2 quantize_row_q8_0 does.")
	x := Load(Param("x"), GP64())
	n := Load(Param("nb"), GP64())
	dst := Load(Param("dst"), GP64())
	sign := YMM()
	VBROADCASTSS(gen.Splat32("signbit32", 0x80000000).Offset(0), sign)
	c127 := XMM()
	VMOVSS(gen.Splat32f("f127", 127).Offset(0), c127)
	zero := XMM()
	VXORPS(zero, zero, zero)
	perm := YMM()
	VMOVDQU(permFix(), perm)
	Label("blk")
	var v [4]reg.VecVirtual
	for i := range v {
		v[i] = YMM()
		VMOVUPS(Mem{Base: x, Disp: 32 * i}, v[i])
	}
	// maxAbs = max(max(max(|v0|, |v1|), |v2|), |v3|), then the lanes, in
	// llama.cpp's operand order (it decides which NaN wins).
	m := YMM()
	VANDNPS(v[0], sign, m)
	for i := 1; i < 4; i++ {
		a := YMM()
		VANDNPS(v[i], sign, a)
		VMAXPS(a, m, m)
	}
	hi, mx := XMM(), XMM()
	VEXTRACTF128(Imm(1), m, hi)
	VMAXPS(m.AsX(), hi, mx)
	t := XMM()
	VMOVHLPS(mx, mx, t)
	VMAXPS(t, mx, mx)
	VMOVSHDUP(mx, t)
	VMAXSS(t, mx, mx)
	// d = max/127 as fp16.
	d := XMM()
	VDIVSS(c127, mx, d)
	VCVTPS2PH(Imm(0), d, d)
	h := GP32()
	VPEXTRW(Imm(0), d, h)
	MOVW(h.As16(), Mem{Base: dst})
	// id = max != 0 ? 127/max : 0.
	id, nz := XMM(), XMM()
	VDIVSS(mx, c127, id)
	VCMPSS(Imm(cmpNEQ), zero, mx, nz)
	VANDPS(nz, id, id)
	mul := YMM()
	VBROADCASTSS(id, mul)
	for i := range v {
		VMULPS(mul, v[i], v[i])
		VROUNDPS(Imm(0), v[i], v[i])
	}
	packQuants(v, perm, Mem{Base: dst, Disp: 2})
	ADDQ(Imm(128), x)
	ADDQ(Imm(34), dst)
	DECQ(n)
	JNZ(LabelRef("blk"))
	VZEROUPPER()
	RET()
}

// q8K: the scale comes from the element of largest magnitude, the first
// one if several tie (x[j] with |x[j]| > amax replaces it); NaN never
// compares greater, so it is skipped. Quants are ggml's nearest_int of
// -127/max*x (round half to even), at most 127.
func q8K() {
	TEXT("quantizeQ8KAVX2", NOSPLIT, "func(x *float32, nb int, dst *byte)")
	Doc("quantizeQ8KAVX2 quantizes nb blocks of 256 floats at x to Q8_K blocks at dst",
		"as ggml's quantize_row_q8_K_ref does.")
	x := Load(Param("x"), GP64())
	n := Load(Param("nb"), GP64())
	dst := Load(Param("dst"), GP64())
	sign := YMM()
	VBROADCASTSS(gen.Splat32("signbit32", 0x80000000).Offset(0), sign)
	ones8, ones16 := YMM(), YMM()
	VMOVDQU(gen.Splat8("ones8", 1), ones8)
	VMOVDQU(gen.Splat16("ones16", 1), ones16)
	perm := YMM()
	VMOVDQU(permFix(), perm)
	Label("blk")
	m := YMM()
	VXORPS(m, m, m)
	for i := 0; i < 32; i++ {
		a := YMM()
		VANDNPS(Mem{Base: x, Disp: 32 * i}, sign, a)
		VMAXPS(m, a, m) // a if a > m, else m (also when a is NaN)
	}
	hi, mx := XMM(), XMM()
	VEXTRACTF128(Imm(1), m, hi)
	VMAXPS(m.AsX(), hi, mx)
	t := XMM()
	VMOVHLPS(mx, mx, t)
	VMAXPS(t, mx, mx)
	VMOVSHDUP(mx, t)
	VMAXSS(t, mx, mx)
	zero := XMM()
	VXORPS(zero, zero, zero)
	VUCOMISS(zero, mx)
	JNE(LabelRef("nonzero"))
	// An all-zero block (or one of NaNs): zero scale, quants and sums.
	zy := YMM()
	VXORPS(zy, zy, zy)
	for off := 0; off+32 <= 292; off += 32 {
		VMOVDQU(zy, Mem{Base: dst, Disp: off})
	}
	MOVL(U32(0), Mem{Base: dst, Disp: 288})
	JMP(LabelRef("next"))

	Label("nonzero")
	// The first element whose magnitude is the maximum.
	amax := YMM()
	VBROADCASTSS(mx, amax)
	p := GP64()
	MOVQ(x, p)
	Label("find")
	a, eq := YMM(), YMM()
	VANDNPS(Mem{Base: p}, sign, a)
	VCMPPS(Imm(cmpEQ), amax, a, eq)
	bits := GP32()
	VMOVMSKPS(eq, bits)
	ADDQ(Imm(32), p)
	TESTL(bits, bits)
	JZ(LabelRef("find"))
	BSFL(bits, bits)
	vmax := XMM()
	VMOVSS(Mem{Base: p, Index: bits.As64(), Scale: 4, Disp: -32}, vmax)
	// iscale = -127/max; d = 1/iscale.
	is := XMM()
	VMOVSS(gen.Splat32f("fm127", -127).Offset(0), is)
	VDIVSS(vmax, is, is)
	d := XMM()
	VMOVSS(gen.Splat32f("f1", 1).Offset(0), d)
	VDIVSS(is, d, d)
	VMOVSS(d, Mem{Base: dst})
	mul := YMM()
	VBROADCASTSS(is, mul)
	magic, low23, half := YMM(), YMM(), YMM()
	VBROADCASTSS(gen.Splat32f("f1p5x2p23", 12582912).Offset(0), magic)
	VPBROADCASTD(gen.Splat32("low23", 0x007fffff).Offset(0), low23)
	VPBROADCASTD(gen.Splat32("bit22", 0x00400000).Offset(0), half)
	for g := 0; g < 8; g++ {
		var v [4]reg.VecVirtual
		for i := range v {
			// nearest_int: the low mantissa bits of x*iscale + 1.5*2^23,
			// minus 2^22 (NaN gives 0, as in C).
			v[i] = YMM()
			VMULPS(Mem{Base: x, Disp: 128*g + 32*i}, mul, v[i])
			VADDPS(magic, v[i], v[i])
			VPAND(low23, v[i], v[i])
			VPSUBD(half, v[i], v[i])
		}
		q := packInts(v, perm, Mem{Base: dst, Disp: 4 + 32*g})
		// Sums of quants 0-15 and 16-31 of this group, as int16.
		s := YMM()
		VPMADDUBSW(q, ones8, s)
		VPMADDWD(ones16, s, s)
		VPHADDD(s, s, s)
		VPHADDD(s, s, s)
		r := GP32()
		VMOVD(s.AsX(), r)
		MOVW(r.As16(), Mem{Base: dst, Disp: 260 + 4*g})
		sh := XMM()
		VEXTRACTI128(Imm(1), s, sh)
		VMOVD(sh, r)
		MOVW(r.As16(), Mem{Base: dst, Disp: 262 + 4*g})
	}
	Label("next")
	ADDQ(U32(1024), x)
	ADDQ(U32(292), dst)
	DECQ(n)
	JNZ(LabelRef("blk"))
	VZEROUPPER()
	RET()
}
