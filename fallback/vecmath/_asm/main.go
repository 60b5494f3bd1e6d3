// Command _asm generates qinfer/fallback/vecmath's AVX2+FMA+F16C kernels.
// Each kernel performs, lane for lane, the float operations of the pure-Go
// reference in generic.go (which follows ggml's AVX2 code), so results are
// bit-identical to it.
package main

//go:generate go run . -out ../vecmath_amd64.s -stubs ../stubs_amd64.go -pkg vecmath

import (
	"fmt"
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

func main() {
	ConstraintExpr("!purego")
	expSum()
	silu("siluAVX2", false)
	silu("siluMulAVX2", true)
	roundF16()
	toF16()
	dotsF16("dotsTinyF16AVX2", false)
	dotsF16("dotsVecF16AVX2", true)
	axpyLanesF16()
	reduceLanes(8)
	reduceLanes(32)
	ropePairs()
	ropeHalves()
	Generate()
}

var consts = map[string]Mem{}

// splat returns a 32-byte read-only constant holding v in every dword.
func splat(name string, v uint32) Mem {
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

func splatf(name string, f float32) Mem { return splat(name, math.Float32bits(f)) }

var labels int

// expf8 returns ggml_v_expf(x) for the eight lanes of x (x is preserved).
// The large-|n| path, needed only when some lane's result over- or
// underflows the fast formula, is skipped when no lane needs it, as in ggml.
func expf8(x reg.VecVirtual) reg.VecVirtual {
	labels++
	fast := fmt.Sprintf("expfast%d", labels)
	rc := splatf("exp_r", 0x1.8p23)
	z := YMM()
	VMOVUPS(rc, z)
	VFMADD231PS(splatf("exp_log2e", 0x1.715476p+0), x, z) // z = x*log2e + r
	n := YMM()
	VSUBPS(rc, z, n) // n = z - r
	b := YMM()
	VMOVUPS(x, b)
	VFNMADD231PS(splatf("exp_ln2hi", 0x1.62e4p-1), n, b) // b = x - n*ln2hi
	VFNMADD231PS(splatf("exp_ln2lo", 0x1.7f7d1cp-20), n, b)
	e := YMM()
	VPSLLD(Imm(23), z, e)
	k := YMM()
	VPADDD(splatf("exp_one", 1), e, k)
	an := YMM()
	VANDPS(splat("exp_abs", 0x7fffffff), n, an)
	c := YMM()
	VCMPPS(Imm(0x1e), splatf("exp_126", 126), an, c) // GT_OQ
	u := YMM()
	VMULPS(b, b, u)
	p1 := YMM()
	VMOVUPS(splatf("exp_c1", 0x1.573e2ep-5), p1)
	VFMADD231PS(splatf("exp_c0", 0x1.0e4020p-7), b, p1)
	p2 := YMM()
	VMOVUPS(splatf("exp_c3", 0x1.fffdb6p-2), p2)
	VFMADD231PS(splatf("exp_c2", 0x1.555e66p-3), b, p2)
	VFMADD231PS(u, p1, p2) // p1*u + p2
	j := YMM()
	VMULPS(splatf("exp_c4", 0x1.ffffecp-1), b, j)
	VFMADD231PS(u, p2, j) // q*u + c4*b
	out := YMM()
	VMOVUPS(j, out)
	VFMADD213PS(k, k, out) // k*j + k
	m := GP32()
	VMOVMSKPS(c, m)
	TESTL(m, m)
	JZ(LabelRef(fast))
	zero, g := YMM(), YMM()
	VXORPS(zero, zero, zero)
	VCMPPS(Imm(0x12), zero, n, g) // n <= 0, LE_OQ
	VANDPS(splat("exp_g", 0x82000000), g, g)
	s1 := YMM()
	VPADDD(splat("exp_bias", 0x7f000000), g, s1)
	s2 := YMM()
	VPSUBD(g, e, s2) // e - g
	d := YMM()
	VCMPPS(Imm(0x1e), splatf("exp_192", 192), an, d)
	r2 := YMM()
	VMOVUPS(s2, r2)
	VFMADD213PS(s2, j, r2) // s2*j + s2
	VMULPS(s1, r2, r2)
	VBLENDVPS(c, r2, out, out)
	VMULPS(s1, s1, s1)
	VBLENDVPS(d, s1, out, out)
	Label(fast)
	return out
}

// hsum8 returns, in the low lane of an XMM register, llamafile's hsum:
// (v4+v0 + v6+v2) + (v5+v1 + v7+v3).
func hsum8(v reg.VecVirtual) reg.VecVirtual {
	hi, h := XMM(), XMM()
	VEXTRACTF128(Imm(1), v, hi)
	VADDPS(v.AsX(), hi, h)
	t := XMM()
	VMOVHLPS(h, h, t)
	VADDPS(t, h, h) // h0+h2, h1+h3
	VMOVSHDUP(h, t)
	VADDSS(t, h, h)
	return h
}

func expSum() {
	TEXT("expSumAVX2", NOSPLIT, "func(y, x *float32, n int, sub float32) float64")
	Pragma("noescape")
	Doc("expSumAVX2 sets y[i] = v_expf(x[i]-sub) for n (a multiple of 8) elements",
		"and returns the sum in double of each block's hsum8, block by block.")
	y := Load(Param("y"), GP64())
	x := Load(Param("x"), GP64())
	n := Load(Param("n"), GP64())
	sub := YMM()
	VBROADCASTSS(Load(Param("sub"), XMM()), sub)
	sum := XMM()
	VXORPD(sum, sum, sum)
	Label("loop")
	CMPQ(n, Imm(8))
	JL(LabelRef("done"))
	v := YMM()
	VMOVUPS(Mem{Base: x}, v)
	VSUBPS(sub, v, v)
	r := expf8(v)
	VMOVUPS(r, Mem{Base: y})
	h := hsum8(r)
	VCVTSS2SD(h, h, h)
	VADDSD(h, sum, sum)
	ADDQ(Imm(32), x)
	ADDQ(Imm(32), y)
	SUBQ(Imm(8), n)
	JMP(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	Store(sum, ReturnIndex(0))
	RET()
}

// silu: y = x / (1 + v_expf(0-x)), times u when mul.
func silu(name string, mul bool) {
	sig := "func(y, x *float32, n int)"
	what := "y[i] = ggml_v_silu(x[i])"
	if mul {
		sig = "func(y, x, u *float32, n int)"
		what = "y[i] = ggml_v_silu(x[i]) * u[i]"
	}
	TEXT(name, NOSPLIT, sig)
	Pragma("noescape")
	Doc(name + " sets " + what + " for n (a multiple of 8) elements.")
	y := Load(Param("y"), GP64())
	x := Load(Param("x"), GP64())
	var u reg.Register
	if mul {
		u = Load(Param("u"), GP64())
	}
	n := Load(Param("n"), GP64())
	Label("loop")
	CMPQ(n, Imm(8))
	JL(LabelRef("done"))
	v, neg := YMM(), YMM()
	VMOVUPS(Mem{Base: x}, v)
	VXORPS(neg, neg, neg)
	VSUBPS(v, neg, neg) // 0 - x
	e := expf8(neg)
	VADDPS(splatf("one", 1), e, e)
	VDIVPS(e, v, v)
	if mul {
		VMULPS(Mem{Base: u}, v, v)
		ADDQ(Imm(32), u)
	}
	VMOVUPS(v, Mem{Base: y})
	ADDQ(Imm(32), x)
	ADDQ(Imm(32), y)
	SUBQ(Imm(8), n)
	JMP(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	RET()
}

func roundF16() {
	TEXT("roundF16AVX2", NOSPLIT, "func(y, x *float32, n int)")
	Pragma("noescape")
	Doc("roundF16AVX2 sets y[i] = x[i] rounded to the nearest half (VCVTPS2PH, ties to even)",
		"for n (a multiple of 8) elements.")
	y := Load(Param("y"), GP64())
	x := Load(Param("x"), GP64())
	n := Load(Param("n"), GP64())
	Label("loop")
	CMPQ(n, Imm(8))
	JL(LabelRef("done"))
	v, h := YMM(), XMM()
	VMOVUPS(Mem{Base: x}, v)
	VCVTPS2PH(Imm(0), v, h)
	VCVTPH2PS(h, v)
	VMOVUPS(v, Mem{Base: y})
	ADDQ(Imm(32), x)
	ADDQ(Imm(32), y)
	SUBQ(Imm(8), n)
	JMP(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	RET()
}

func toF16() {
	TEXT("toF16AVX2", NOSPLIT, "func(h *uint16, x *float32, n int)")
	Pragma("noescape")
	Doc("toF16AVX2 converts n (a multiple of 8) floats to halves (VCVTPS2PH, ties to even).")
	hp := Load(Param("h"), GP64())
	x := Load(Param("x"), GP64())
	n := Load(Param("n"), GP64())
	Label("loop")
	CMPQ(n, Imm(8))
	JL(LabelRef("done"))
	v := YMM()
	VMOVUPS(Mem{Base: x}, v)
	VCVTPS2PH(Imm(0), v, Mem{Base: hp})
	ADDQ(Imm(32), x)
	ADDQ(Imm(16), hp)
	SUBQ(Imm(8), n)
	JMP(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	RET()
}

// dotsF16 computes dst[j] = dot(row j of k, q) * scale for n half rows,
// either as llamafile's tinyBLAS (one 8-lane FMA accumulator, hsum8) or
// as ggml_vec_dot_f16 (four accumulators over blocks of 32, reduce32, the
// sum rounded through double as the reference does).
func dotsF16(name string, vec bool) {
	TEXT(name, NOSPLIT, "func(dst *float32, k *uint16, kstride, n int, q *float32, hd int, scale float32)")
	Pragma("noescape")
	if vec {
		Doc(name+" sets dst[j] = ggml_vec_dot_f16(row j of k, q) * scale for n rows",
			"kstride bytes apart; hd must be a multiple of 32.")
	} else {
		Doc(name+" sets dst[j] = tinyBLAS dot(row j of k, q) * scale for n rows",
			"kstride bytes apart; hd must be a multiple of 8.")
	}
	dst := Load(Param("dst"), GP64())
	kp := Load(Param("k"), GP64())
	ks := Load(Param("kstride"), GP64())
	n := Load(Param("n"), GP64())
	q := Load(Param("q"), GP64())
	hd := Load(Param("hd"), GP64())
	sc := Load(Param("scale"), XMM())
	Label("row")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	i, kr, qr := GP64(), GP64(), GP64()
	MOVQ(hd, i)
	MOVQ(kp, kr)
	MOVQ(q, qr)
	nacc := 1
	if vec {
		nacc = 4
	}
	acc := make([]reg.VecVirtual, nacc)
	for a := range acc {
		acc[a] = YMM()
		VXORPS(acc[a], acc[a], acc[a])
	}
	Label("col")
	for a := range acc {
		t := YMM()
		VCVTPH2PS(Mem{Base: kr, Disp: 16 * a}, t)
		VFMADD231PS(Mem{Base: qr, Disp: 32 * a}, t, acc[a])
	}
	ADDQ(Imm(uint64(16*nacc)), kr)
	ADDQ(Imm(uint64(32*nacc)), qr)
	SUBQ(Imm(uint64(8*nacc)), i)
	JNZ(LabelRef("col"))
	var s reg.VecVirtual
	if vec {
		VADDPS(acc[2], acc[0], acc[0])
		VADDPS(acc[3], acc[1], acc[1])
		VADDPS(acc[1], acc[0], acc[0])
		hi, t := XMM(), XMM()
		VEXTRACTF128(Imm(1), acc[0], hi)
		VADDPS(hi, acc[0].AsX(), t)
		VHADDPS(t, t, t)
		VHADDPS(t, t, t)
		// float32(float64(x)) is exact: the double detour of the reference
		// changes nothing without a tail.
		s = t
	} else {
		s = hsum8(acc[0])
	}
	VMULSS(sc, s, s)
	VMOVSS(s, Mem{Base: dst})
	ADDQ(Imm(4), dst)
	ADDQ(ks, kp)
	DECQ(n)
	JMP(LabelRef("row"))
	Label("done")
	VZEROUPPER()
	RET()
}

// axpyLanesF16 accumulates acc[j%lanes][i] += v[j][i] * p[j]: the KQV
// product of ggml's mul_mat with position j in lane j%lanes of output i,
// stored lane-major (lanes rows of hd floats).
func axpyLanesF16() {
	TEXT("axpyLanesF16AVX2", NOSPLIT, "func(acc *float32, lanes int, v *uint16, vstride, n int, p *float32, hd int)")
	Pragma("noescape")
	Doc("axpyLanesF16AVX2 adds v[j][i]*p[j] into acc[(j%lanes)*hd+i] with one FMA for n half rows",
		"vstride bytes apart; lanes must be a power of two, hd a multiple of 8.")
	acc := Load(Param("acc"), GP64())
	lanes := Load(Param("lanes"), GP64())
	vp := Load(Param("v"), GP64())
	vs := Load(Param("vstride"), GP64())
	n := Load(Param("n"), GP64())
	p := Load(Param("p"), GP64())
	hd := Load(Param("hd"), GP64())
	DECQ(lanes) // mask
	j := GP64()
	XORQ(j, j)
	Label("row")
	CMPQ(j, n)
	JGE(LabelRef("done"))
	row := GP64()
	MOVQ(j, row)
	ANDQ(lanes, row)
	IMULQ(hd, row)
	LEAQ(Mem{Base: acc, Index: row, Scale: 4}, row)
	pj := YMM()
	VBROADCASTSS(Mem{Base: p, Index: j, Scale: 4}, pj)
	i, vr := GP64(), GP64()
	MOVQ(hd, i)
	MOVQ(vp, vr)
	Label("col")
	t, a := YMM(), YMM()
	VCVTPH2PS(Mem{Base: vr}, t)
	VMOVUPS(Mem{Base: row}, a)
	VFMADD231PS(pj, t, a)
	VMOVUPS(a, Mem{Base: row})
	ADDQ(Imm(16), vr)
	ADDQ(Imm(32), row)
	SUBQ(Imm(8), i)
	JNZ(LabelRef("col"))
	ADDQ(vs, vp)
	INCQ(j)
	JMP(LabelRef("row"))
	Label("done")
	VZEROUPPER()
	RET()
}

// reduceLanes sums the lanes of 8 outputs at a time, the outputs in the
// vector's lanes and the accumulator lanes in rows hd floats apart, with
// the same additions in the same order as Hsum8 (8 lanes) or Reduce32
// (32 lanes) make for one output.
func reduceLanes(lanes int) {
	name := fmt.Sprintf("reduceLanes%dAVX2", lanes)
	TEXT(name, NOSPLIT, "func(out, acc *float32, hd int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s sets out[i] to the sum of acc[l*hd+i] over %d lanes l in ggml's order", name, lanes),
		"for hd (a positive multiple of 8) outputs.")
	out := Load(Param("out"), GP64())
	acc := Load(Param("acc"), GP64())
	hd := Load(Param("hd"), GP64())
	i := GP64()
	MOVQ(hd, i)
	SHLQ(Imm(2), hd) // row stride in bytes
	Label("loop")
	// row returns lane l's 8 outputs, loaded from acc + l*hd*4.
	row := func(l int) reg.VecVirtual {
		r, p := YMM(), GP64()
		MOVQ(U32(l), p)
		IMULQ(hd, p)
		VMOVUPS(Mem{Base: acc, Index: p, Scale: 1}, r)
		return r
	}
	var res reg.VecVirtual
	if lanes == 8 {
		h := make([]reg.VecVirtual, 4)
		for l := range h {
			h[l] = row(l + 4)
			VADDPS(row(l), h[l], h[l]) // v[l+4] + v[l]
		}
		VADDPS(h[2], h[0], h[0])
		VADDPS(h[3], h[1], h[1])
		VADDPS(h[1], h[0], h[0])
		res = h[0]
	} else {
		x := make([]reg.VecVirtual, 8)
		for l := range x {
			x0 := row(l)
			VADDPS(row(16+l), x0, x0)
			x1 := row(8 + l)
			VADDPS(row(24+l), x1, x1)
			VADDPS(x1, x0, x0)
			x[l] = x0
		}
		for l := 0; l < 4; l++ {
			VADDPS(x[l+4], x[l], x[l])
		}
		VADDPS(x[1], x[0], x[0])
		VADDPS(x[3], x[2], x[2])
		VADDPS(x[2], x[0], x[0])
		res = x[0]
	}
	VMOVUPS(res, Mem{Base: out})
	ADDQ(Imm(32), out)
	ADDQ(Imm(32), acc)
	SUBQ(Imm(8), i)
	JNZ(LabelRef("loop"))
	VZEROUPPER()
	RET()
}

// ropePairs rotates adjacent pairs (x0, x1) of each head by the angle
// whose cosine and sine are the pair's (cs, sn) in cache: x0*cs - x1*sn
// and x0*sn + x1*cs, each an FMA over the first product with the second
// rounded, as GCC contracts ggml's rope. VFMADDSUB subtracts in the even
// lanes and adds in the odd ones, which is exactly that pairing.
func ropePairs() {
	TEXT("ropePairsAVX2", NOSPLIT, "func(x, cache *float32, hd, heads int)")
	Pragma("noescape")
	Doc("ropePairsAVX2 rotates the adjacent pairs of heads heads of hd (a positive multiple of 8)",
		"floats at x by the (cos, sin) pairs in cache.")
	x := Load(Param("x"), GP64())
	cache := Load(Param("cache"), GP64())
	hd := Load(Param("hd"), GP64())
	heads := Load(Param("heads"), GP64())
	Label("head")
	TESTQ(heads, heads)
	JZ(LabelRef("done"))
	i, c := GP64(), GP64()
	MOVQ(hd, i)
	MOVQ(cache, c)
	Label("loop")
	v, cs, x0, x1, sc := YMM(), YMM(), YMM(), YMM(), YMM()
	VMOVUPS(Mem{Base: x}, v)
	VMOVUPS(Mem{Base: c}, cs)    // cs sn ...
	VMOVSLDUP(v, x0)             // x0 x0 ...
	VMOVSHDUP(v, x1)             // x1 x1 ...
	VPERMILPS(Imm(0xb1), cs, sc) // sn cs ...
	VMULPS(sc, x1, x1)           // x1*sn, x1*cs
	VFMADDSUB231PS(cs, x0, x1)   // x0*cs - x1*sn, x0*sn + x1*cs
	VMOVUPS(x1, Mem{Base: x})
	ADDQ(Imm(32), x)
	ADDQ(Imm(32), c)
	SUBQ(Imm(8), i)
	JNZ(LabelRef("loop"))
	DECQ(heads)
	JMP(LabelRef("head"))
	Label("done")
	VZEROUPPER()
	RET()
}

// ropeHalves is NEOX mode: element i of each head pairs with i+hd/2, the
// angle's cosines and sines in separate arrays.
func ropeHalves() {
	TEXT("ropeHalvesAVX2", NOSPLIT, "func(x, cos, sin *float32, half, heads int)")
	Pragma("noescape")
	Doc("ropeHalvesAVX2 rotates element i with i+half of heads heads of 2*half floats at x",
		"by angle i (cos[i], sin[i]); half must be a positive multiple of 8.")
	x := Load(Param("x"), GP64())
	cosp := Load(Param("cos"), GP64())
	sinp := Load(Param("sin"), GP64())
	half := Load(Param("half"), GP64())
	heads := Load(Param("heads"), GP64())
	hb := GP64()
	MOVQ(half, hb)
	SHLQ(Imm(2), hb) // bytes from x0 to x1
	Label("head")
	TESTQ(heads, heads)
	JZ(LabelRef("done"))
	i, off := GP64(), GP64()
	MOVQ(half, i)
	XORQ(off, off)
	x1p := GP64()
	LEAQ(Mem{Base: x, Index: hb, Scale: 1}, x1p)
	Label("loop")
	x0, x1, cs, sn, p, q := YMM(), YMM(), YMM(), YMM(), YMM(), YMM()
	VMOVUPS(Mem{Base: x, Index: off, Scale: 1}, x0)
	VMOVUPS(Mem{Base: x1p, Index: off, Scale: 1}, x1)
	VMOVUPS(Mem{Base: cosp, Index: off, Scale: 1}, cs)
	VMOVUPS(Mem{Base: sinp, Index: off, Scale: 1}, sn)
	VMULPS(sn, x1, p)
	VFMSUB231PS(cs, x0, p) // x0*cs - x1*sn
	VMULPS(cs, x1, q)
	VFMADD231PS(sn, x0, q) // x0*sn + x1*cs
	VMOVUPS(p, Mem{Base: x, Index: off, Scale: 1})
	VMOVUPS(q, Mem{Base: x1p, Index: off, Scale: 1})
	ADDQ(Imm(32), off)
	SUBQ(Imm(8), i)
	JNZ(LabelRef("loop"))
	ADDQ(hb, x)
	ADDQ(hb, x)
	DECQ(heads)
	JMP(LabelRef("head"))
	Label("done")
	VZEROUPPER()
	RET()
}
