// Command float generates the AVX2 dot-product kernels for F32 and F16
// weights (against activations of the same type), used for the small
// tensors models keep in float.
package main

//go:generate go run . -out ../../float_amd64.s -stubs ../../float_amd64.go -pkg kernels

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"

	"qinfer/fallback/kernels/_asm/internal/gen"
)

func main() {
	gen.Header()
	gemv("gemvF32AVX2", "F32", 4)
	gemv("gemvF16AVX2", "F16", 2)
	Generate()
}

// load8 loads eight elements at m as float32.
func load8(m Mem, size int, dst reg.VecVirtual) {
	if size == 4 {
		VMOVUPS(m, dst)
	} else {
		VCVTPH2PS(m, dst)
	}
}

// gemv: four independent accumulators hide the FMA latency; the n%8 tail
// runs one element at a time with scalar FMA.
func gemv(name, format string, size int) {
	TEXT(name, NOSPLIT, "func(w *byte, wstride, rows int, x *byte, n int, dst *float32)")
	Doc(name+" sets dst[r] = dot(row r, x) for rows rows of n "+format+" weights",
		"wstride bytes apart and one "+format+" activation row.")
	w := Load(Param("w"), GP64())
	ws := Load(Param("wstride"), GP64())
	rows := Load(Param("rows"), GP64())
	dst := Load(Param("dst"), GP64())
	TESTQ(rows, rows)
	JZ(LabelRef("done"))
	Label("row")
	x := Load(Param("x"), GP64())
	n := Load(Param("n"), GP64())
	wp := GP64()
	MOVQ(w, wp)
	var acc [4]reg.VecVirtual
	for i := range acc {
		acc[i] = YMM()
		VXORPS(acc[i], acc[i], acc[i])
	}
	Label("loop32")
	CMPQ(n, Imm(32))
	JL(LabelRef("loop8"))
	gen.Prefetch(wp, gen.PrefetchAhead, 32*size)
	for i := 0; i < 4; i++ {
		a, b := YMM(), YMM()
		load8(Mem{Base: wp, Disp: 8 * size * i}, size, a)
		load8(Mem{Base: x, Disp: 8 * size * i}, size, b)
		VFMADD231PS(a, b, acc[i])
	}
	ADDQ(Imm(uint64(32*size)), wp)
	ADDQ(Imm(uint64(32*size)), x)
	SUBQ(Imm(32), n)
	JMP(LabelRef("loop32"))
	Label("loop8")
	CMPQ(n, Imm(8))
	JL(LabelRef("tail"))
	a, b := YMM(), YMM()
	load8(Mem{Base: wp}, size, a)
	load8(Mem{Base: x}, size, b)
	VFMADD231PS(a, b, acc[0])
	ADDQ(Imm(uint64(8*size)), wp)
	ADDQ(Imm(uint64(8*size)), x)
	SUBQ(Imm(8), n)
	JMP(LabelRef("loop8"))
	Label("tail")
	VADDPS(acc[1], acc[0], acc[0])
	VADDPS(acc[3], acc[2], acc[2])
	VADDPS(acc[2], acc[0], acc[0])
	s := gen.HsumPS(acc[0])
	TESTQ(n, n)
	JZ(LabelRef("store"))
	Label("scalar")
	sa, sb := XMM(), XMM()
	if size == 4 {
		VMOVSS(Mem{Base: wp}, sa)
		VMOVSS(Mem{Base: x}, sb)
	} else {
		VPBROADCASTW(Mem{Base: wp}, sa)
		VCVTPH2PS(sa, sa)
		VPBROADCASTW(Mem{Base: x}, sb)
		VCVTPH2PS(sb, sb)
	}
	VFMADD231SS(sa, sb, s)
	ADDQ(Imm(uint64(size)), wp)
	ADDQ(Imm(uint64(size)), x)
	DECQ(n)
	JNZ(LabelRef("scalar"))
	Label("store")
	VMOVSS(s, Mem{Base: dst})
	ADDQ(Imm(4), dst)
	ADDQ(ws, w)
	DECQ(rows)
	JNZ(LabelRef("row"))
	Label("done")
	VZEROUPPER()
	RET()
}
