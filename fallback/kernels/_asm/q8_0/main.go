// Command q8_0 generates the AVX2 matrix-vector product of Q8_0 weights in
// GGUF layout with a Q8_0 activation row (decode without a Prepared
// matrix), and the activation block infos it uses. Multi-token products
// run on the panel layout (../panel) or, with AVX2 alone, on the 4x3 tile
// of ../q8tile.
package main

//go:generate go run . -out ../../q8_0_amd64.s -stubs ../../q8_0_amd64.go -pkg kernels

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"

	"qinfer/fallback/kernels/_asm/internal/gen"
)

const blockBytes = 34 // fp16 d + 32 int8

func main() {
	gen.Header()
	blockInfo()
	gemv()
	Generate()
}

// blockInfo converts, once per call, every activation block's scale to
// float32 for all rows. Activation rows are contiguous, so one call covers
// all tokens.
func blockInfo() {
	TEXT("blockInfoQ8_0AVX2", NOSPLIT, "func(x *byte, nblocks int, aux *int32)")
	Doc("blockInfoQ8_0AVX2 writes, for each of nblocks Q8_0 blocks at x, the block scale",
		"as float32 bits to aux[2i] (aux[2i+1] is left alone).")
	x := Load(Param("x"), GP64())
	n := Load(Param("nblocks"), GP64())
	aux := Load(Param("aux"), GP64())
	Label("blk")
	d := XMM()
	VPBROADCASTW(Mem{Base: x}, d)
	VCVTPH2PS(d, d)
	VMOVSS(d, Mem{Base: aux})
	ADDQ(Imm(blockBytes), x)
	ADDQ(Imm(8), aux)
	DECQ(n)
	JNZ(LabelRef("blk"))
	RET()
}

// gemv: per block and row, |w| times sign(x, w) with VPMADDUBSW (exact:
// pairs stay below 2*128*127), VPMADDWD against ones to int32, then the
// block scale in float, as llama.cpp's ggml_vec_dot_q8_0_q8_0. Four rows
// share each activation load.
func gemv() {
	TEXT("gemvQ8_0AVX2", NOSPLIT, "func(w *byte, wstride, rows int, x *byte, aux *int32, nb int, dst *float32)")
	Doc("gemvQ8_0AVX2 sets dst[r] = dot(row r, x) for rows rows of Q8_0 weights",
		"wstride bytes apart; aux holds the activation's block scales as float32",
		"at every other int32 (see blockInfoQ8_0AVX2).")
	w := Load(Param("w"), GP64())
	ws := Load(Param("wstride"), GP64())
	rows := Load(Param("rows"), GP64())
	dst := Load(Param("dst"), GP64())
	ws3 := GP64()
	LEAQ(Mem{Base: ws, Index: ws, Scale: 2}, ws3)
	ones := YMM()
	VMOVDQU(gen.Splat16("ones16", 1), ones)

	for _, nr := range []int{4, 1} {
		loop, next := fmt.Sprintf("rows%d", nr), fmt.Sprintf("rows%d_done", nr)
		Label(loop)
		CMPQ(rows, Imm(uint64(nr)))
		JL(LabelRef(next))
		x := Load(Param("x"), GP64())
		aux := Load(Param("aux"), GP64())
		n := Load(Param("nb"), GP64())
		wp := GP64()
		MOVQ(w, wp)
		acc := make([]reg.VecVirtual, nr)
		for r := range acc {
			acc[r] = YMM()
			VXORPS(acc[r], acc[r], acc[r])
		}
		// The next group of rows follows this one in memory: prefetch it
		// at the pace this group is read (nr blocks per iteration),
		// across the page boundaries where the hardware prefetchers stop.
		var pf reg.GPVirtual
		if nr == 4 {
			pf = GP64()
			LEAQ(Mem{Base: w, Index: ws, Scale: 4}, pf)
		}
		blk := fmt.Sprintf("blk%d", nr)
		Label(blk)
		if nr == 4 {
			gen.Prefetch(pf, 0, 4*blockBytes)
			ADDQ(U32(4*blockBytes), pf)
		}
		X := YMM()
		VMOVDQU(Mem{Base: x, Disp: 2}, X)
		DX := YMM()
		VBROADCASTSS(Mem{Base: aux}, DX)
		for r := 0; r < nr; r++ {
			m := gen.Nth(r, wp, ws, ws3, 0)
			W, A, S := YMM(), YMM(), YMM()
			VMOVDQU(m.Offset(2), W)
			VPABSB(W, A)
			VPSIGNB(W, X, S)
			VPMADDUBSW(S, A, S)
			VPMADDWD(ones, S, S)
			VCVTDQ2PS(S, S)
			D := gen.BroadcastFP16(m)
			VMULPS(DX, D, D)
			VFMADD231PS(S, D, acc[r])
		}
		ADDQ(Imm(blockBytes), wp)
		ADDQ(Imm(blockBytes), x)
		ADDQ(Imm(8), aux)
		DECQ(n)
		JNZ(LabelRef(blk))
		for r := 0; r < nr; r++ {
			VMOVSS(gen.HsumPS(acc[r]), Mem{Base: dst, Disp: 4 * r})
		}
		ADDQ(Imm(uint64(4*nr)), dst)
		if nr == 4 {
			LEAQ(Mem{Base: w, Index: ws, Scale: 4}, w)
		} else {
			ADDQ(ws, w)
		}
		SUBQ(Imm(uint64(nr)), rows)
		JMP(LabelRef(loop))
		Label(next)
	}
	VZEROUPPER()
	RET()
}
