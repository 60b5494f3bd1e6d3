// Command q4_0 generates the AVX2 kernels for Q4_0 weights against Q8_0
// activations: a matrix-vector product on the GGUF layout (decode), the
// packing of eight weight rows into an interleaved panel of unpacked
// nibbles, and the panel times many tokens product (prompts).
package main

//go:generate go run . -out ../../q4_0_amd64.s -stubs ../../q4_0_amd64.go -pkg kernels

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"

	"qinfer/fallback/kernels/_asm/internal/gen"
)

const (
	blockBytes = 18 // fp16 d + 16 bytes of nibbles
	actBytes   = 34 // Q8_0 activation block
	panelBlock = 288
)

func main() {
	gen.Header()
	gemv()
	pack()
	gemm()
	Generate()
}

// nibbles loads the 16 quant bytes at m and returns the 32 weights as
// unsigned bytes in element order: low nibbles are elements 0-15, high
// nibbles 16-31.
func nibbles(m Mem, mask reg.VecVirtual) reg.VecVirtual {
	q, h := YMM(), YMM()
	VBROADCASTI128(m, q)
	VPSRLW(Imm(4), q, h)
	VPBLENDD(Imm(0xf0), h, q, q)
	VPAND(mask, q, q)
	return q
}

// gemv: weights stay unsigned (q in 0..15), so VPMADDUBSW takes them
// directly against the signed activations (pairs below 2*15*128) and no
// sign juggling is needed; the -8 offset is applied as 8*sum(x), which
// blockInfoQ8_0AVX2 precomputed, subtracted from one lane.
func gemv() {
	TEXT("gemvQ4_0AVX2", NOSPLIT, "func(w *byte, wstride, rows int, x *byte, aux *int32, nb int, dst *float32)")
	Doc("gemvQ4_0AVX2 sets dst[r] = dot(row r, x) for rows rows of Q4_0 weights",
		"wstride bytes apart; aux holds the activation's block infos (blockInfoQ8_0AVX2).")
	w := Load(Param("w"), GP64())
	ws := Load(Param("wstride"), GP64())
	rows := Load(Param("rows"), GP64())
	dst := Load(Param("dst"), GP64())
	ws3 := GP64()
	LEAQ(Mem{Base: ws, Index: ws, Scale: 2}, ws3)
	ones, mask := YMM(), YMM()
	VMOVDQU(gen.Splat16("ones16", 1), ones)
	VMOVDQU(gen.Splat8("nib4", 0x0f), mask)

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
		C := XMM()
		VMOVD(Mem{Base: aux, Disp: 4}, C)
		for r := 0; r < nr; r++ {
			m := gen.Nth(r, wp, ws, ws3, 0)
			Q := nibbles(m.Offset(2), mask)
			VPMADDUBSW(X, Q, Q)
			VPMADDWD(ones, Q, Q)
			VPSUBD(C.AsY(), Q, Q)
			VCVTDQ2PS(Q, Q)
			D := gen.BroadcastFP16(m)
			VMULPS(DX, D, D)
			VFMADD231PS(Q, D, acc[r])
		}
		ADDQ(Imm(blockBytes), wp)
		ADDQ(Imm(actBytes), x)
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

// pack interleaves eight rows block by block as the Q8_0 panel does, with
// the nibbles unpacked to bytes once here rather than for every token.
func pack() {
	TEXT("packQ4_0x8AVX2", NOSPLIT, "func(w *byte, wstride, nb int, dst *byte)")
	Doc("packQ4_0x8AVX2 packs eight Q4_0 rows (wstride bytes apart, nb blocks) into",
		"the panel layout of gemmQ4_0x8AVX2: per block 8 float32 scales and 8x32 quants 0..15.")
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
		mask := YMM()
		VMOVDQU(gen.Splat8("nib4", 0x0f), mask)
		rows[r] = nibbles(gen.RowAddr(r, w, p4, ws, ws3, 2), mask)
	}
	out := gen.Transpose8x8(rows)
	for g, v := range out {
		VMOVDQU(v, Mem{Base: dst, Disp: 32 + 32*g})
	}
	ADDQ(Imm(blockBytes), w)
	ADDQ(Imm(blockBytes), p4)
	ADDQ(U32(panelBlock), dst)
	DECQ(n)
	JNZ(LabelRef("blk"))
	VZEROUPPER()
	RET()
}

// gemm multiplies a packed panel of eight rows with ntok activation rows,
// four tokens at a time. Each 32-byte weight group is loaded once for four
// tokens; products of a block stay in int16 (8 groups of pairs below
// 2*15*128 sum to at most 30720) and widen once per block.
func gemm() {
	TEXT("gemmQ4_0x8AVX2", NOSPLIT, "func(panel *byte, nb int, x *byte, xstride int, aux *int32, ntok int, dst *float32, ldd int)")
	Doc("gemmQ4_0x8AVX2 sets dst[t*ldd+r] = dot(panel row r, x row t) for r < 8, t < ntok;",
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
		W := YMM()
		VMOVDQU(Mem{Base: pp, Disp: 32 + 32*g}, W)
		for t := 0; t < nt; t++ {
			X := YMM()
			VPBROADCASTD(gen.Nth(t, x, xs, xs3, 2+4*g), X)
			VPMADDUBSW(X, W, X)
			VPADDW(X, isum[t], isum[t])
		}
	}
	DW := YMM()
	VMOVUPS(Mem{Base: pp}, DW)
	for t := 0; t < nt; t++ {
		VPMADDWD(ones, isum[t], isum[t])
		C := YMM()
		VPBROADCASTD(gen.Nth(t, aux, as, as3, 4), C)
		VPSUBD(C, isum[t], isum[t])
		VCVTDQ2PS(isum[t], isum[t])
		S := YMM()
		VBROADCASTSS(gen.Nth(t, aux, as, as3, 0), S)
		VMULPS(DW, S, S)
		VFMADD231PS(isum[t], S, acc[t])
	}
	ADDQ(U32(panelBlock), pp)
	ADDQ(Imm(actBytes), x)
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
