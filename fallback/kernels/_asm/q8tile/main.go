// Command q8tile generates the AVX2 tile of Q8_0 weights in GGUF layout
// times several Q8_0 activation rows: up to 4 rows by 3 tokens, one 8-lane
// float accumulator per row and token, in llama.cpp's vec_dot order
// (order.go one folder up), as llamafile's tinyBLAS computes Q8_0 prompts
// on AVX2. The one-row kernel (../q8_0) gives the same floats.
package main

//go:generate go run . -out ../../q8tile_amd64.s -stubs ../../q8tile_amd64.go -pkg kernels

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"

	"qinfer/fallback/kernels/_asm/internal/gen"
)

const (
	blockBytes = 34 // GGUF Q8_0 block: fp16 d + 32 int8
	qsBytes    = 32 // a block's quants in the activation layout
	// maxRows x maxTok accumulators (12) plus four working registers fill
	// the 16 YMM registers: per row its quants and their absolute values,
	// per product the integer lanes and the broadcast scale.
	maxRows = 4
	maxTok  = 3
)

func main() {
	gen.Header()
	acts()
	tile()
	Generate()
}

// acts splits Q8_0 activation blocks into their quants, which the tile
// then loads whole from 32-byte aligned memory (a 34-byte block's quants
// straddle a cache line every other block, and each is loaded by four
// rows), and their scales as float32.
func acts() {
	TEXT("q8TileActsAVX2", NOSPLIT, "func(x *byte, nblocks int, qs *byte, d *int32)")
	Doc("q8TileActsAVX2 writes the quants of nblocks Q8_0 blocks at x to qs, 32 bytes",
		"per block (qs must be 32-byte aligned), and their scales to d as float32 bits.")
	x := Load(Param("x"), GP64())
	n := Load(Param("nblocks"), GP64())
	qs := Load(Param("qs"), GP64())
	d := Load(Param("d"), GP64())
	Label("blk")
	q := YMM()
	VMOVDQU(Mem{Base: x, Disp: 2}, q)
	VMOVDQA(q, Mem{Base: qs})
	s := XMM()
	VPBROADCASTW(Mem{Base: x}, s)
	VCVTPH2PS(s, s)
	VMOVSS(s, Mem{Base: d})
	ADDQ(Imm(blockBytes), x)
	ADDQ(Imm(qsBytes), qs)
	ADDQ(Imm(4), d)
	DECQ(n)
	JNZ(LabelRef("blk"))
	VZEROUPPER()
	RET()
}

// tile emits one function that branches on (rows, ntok) to a loop
// specialized for that shape, so the edges of a matrix run the same
// instructions as its interior.
func tile() {
	TEXT("q8TileAVX2", NOSPLIT, "func(w *byte, wstride, rows int, xq *byte, ntok int, xd *int32, nb int, dst *float32, ldd int)")
	Doc("q8TileAVX2 sets dst[t*ldd+r] = dot(row r, token t) for r < rows <= 4 and",
		"t < ntok <= 3: Q8_0 weight rows of nb blocks, wstride bytes apart, and",
		"activations as q8TileActsAVX2 lays them out: token t's quants at",
		"xq[t*nb*32:], its scales (float32 bits) at xd[t*nb:]. The floats are those of",
		"ggml_vec_dot_q8_0_q8_0 (and gemvQ8_0AVX2).")
	// d[t] holds, for token t, the products of the rows' scales with the
	// token's: row r's at 4r (see shape). Go does not align the frame.
	d := AllocLocal(16 * maxTok)
	rows := Load(Param("rows"), GP64())
	ntok := Load(Param("ntok"), GP64())
	for nr := maxRows; nr >= 1; nr-- {
		for nt := maxTok; nt >= 1; nt-- {
			skip := fmt.Sprintf("not%dx%d", nr, nt)
			CMPQ(rows, Imm(uint64(nr)))
			JNE(LabelRef(skip))
			CMPQ(ntok, Imm(uint64(nt)))
			JNE(LabelRef(skip))
			shape(nr, nt, d)
			JMP(LabelRef("done"))
			Label(skip)
		}
	}
	Label("done")
	VZEROUPPER()
	RET()
}

