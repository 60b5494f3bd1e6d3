// Command w8 generates the int8 kernels of the row formats: exact int32
// dot products of 4 weight rows with 1 to 4 activation rows (AVX2 and
// AVX512-VNNI), and the per-token int8 activation quantizer (AVX2).
package main

//go:generate go run . -out ../../w8_amd64.s -stubs ../../w8_amd64.go -pkg rowkernels

import (
	"fmt"

	"qinfer/fallback/rowkernels/_asm/internal/gen"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

func main() {
	ConstraintExpr("!purego")
	for _, t := range []int{1, 2} {
		dotAVX2(t)
	}
	for _, t := range []int{1, 2, 4} {
		dotVNNI(t)
	}
	gemmTok16()
	absMaxBits()
	quantI8()
	Generate()
}

// dotAVX2 generates dotAVX2x4x<T>: out[t*4+r] = sum over 32*nblk bytes of
// w[r]*x[t]. VPMADDUBSW multiplies unsigned by signed bytes, so each
// product is |w| times x with w's sign moved onto x (VPSIGNB); a pair sum
// is at most 2*128*127 < 2^15 because activations never hold -128, so
// nothing saturates and the int32 sums are exact. The weight rows are
// loaded once for all T tokens.
func dotAVX2(nt int) {
	name := fmt.Sprintf("dotAVX2x4x%d", nt)
	TEXT(name, NOSPLIT, "func(w *int8, wstride int, x *int8, xstride int, nblk int, out *int32)")
	// No pointer is kept past the call: the caller's arrays need not escape.
	Pragma("noescape")
	Doc(name+" sets out[t*4+r] to the int32 dot product of the first 32*nblk",
		fmt.Sprintf("bytes of weight row r (4 rows wstride bytes apart) and activation row t (%d", nt),
		"rows xstride bytes apart, values in [-127, 127]). nblk must be > 0.")
	w := Load(Param("w"), GP64())
	ws := Load(Param("wstride"), GP64())
	x := Load(Param("x"), GP64())
	xs := Load(Param("xstride"), GP64())
	n := Load(Param("nblk"), GP64())
	ws3 := GP64()
	LEAQ(Mem{Base: ws, Index: ws, Scale: 2}, ws3)

	ones := YMM()
	VMOVDQU(gen.Splat16("ones16", 1), ones)
	acc := make([]reg.VecVirtual, 4*nt) // acc[t*4+r]
	for i := range acc {
		acc[i] = YMM()
		VPXOR(acc[i], acc[i], acc[i])
	}
	Label("loop")
	xv := make([]reg.VecVirtual, nt)
	for t := range xv {
		xv[t] = YMM()
		if t == 0 {
			VMOVDQU(Mem{Base: x}, xv[t])
		} else {
			VMOVDQU(Mem{Base: x, Index: xs, Scale: 1}, xv[t])
		}
	}
	for r := 0; r < 4; r++ {
		wv, aw := YMM(), YMM()
		VMOVDQU(gen.Nth(r, w, ws, ws3), wv)
		VPABSB(wv, aw)
		for t := 0; t < nt; t++ {
			p := YMM()
			VPSIGNB(wv, xv[t], p)
			VPMADDUBSW(p, aw, p)
			VPMADDWD(ones, p, p)
			VPADDD(p, acc[t*4+r], acc[t*4+r])
		}
	}
	ADDQ(Imm(32), w)
	ADDQ(Imm(32), x)
	DECQ(n)
	JNZ(LabelRef("loop"))

	out := Load(Param("out"), GP64())
	if nt == 1 {
		h01, h23 := YMM(), YMM()
		VPHADDD(acc[1], acc[0], h01)
		VPHADDD(acc[3], acc[2], h23)
		VPHADDD(h23, h01, h01) // lanes 0-3: partial sums of rows 0-3; 4-7 the rest
		hi := XMM()
		VEXTRACTI128(Imm(1), h01, hi)
		VPADDD(hi, h01.AsX(), hi)
		VMOVDQU(hi, Mem{Base: out})
	} else {
		var g [2]reg.VecVirtual
		for h := 0; h < 2; h++ {
			a, b := YMM(), YMM()
			VPHADDD(acc[4*h+1], acc[4*h], a)
			VPHADDD(acc[4*h+3], acc[4*h+2], b)
			g[h] = YMM()
			VPHADDD(b, a, g[h])
		}
		lo, hi := YMM(), YMM()
		VPERM2I128(Imm(0x20), g[1], g[0], lo)
		VPERM2I128(Imm(0x31), g[1], g[0], hi)
		VPADDD(hi, lo, lo)
		VMOVDQU(lo, Mem{Base: out})
	}
	VZEROUPPER()
	RET()
}

// dotVNNI generates dotVNNIx4x<T>: out[t*4+r] = sum over 64*nblk bytes of
// w[r]*xu[t], where xu holds the activations plus 128 as unsigned bytes
// (x XOR 0x80): VPDPBUSD multiplies unsigned by signed bytes and adds
// groups of four into int32 without saturation, so the sums are exact and
// the caller subtracts 128*sum(w). Only instructions with EVEX forms are
// used so that any of the 32 vector registers may be allocated.
func dotVNNI(nt int) {
	name := fmt.Sprintf("dotVNNIx4x%d", nt)
	TEXT(name, NOSPLIT, "func(w *int8, wstride int, xu *uint8, xstride int, nblk int, out *int32)")
	// No pointer is kept past the call: the caller's arrays need not escape.
	Pragma("noescape")
	Doc(name+" sets out[t*4+r] to the int32 sum over the first 64*nblk bytes of",
		fmt.Sprintf("weight row r (4 rows wstride bytes apart) times unsigned activation row t (%d", nt),
		"rows xstride bytes apart). nblk must be > 0.")
	w := Load(Param("w"), GP64())
	ws := Load(Param("wstride"), GP64())
	x := Load(Param("xu"), GP64())
	xs := Load(Param("xstride"), GP64())
	n := Load(Param("nblk"), GP64())
	ws3, xs3 := GP64(), GP64()
	LEAQ(Mem{Base: ws, Index: ws, Scale: 2}, ws3)
	if nt > 2 {
		LEAQ(Mem{Base: xs, Index: xs, Scale: 2}, xs3)
	}
	acc := make([]reg.VecVirtual, 4*nt)
	for i := range acc {
		acc[i] = ZMM()
		VPXORD(acc[i], acc[i], acc[i])
	}
	Label("loop")
	xv := make([]reg.VecVirtual, nt)
	for t := range xv {
		xv[t] = ZMM()
		VMOVDQU64(gen.Nth(t, x, xs, xs3), xv[t])
	}
	for r := 0; r < 4; r++ {
		if nt == 1 {
			VPDPBUSD(gen.Nth(r, w, ws, ws3), xv[0], acc[r])
			continue
		}
		wv := ZMM()
		VMOVDQU64(gen.Nth(r, w, ws, ws3), wv)
		for t := 0; t < nt; t++ {
			VPDPBUSD(wv, xv[t], acc[t*4+r])
		}
	}
	ADDQ(Imm(64), w)
	ADDQ(Imm(64), x)
	DECQ(n)
	JNZ(LabelRef("loop"))

	out := Load(Param("out"), GP64())
	for t := 0; t < nt; t++ {
		// Fold each accumulator to 4 lanes, then transpose-add the four
		// rows into one vector of their totals.
		var a [4]reg.VecVirtual
		for r := 0; r < 4; r++ {
			z := acc[t*4+r]
			y := YMM()
			VEXTRACTI64X4(Imm(1), z, y)
			VPADDD(y, z.AsY(), y)
			x4 := XMM()
			VEXTRACTI32X4(Imm(1), y, x4)
			VPADDD(x4, y.AsX(), x4)
			a[r] = x4
		}
		lo01, hi01, lo23, hi23 := XMM(), XMM(), XMM(), XMM()
		VPUNPCKLDQ(a[1], a[0], lo01) // a0[0] a1[0] a0[1] a1[1]
		VPUNPCKHDQ(a[1], a[0], hi01) // a0[2] a1[2] a0[3] a1[3]
		VPADDD(hi01, lo01, lo01)
		VPUNPCKLDQ(a[3], a[2], lo23)
		VPUNPCKHDQ(a[3], a[2], hi23)
		VPADDD(hi23, lo23, lo23)
		s, u := XMM(), XMM()
		VPUNPCKLQDQ(lo23, lo01, s)
		VPUNPCKHQDQ(lo23, lo01, u)
		VPADDD(u, s, s)
		VMOVDQU32(s, Mem{Base: out, Disp: 16 * t})
	}
	VZEROUPPER()
	RET()
}

// gemmTok16: 16 weight rows by a tile of 16 tokens, for prompts. The tile
// holds, per group of 4 columns, the 4 unsigned activation bytes (x+128)
// of each of its 16 tokens: one 64-byte line, the vector operand of
// VPDPBUSD, while each weight row's 4 bytes are broadcast straight from
// its GGUF row. So neither the weights are repacked nor sums reduced
// across lanes: acc[r] ends with the 16 tokens' sums of row r. The
// epilogue subtracts 128*sum(w), scales as quant.RowScaleDot does
// (float32(isum) * (ws[r] * xs[t]), no FMA) and scatters each row's 16
// results down a column of dst.
func gemmTok16() {
	TEXT("gemmTok16VNNI", NOSPLIT, "func(w *int8, wstride int, tile *uint8, ng int, wsum *int32, ws *float32, xs *float32, dst *float32, ldd int, rows int, ntok int)")
	// No pointer is kept past the call: the caller's arrays need not escape.
	Pragma("noescape")
	Doc("gemmTok16VNNI sets dst[t*ldd+r] = float32(sum_k w[r][k]*u[t][k] - wsum[r]) * (ws[r]*xs[t])",
		"for r < rows (1..16) and t < ntok (1..16), where the tile holds the unsigned",
		"activations u = x+128 in ng groups of 4 columns, and wsum[r] = 128*sum_k w[r][k].",
		"Weight rows are wstride bytes apart and 4*ng bytes long; 15*ldd must fit int32.")
	w := GP64()
	Load(Param("w"), w)
	ws := Load(Param("wstride"), GP64())
	tile := Load(Param("tile"), GP64())
	ng := Load(Param("ng"), GP64())
	ws3 := GP64()
	LEAQ(Mem{Base: ws, Index: ws, Scale: 2}, ws3)
	var base [4]reg.GPVirtual
	base[0] = w
	for i := 1; i < 4; i++ {
		base[i] = GP64()
		LEAQ(Mem{Base: base[i-1], Index: ws, Scale: 4}, base[i])
	}
	acc := make([]reg.VecVirtual, 16)
	for r := range acc {
		acc[r] = ZMM()
		VPXORD(acc[r], acc[r], acc[r])
	}
	Label("loop")
	xv := ZMM()
	VMOVDQU64(Mem{Base: tile}, xv)
	for r := 0; r < 16; r++ {
		VPDPBUSD_BCST(gen.Nth(r%4, base[r/4], ws, ws3), xv, acc[r])
	}
	ADDQ(Imm(64), tile)
	for i := range base {
		ADDQ(Imm(4), base[i])
	}
	DECQ(ng)
	JNZ(LabelRef("loop"))

	wsum := Load(Param("wsum"), GP64())
	wsc := Load(Param("ws"), GP64())
	xsp := Load(Param("xs"), GP64())
	dst := Load(Param("dst"), GP64())
	ldd := GP64()
	Load(Param("ldd"), ldd)
	rows := Load(Param("rows"), GP64())
	nt := GP64()
	Load(Param("ntok"), nt)
	mask := GP32()
	MOVL(U32(0xffff), mask)
	BZHIL(nt.As32(), mask, mask)
	// Scatter indices: t*ldd for the 16 tokens.
	idx, xsv := ZMM(), ZMM()
	iota := GLOBL("iota16", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		DATA(4*i, U32(uint32(i)))
	}
	VMOVDQU32(iota, idx)
	lv := ZMM()
	VPBROADCASTD(ldd.As32(), lv)
	VPMULLD(lv, idx, idx)
	VMOVUPS(Mem{Base: xsp}, xsv)
	k := K()
	for r := 0; r < 16; r++ {
		CMPQ(rows, Imm(uint64(r)))
		JLE(LabelRef("done"))
		f, sc := ZMM(), ZMM()
		VPSUBD_BCST(Mem{Base: wsum, Disp: 4 * r}, acc[r], acc[r])
		VCVTDQ2PS(acc[r], f)
		VMULPS_BCST(Mem{Base: wsc, Disp: 4 * r}, xsv, sc)
		VMULPS(sc, f, f)
		KMOVW(mask, k) // a scatter clears its mask
		VSCATTERDPS(f, k, Mem{Base: dst, Index: idx, Scale: 4, Disp: 4 * r})
	}
	Label("done")
	VZEROUPPER()
	RET()
}

// absMaxBits: the largest |x| found by an integer max over the bits with
// the sign cleared. For non-negative floats bit order is value order, and
// NaN bits are above every number, so a NaN anywhere is the result, as
// Go's max builtin propagates NaN in the reference.
func absMaxBits() {
	TEXT("absMaxBitsAVX2", NOSPLIT, "func(x *float32, nblk int) uint32")
	// No pointer is kept past the call: the caller's arrays need not escape.
	Pragma("noescape")
	Doc("absMaxBitsAVX2 returns the float32 bits of max|x| over 8*nblk values (nblk > 0),",
		"NaN if any is NaN.")
	x := Load(Param("x"), GP64())
	n := Load(Param("nblk"), GP64())
	mask, m := YMM(), YMM()
	VMOVDQU(gen.Splat32("absmask", 0x7fffffff), mask)
	VPXOR(m, m, m)
	Label("loop")
	v := YMM()
	VPAND(Mem{Base: x}, mask, v)
	VPMAXSD(v, m, m)
	ADDQ(Imm(32), x)
	DECQ(n)
	JNZ(LabelRef("loop"))
	hi := XMM()
	VEXTRACTI128(Imm(1), m, hi)
	VPMAXSD(hi, m.AsX(), hi)
	t := XMM()
	VPSHUFD(Imm(0x4e), hi, t)
	VPMAXSD(t, hi, hi)
	VPSHUFD(Imm(0xb1), hi, t)
	VPMAXSD(t, hi, hi)
	r := GP32()
	VMOVD(hi, r)
	Store(r, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

// quantI8: q = roundEven(min(max(x*id, -127), 127)). MAXPS returns its
// second source when either is NaN, so NaN becomes -127, as in the
// reference; the clamp before VCVTPS2DQ (which rounds to nearest even
// under the default MXCSR) keeps the conversion in range, so the packs
// never saturate.
func quantI8() {
	TEXT("quantI8AVX2", NOSPLIT, "func(x *float32, nblk int, id float32, q *int8)")
	// No pointer is kept past the call: the caller's arrays need not escape.
	Pragma("noescape")
	Doc("quantI8AVX2 quantizes 32*nblk values (nblk > 0) with inverse scale id into q.")
	x := Load(Param("x"), GP64())
	n := Load(Param("nblk"), GP64())
	q := Load(Param("q"), GP64())
	idx := Load(Param("id"), XMM())
	id, lo, hi, perm := YMM(), YMM(), YMM(), YMM()
	VBROADCASTSS(idx, id)
	VBROADCASTSS(gen.Scalar32("neg127", 0xc2fe0000), lo)
	VBROADCASTSS(gen.Scalar32("pos127", 0x42fe0000), hi)
	permIdx := GLOBL("permd", RODATA|NOPTR)
	for i, v := range []uint32{0, 4, 1, 5, 2, 6, 3, 7} {
		DATA(4*i, U32(v))
	}
	VMOVDQU(permIdx, perm)
	Label("loop")
	var v [4]reg.VecVirtual
	for i := range v {
		v[i] = YMM()
		VMULPS(Mem{Base: x, Disp: 32 * i}, id, v[i])
		VMAXPS(lo, v[i], v[i])
		VMINPS(hi, v[i], v[i])
		VCVTPS2DQ(v[i], v[i])
	}
	VPACKSSDW(v[1], v[0], v[0]) // per lane: a0-3 b0-3 | a4-7 b4-7
	VPACKSSDW(v[3], v[2], v[2])
	VPACKSSWB(v[2], v[0], v[0]) // per lane: a0-3 b0-3 c0-3 d0-3 | a4-7 ...
	VPERMD(v[0], perm, v[0])
	VMOVDQU(v[0], Mem{Base: q})
	ADDQ(Imm(128), x)
	ADDQ(Imm(32), q)
	DECQ(n)
	JNZ(LabelRef("loop"))
	VZEROUPPER()
	RET()
}
