// Command outlier generates the float side product of split (LLM.int8())
// row-format weights: for a block of 8 weight rows whose outlier-column
// weights are stored [k][8], the sums over j of x[t][j] * w[j][r] for 1,
// 2 or 4 tokens, in quant.OutlierDot's order.
package main

//go:generate go run . -out ../../outlier_amd64.s -stubs ../../outlier_amd64.go -pkg rowkernels

import (
	"fmt"

	"qinfer/fallback/rowkernels/_asm/internal/gen"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

func main() {
	ConstraintExpr("!purego")
	for _, nt := range []int{1, 2, 4} {
		outlierDot(nt)
	}
	Generate()
}

// outlierDot generates outlierDotAVX2x<T>. Each lane is one weight row and
// accumulates its own sum in j order: VMULPS rounds the product to float32
// and VADDPS adds it, the scalar reference's two roundings (no FMA), so
// the lanes give the reference's bits. The accumulators start at +0, as
// the reference's sum does, and end added to dst (float addition is
// commutative, so dst + sum is the reference's i + o).
func outlierDot(nt int) {
	name := fmt.Sprintf("outlierDotAVX2x%d", nt)
	TEXT(name, NOSPLIT, "func(w *float32, k int, x *float32, xstride int, dst *float32, dstride int)")
	// No pointer is kept past the call: the caller's arrays need not escape.
	Pragma("noescape")
	Doc(name+" adds to dst[t][r] the sum over j < k of x[t][j] * w[j*8+r], accumulated in",
		fmt.Sprintf("float32 in increasing j, for r < 8 and t < %d (token rows xstride bytes apart,", nt),
		"dst rows dstride bytes apart). k must be > 0.")
	w := Load(Param("w"), GP64())
	k := Load(Param("k"), GP64())
	x := Load(Param("x"), GP64())
	xs := Load(Param("xstride"), GP64())
	var xs3 reg.GPVirtual
	if nt == 4 {
		xs3 = GP64()
		LEAQ(Mem{Base: xs, Index: xs, Scale: 2}, xs3)
	}
	acc := make([]reg.VecVirtual, nt)
	for t := range acc {
		acc[t] = YMM()
		VXORPS(acc[t], acc[t], acc[t])
	}
	Label("loop")
	wv := YMM()
	VMOVUPS(Mem{Base: w}, wv)
	for t := range acc {
		p := YMM()
		VBROADCASTSS(gen.Nth(t, x, xs, xs3), p)
		VMULPS(wv, p, p)
		VADDPS(p, acc[t], acc[t])
	}
	ADDQ(Imm(32), w)
	ADDQ(Imm(4), x)
	DECQ(k)
	JNZ(LabelRef("loop"))
	dst := Load(Param("dst"), GP64())
	ds := Load(Param("dstride"), GP64())
	var ds3 reg.GPVirtual
	if nt == 4 {
		ds3 = GP64()
		LEAQ(Mem{Base: ds, Index: ds, Scale: 2}, ds3)
	}
	for t := range acc {
		VADDPS(gen.Nth(t, dst, ds, ds3), acc[t], acc[t])
		VMOVUPS(acc[t], gen.Nth(t, dst, ds, ds3))
	}
	VZEROUPPER()
	RET()
}