// shape is the loop of an nr x nt tile. Per block, row and token, as
// ggml_vec_dot_q8_0_q8_0 on AVX2: VPSIGNB gives x with w's signs, so
// VPMADDUBSW(|w|, that) is exact in int16 (pairs below 2*128*127);
// VPMADDWD against ones makes int32 lane i the sum of products 4i..4i+3;
// VCVTDQ2PS; then acc = fma(dw*dx, lanes, acc), dw*dx a float32 product.
//
// The products dw*dx are the same floats whichever instruction forms
// them, so they are formed per block for all rows of a token at once (the
// rows' scales in one vector times the token's) and stored, and each row
// and token broadcasts its own from memory: one multiply per token instead
// of one per row and token, on the two ports that the integer and float
// work of every row and token also needs.
func shape(nr, nt int, d Mem) {
	w := Load(Param("w"), GP64())
	ws := Load(Param("wstride"), GP64())
	x := Load(Param("xq"), GP64())
	xd := Load(Param("xd"), GP64())
	n := Load(Param("nb"), GP64())
	// Token strides: nb*32 bytes of quants, nb*4 of scales.
	xs, ds := GP64(), GP64()
	MOVQ(n, xs)
	SHLQ(Imm(5), xs)
	MOVQ(n, ds)
	SHLQ(Imm(2), ds)
	var ws3 reg.GPVirtual
	if nr == 4 {
		ws3 = GP64()
		LEAQ(Mem{Base: ws, Index: ws, Scale: 2}, ws3)
	}
	ones := gen.Splat16("ones16", 1)

	var acc [maxRows][maxTok]reg.VecVirtual
	for r := 0; r < nr; r++ {
		for t := 0; t < nt; t++ {
			acc[r][t] = YMM()
			VXORPS(acc[r][t], acc[r][t], acc[r][t])
		}
	}
	blk := fmt.Sprintf("blk%dx%d", nr, nt)
	Label(blk)
	// The rows' fp16 scales in words 0..nr-1 (the rest unused), widened.
	dw := XMM()
	VPBROADCASTW(Mem{Base: w}, dw)
	for r := 1; r < nr; r++ {
		VPINSRW(Imm(uint64(r)), gen.Nth(r, w, ws, ws3, 0), dw, dw)
	}
	VCVTPH2PS(dw, dw)
	for t := 0; t < nt; t++ {
		dx := XMM()
		VBROADCASTSS(gen.Nth(t, xd, ds, nil, 0), dx)
		VMULPS(dw, dx, dx)
		VMOVUPS(dx, d.Offset(16*t))
	}
	for r := 0; r < nr; r++ {
		wq, a := YMM(), YMM()
		VMOVDQU(gen.Nth(r, w, ws, ws3, 2), wq)
		VPABSB(wq, a)
		for t := 0; t < nt; t++ {
			s := YMM()
			VMOVDQA(gen.Nth(t, x, xs, nil, 0), s)
			VPSIGNB(wq, s, s)
			VPMADDUBSW(s, a, s)
			VPMADDWD(ones, s, s)
			VCVTDQ2PS(s, s)
			f := YMM()
			VBROADCASTSS(d.Offset(16*t+4*r), f)
			VFMADD231PS(s, f, acc[r][t])
		}
	}
	ADDQ(Imm(blockBytes), w)
	ADDQ(Imm(qsBytes), x)
	ADDQ(Imm(4), xd)
	DECQ(n)
	JNZ(LabelRef(blk))

	dst := Load(Param("dst"), GP64())
	ldd := Load(Param("ldd"), GP64())
	SHLQ(Imm(2), ldd)
	for t := 0; t < nt; t++ {
		if t > 0 {
			ADDQ(ldd, dst)
		}
		for r := 0; r < nr; r++ {
			VMOVSS(gen.HsumPS(acc[r][t]), Mem{Base: dst, Disp: 4 * r})
		}
	}
}
