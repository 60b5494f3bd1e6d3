// Command q8_0 generates the AVX2 kernels for Q8_0 weights against Q8_0
// activations: a matrix-vector product on the GGUF layout (decode), the
// packing of eight weight rows into an interleaved panel, and the panel
// times many tokens product (prompts).
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
	pack()
	gemm()
	Generate()
}

// blockInfo precomputes, once per call, what every weight row needs from an
// activation block: its scale widened to float32 and 8 times the sum of
// its quants (Q4_0 weights are q-8 with q stored unsigned, so a dot is
// sum(q*x) - 8*sum(x)). Activation rows are contiguous, so one call covers
// all tokens.
func blockInfo() {
	TEXT("blockInfoQ8_0AVX2", NOSPLIT, "func(x *byte, nblocks int, aux *int32)")
	Doc("blockInfoQ8_0AVX2 writes, for each of nblocks Q8_0 blocks at x, the block scale",
		"as float32 bits and 8 times the sum of its quants to aux[2i] and aux[2i+1].")
	x := Load(Param("x"), GP64())
	n := Load(Param("nblocks"), GP64())
	aux := Load(Param("aux"), GP64())
	ones8, ones16 := YMM(), YMM()
	VMOVDQU(gen.Splat8("ones8", 1), ones8)
	VMOVDQU(gen.Splat16("ones16", 1), ones16)
	Label("blk")
	s := YMM()
	VMOVDQU(Mem{Base: x, Disp: 2}, s)
	VPMADDUBSW(s, ones8, s)
	VPMADDWD(ones16, s, s)
	h := XMM()
	VEXTRACTI128(Imm(1), s, h)
	VPADDD(s.AsX(), h, h)
	t := XMM()
	VPSHUFD(Imm(0x4e), h, t)
	VPADDD(t, h, h)
	VPSHUFD(Imm(0xb1), h, t)
	VPADDD(t, h, h)
	VPSLLD(Imm(3), h, h)
	VMOVD(h, Mem{Base: aux, Disp: 4})
	d := XMM()
	VPBROADCASTW(Mem{Base: x}, d)
	VCVTPH2PS(d, d)
	VMOVSS(d, Mem{Base: aux})
	ADDQ(Imm(blockBytes), x)
	ADDQ(Imm(8), aux)
	DECQ(n)
	JNZ(LabelRef("blk"))
	VZEROUPPER()
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
		blk := fmt.Sprintf("blk%d", nr)
		Label(blk)
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

// pack interleaves eight rows block by block: per block, the eight scales
// as float32, then for each 4-byte group g of the block the group of every
// row (32 bytes). The GEMM then gets eight rows' partial sums in the eight
// int32 lanes of one register, so its float work is once per 8x32 MACs.
func pack() {
	TEXT("packQ8_0x8AVX2", NOSPLIT, "func(w *byte, wstride, nb int, dst *byte)")
	Doc("packQ8_0x8AVX2 packs eight Q8_0 rows (wstride bytes apart, nb blocks) into",
		"the panel layout of gemmQ8_0x8AVX2: per block 8 float32 scales and 8x32 bytes.")
	w := Load(Param("w"), GP64())
	ws := Load(Param("wstride"), GP64())
	n := Load(Param("nb"), GP64())
	dst := Load(Param("dst"), GP64())
	ws3 := GP64()
	LEAQ(Mem{Base: ws, Index: ws, Scale: 2}, ws3)
	p4 := GP64()
	LEAQ(Mem{Base: w, Index: ws, Scale: 4}, p4)
	Label("blk")
	sx := XMM()
	VPXOR(sx, sx, sx)
	for r := 0; r < 8; r++ {
		VPINSRW(Imm(uint64(r)), gen.RowAddr(r, w, p4, ws, ws3, 0), sx, sx)
	}
	sy := YMM()
	VCVTPH2PS(sx, sy)
	VMOVUPS(sy, Mem{Base: dst})
	var rows [8]reg.VecVirtual
	for r := range rows {
		rows[r] = YMM()
		VMOVDQU(gen.RowAddr(r, w, p4, ws, ws3, 2), rows[r])
	}
	out := gen.Transpose8x8(rows)
	for g, v := range out {
		VMOVDQU(v, Mem{Base: dst, Disp: 32 + 32*g})
	}
	ADDQ(Imm(blockBytes), w)
	ADDQ(Imm(blockBytes), p4)
	ADDQ(U32(288), dst)
	DECQ(n)
	JNZ(LabelRef("blk"))
	VZEROUPPER()
	RET()
}

// gemm multiplies a packed panel of eight rows with ntok activation rows,
// four tokens at a time: each 32-byte weight group is loaded and made
// absolute once and used for four tokens, and the block scales are applied
// to eight rows at once.
func gemm() {
	TEXT("gemmQ8_0x8AVX2", NOSPLIT, "func(panel *byte, nb int, x *byte, xstride int, aux *int32, ntok int, dst *float32, ldd int)")
	Doc("gemmQ8_0x8AVX2 sets dst[t*ldd+r] = dot(panel row r, x row t) for r < 8, t < ntok;",
		"activation rows are xstride bytes apart and their block infos nb*8 bytes apart in aux.")
	x := Load(Param("x"), GP64())
	xs := Load(Param("xstride"), GP64())
	aux := Load(Param("aux"), GP64())
	ntok := Load(Param("ntok"), GP64())
	dst := Load(Param("dst"), GP64())
	ldd := Load(Param("ldd"), GP64())
	SHLQ(Imm(2), ldd)
	as := Load(Param("nb"), GP64())
	SHLQ(Imm(3), as)
	ones := YMM()
	VMOVDQU(gen.Splat16("ones16", 1), ones)

	Label("tok4")
	CMPQ(ntok, Imm(4))
	JL(LabelRef("tail"))
	gemmTile(4, x, xs, aux, as, dst, ldd, ones)
	for i := 0; i < 4; i++ {
		ADDQ(xs, x)
		ADDQ(as, aux)
		ADDQ(ldd, dst)
	}
	SUBQ(Imm(4), ntok)
	JMP(LabelRef("tok4"))
	Label("tail")
	for nt := 3; nt >= 1; nt-- {
		CMPQ(ntok, Imm(uint64(nt)))
		JNE(LabelRef(fmt.Sprintf("not%d", nt)))
		gemmTile(nt, x, xs, aux, as, dst, ldd, ones)
		JMP(LabelRef("done"))
		Label(fmt.Sprintf("not%d", nt))
	}
	Label("done")
	VZEROUPPER()
	RET()
}

func gemmTile(nt int, x0, xs, aux0, as, dst, ldd reg.Register, ones reg.VecVirtual) {
	Commentf("tile of 8 rows x %d tokens", nt)
	pp := Load(Param("panel"), GP64())
	n := Load(Param("nb"), GP64())
	x, aux := GP64(), GP64()
	MOVQ(x0, x)
	MOVQ(aux0, aux)
	var xs3, as3 reg.Register
	if nt == 4 {
		xs3, as3 = GP64(), GP64()
		LEAQ(Mem{Base: xs, Index: xs, Scale: 2}, xs3)
		LEAQ(Mem{Base: as, Index: as, Scale: 2}, as3)
	}
	acc := make([]reg.VecVirtual, nt)
	for t := range acc {
		acc[t] = YMM()
		VXORPS(acc[t], acc[t], acc[t])
	}
	blk := fmt.Sprintf("blk%d", nt)
	Label(blk)
	isum := make([]reg.VecVirtual, nt)
	for t := range isum {
		isum[t] = YMM()
		VPXOR(isum[t], isum[t], isum[t])
	}
	for g := 0; g < 8; g++ {
		W, A := YMM(), YMM()
		VMOVDQU(Mem{Base: pp, Disp: 32 + 32*g}, W)
		VPABSB(W, A)
		for t := 0; t < nt; t++ {
			X := YMM()
			VPBROADCASTD(gen.Nth(t, x, xs, xs3, 2+4*g), X)
			VPSIGNB(W, X, X)
			VPMADDUBSW(X, A, X)
			VPMADDWD(ones, X, X)
			VPADDD(X, isum[t], isum[t])
		}
	}
	DW := YMM()
	VMOVUPS(Mem{Base: pp}, DW)
	for t := 0; t < nt; t++ {
		S := YMM()
		VBROADCASTSS(gen.Nth(t, aux, as, as3, 0), S)
		VMULPS(DW, S, S)
		VCVTDQ2PS(isum[t], isum[t])
		VFMADD231PS(isum[t], S, acc[t])
	}
	ADDQ(U32(288), pp)
	ADDQ(Imm(blockBytes), x)
	ADDQ(Imm(8), aux)
	DECQ(n)
	JNZ(LabelRef(blk))
	d := GP64()
	MOVQ(dst, d)
	for t := 0; t < nt; t++ {
		VMOVUPS(acc[t], Mem{Base: d})
		if t < nt-1 {
			ADDQ(ldd, d)
		}
	}
}
