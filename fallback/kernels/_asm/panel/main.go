// Command panel generates the kernels of the 16-row panel layout of Q8_0
// and Q4_0 weights (see panel.go one folder up): packing GGUF rows into
// panels, laying out activation tiles, and the panel times tile products,
// with AVX512-VNNI (VPDPBUSD on 16 rows at once), with AVX-VNNI (the VEX
// VPDPBUSD on 8 rows, see gen/vex.go) and with AVX2. Each
// format's products follow llama.cpp's float order (order.go one folder
// up): Q8_0 keeps eight lane accumulators per row and token, Q4_0 one.
package main

//go:generate go run . -out ../../panel_amd64.s -stubs ../../panel_amd64.go -pkg kernels

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"

	"qinfer/fallback/kernels/_asm/internal/gen"
)

const (
	q8Block   = 34 // GGUF Q8_0 block: fp16 d + 32 int8
	q4Block   = 18 // GGUF Q4_0 block: fp16 d + 16 bytes of nibbles
	q8Lines   = 8  // 64-byte lines per Q8_0 panel block: 16 rows x 4 bytes each
	q4Lines   = 4  // Q4_0: each line holds two groups as nibbles
	lineSize  = 64
	panelRows = 16
	sBlock    = 32 // 16 fp16 row scales per panel block

	// An activation tile holds, per block and token, the 32 quants, the
	// scale as float32, the block's correction -(sum(q) << shift) and the
	// eight corrections of its 4-quant groups (tileActs).
	actQs    = 0
	actD     = 32
	actCorr  = 36
	actGCorr = 40
	actSize  = 72

	// q4VNNITile is the most tokens a Q4_0 VNNI tile computes at once:
	// two zmm registers per token (int block sum, float accumulator) and a
	// few shared ones must fit in 32. q8VNNITile: a Q8_0 tile keeps eight
	// float accumulators per token (one per lane of llama.cpp's order).
	q4VNNITile = 12
	q8VNNITile = 3
	// q4AVX2Tile is the same for AVX2's 16 registers (8 rows at a time);
	// a Q8_0 AVX2 tile runs one token.
	q4AVX2Tile = 4
	// q4AVXVNNITile: AVX-VNNI sums into int32 directly, so the weight line
	// and the activation broadcast need one register each (the line is
	// loaded twice, once per nibble half), leaving room for 6 tokens'
	// int32 sums and float accumulators. A Q8_0 tile runs one token, as
	// with AVX2: its eight lane accumulators take half the registers.
	q4AVXVNNITile = 6

	// prefetchTok is the most tokens for which a tile prefetches weights
	// prefetchDist bytes ahead (see gen.PrefetchAhead; a panel reads more
	// bytes per instruction, and twice the distance measured better).
	prefetchTok  = 2
	prefetchDist = 2 * gen.PrefetchAhead
)

func main() {
	gen.Header()
	packQ8_0()
	packQ4_0()
	tileActs()
	gemmQ8VNNI()
	gemmQ4VNNI()
	gemmQ8AVX2()
	gemmQ4AVX2()
	gemmQ8AVXVNNI()
	gemmQ4AVXVNNI()
	Generate()
}

// rows16 holds the registers that address 16 rows stride bytes apart:
// bases of rows 0, 4, 8 and 12, the stride and three times it.
type rows16 struct {
	base            [4]reg.Register
	stride, stride3 reg.Register
}

func loadRows16(w, stride reg.Register) rows16 {
	r := rows16{stride: stride, stride3: GP64()}
	LEAQ(Mem{Base: stride, Index: stride, Scale: 2}, r.stride3)
	r.base[0] = w
	for i := 1; i < 4; i++ {
		r.base[i] = GP64()
		LEAQ(Mem{Base: r.base[i-1], Index: stride, Scale: 4}, r.base[i])
	}
	return r
}

func (r rows16) addr(row, disp int) Mem {
	return gen.Nth(row%4, r.base[row/4], r.stride, r.stride3, disp)
}

func (r rows16) advance(n int) {
	for _, b := range r.base {
		ADDQ(Imm(uint64(n)), b)
	}
}

// nextPanel returns a pointer to the panel after the one at w (16 rows
// further), for prefetchNext.
func nextPanel(w, ws reg.Register) reg.GPVirtual {
	pf, t := GP64(), GP64()
	MOVQ(ws, t)
	SHLQ(Imm(4), t)
	LEAQ(Mem{Base: w, Index: t, Scale: 1}, pf)
	return pf
}

// prefetchNext prefetches the next panel's rows at the pace this one is
// read (16 blocks of blockBytes per iteration), across the page
// boundaries where the hardware prefetchers stop: packing a matrix per
// call streams it from memory.
func prefetchNext(pf reg.Register, blockBytes int) {
	gen.Prefetch(pf, 0, panelRows*blockBytes)
	ADDQ(U32(uint64(panelRows*blockBytes)), pf)
}

// packScales copies the fp16 scales of 16 rows' current blocks to s.
func packScales(r rows16, s reg.Register) {
	t := GP32()
	for row := 0; row < 16; row++ {
		MOVWLZX(r.addr(row, 0), t)
		MOVW(t.As16(), Mem{Base: s, Disp: 2 * row})
	}
}

// packQ8_0 transposes 16 rows block by block into the panel layout: line
// g of a block holds bytes 4g..4g+3 of every row (row r at dword r), with
// the sign bit flipped (q+128 as unsigned) so VPDPBUSD can take the
// weights as its unsigned operand.
func packQ8_0() {
	TEXT("packQ8_0x16AVX2", NOSPLIT, "func(w *byte, wstride, nb int, q, s *byte)")
	Doc("packQ8_0x16AVX2 packs 16 Q8_0 rows (wstride bytes apart, nb blocks) into a panel:",
		"nb*512 bytes of quants (q+128) at q and nb*32 bytes of fp16 scales at s.")
	w := Load(Param("w"), GP64())
	ws := Load(Param("wstride"), GP64())
	n := Load(Param("nb"), GP64())
	q := Load(Param("q"), GP64())
	s := Load(Param("s"), GP64())
	r := loadRows16(w, ws)
	pf := nextPanel(w, ws)
	flip := YMM()
	VMOVDQU(gen.Splat8("signbit8", 0x80), flip)
	Label("blk")
	prefetchNext(pf, q8Block)
	packScales(r, s)
	for h := 0; h < 2; h++ {
		var in [8]reg.VecVirtual
		for i := range in {
			in[i] = YMM()
			VPXOR(r.addr(8*h+i, 2), flip, in[i])
		}
		out := gen.Transpose8x8(in)
		for g, v := range out {
			VMOVDQU(v, Mem{Base: q, Disp: lineSize*g + 32*h})
		}
	}
	r.advance(q8Block)
	ADDQ(U32(q8Lines*lineSize), q)
	ADDQ(Imm(sBlock), s)
	DECQ(n)
	JNZ(LabelRef("blk"))
	VZEROUPPER()
	RET()
}

// packQ4_0 transposes the 16 nibble bytes of 16 rows per block: line g
// holds bytes 4g..4g+3 of every row, so its low nibbles are elements
// 4g..4g+3 and its high nibbles elements 16+4g..16+4g+3.
func packQ4_0() {
	TEXT("packQ4_0x16AVX2", NOSPLIT, "func(w *byte, wstride, nb int, q, s *byte)")
	Doc("packQ4_0x16AVX2 packs 16 Q4_0 rows (wstride bytes apart, nb blocks) into a panel:",
		"nb*256 bytes of nibbles at q and nb*32 bytes of fp16 scales at s.")
	w := Load(Param("w"), GP64())
	ws := Load(Param("wstride"), GP64())
	n := Load(Param("nb"), GP64())
	q := Load(Param("q"), GP64())
	s := Load(Param("s"), GP64())
	r := loadRows16(w, ws)
	pf := nextPanel(w, ws)
	Label("blk")
	prefetchNext(pf, q4Block)
	packScales(r, s)
	for quad := 0; quad < 4; quad++ {
		var in [4]reg.VecVirtual
		for i := range in {
			in[i] = XMM()
			VMOVDQU(r.addr(4*quad+i, 2), in[i])
		}
		// 4x4 dword transpose.
		t0, t1, t2, t3 := XMM(), XMM(), XMM(), XMM()
		VPUNPCKLDQ(in[1], in[0], t0)
		VPUNPCKHDQ(in[1], in[0], t1)
		VPUNPCKLDQ(in[3], in[2], t2)
		VPUNPCKHDQ(in[3], in[2], t3)
		out := [4]reg.VecVirtual{XMM(), XMM(), XMM(), XMM()}
		VPUNPCKLQDQ(t2, t0, out[0])
		VPUNPCKHQDQ(t2, t0, out[1])
		VPUNPCKLQDQ(t3, t1, out[2])
		VPUNPCKHQDQ(t3, t1, out[3])
		for g, v := range out {
			VMOVDQU(v, Mem{Base: q, Disp: lineSize*g + 16*quad})
		}
	}
	r.advance(q4Block)
	ADDQ(U32(q4Lines*lineSize), q)
	ADDQ(Imm(sBlock), s)
	DECQ(n)
	JNZ(LabelRef("blk"))
	RET()
}

// tileActs lays out ntok Q8_0 activation rows as one tile: block-major,
// then token, so a panel kernel reads a tile with a single pointer. The
// correction -(sum(q) << shift) removes the offset of unsigned weights
// (q+128 for Q8_0: shift 7; q for Q4_0, whose weights are q-8: shift 3);
// Q8_0's kernels, which keep the four-product groups apart, take the
// corrections of the groups.
func tileActs() {
	TEXT("tileActsAVX2", NOSPLIT, "func(x *byte, xstride, ntok, nb, shift int, dst *byte)")
	Doc("tileActsAVX2 writes ntok Q8_0 activation rows (xstride bytes apart, nb blocks)",
		"to dst as a tile: per block and token 32 quants, the float32 scale, -(sum(q) << shift)",
		"and the same for each 4-quant group (72 bytes).")
	x := Load(Param("x"), GP64())
	n := Load(Param("nb"), GP64())
	dst := Load(Param("dst"), GP64())
	sh := XMM()
	MOVQ(Load(Param("shift"), GP64()), sh)
	ones8, ones16, zero := YMM(), YMM(), YMM()
	VMOVDQU(gen.Splat8("ones8", 1), ones8)
	VMOVDQU(gen.Splat16("ones16", 1), ones16)
	VPXOR(zero, zero, zero)
	Label("blk")
	xs := Load(Param("xstride"), GP64())
	nt := Load(Param("ntok"), GP64())
	src := GP64()
	MOVQ(x, src)
	Label("tok")
	v := YMM()
	VMOVDQU(Mem{Base: src, Disp: 2}, v)
	VMOVDQU(v, Mem{Base: dst, Disp: actQs})
	VPMADDUBSW(v, ones8, v)
	VPMADDWD(ones16, v, v) // the sums of the eight 4-quant groups
	g := YMM()
	VPSLLD(sh, v, g)
	VPSUBD(g, zero.AsY(), g)
	VMOVDQU(g, Mem{Base: dst, Disp: actGCorr})
	h := XMM()
	VEXTRACTI128(Imm(1), v, h)
	VPADDD(v.AsX(), h, h)
	t := XMM()
	VPSHUFD(Imm(0x4e), h, t)
	VPADDD(t, h, h)
	VPSHUFD(Imm(0xb1), h, t)
	VPADDD(t, h, h)
	VPSLLD(sh, h, h)
	VPSUBD(h, zero.AsX(), h)
	VMOVD(h, Mem{Base: dst, Disp: actCorr})
	d := XMM()
	VPBROADCASTW(Mem{Base: src}, d)
	VCVTPH2PS(d, d)
	VMOVSS(d, Mem{Base: dst, Disp: actD})
	ADDQ(xs, src)
	ADDQ(Imm(actSize), dst)
	DECQ(nt)
	JNZ(LabelRef("tok"))
	ADDQ(Imm(q8Block), x)
	DECQ(n)
	JNZ(LabelRef("blk"))
	VZEROUPPER()
	RET()
}

// dispatch emits a comparison chain on ntok that runs tile(nt) for
// nt = max..1 and returns.
func dispatch(ntok reg.Register, max int, tile func(nt int)) {
	for nt := max; nt >= 1; nt-- {
		CMPQ(ntok, Imm(uint64(nt)))
		JNE(LabelRef(fmt.Sprintf("not%d", nt)))
		tile(nt)
		JMP(LabelRef("done"))
		Label(fmt.Sprintf("not%d", nt))
	}
	Label("done")
	VZEROUPPER()
	RET()
}

// vnniStore stores each token's 16 results under the mask of the rows.
func vnniStore(acc []reg.VecVirtual) {
	k := K()
	rows, mask := GP64(), GP32()
	Load(Param("rows"), rows)
	MOVL(U32(0xffff), mask)
	BZHIL(rows.As32(), mask, mask)
	KMOVW(mask, k)
	d := Load(Param("dst"), GP64())
	ldd := Load(Param("ldd"), GP64())
	SHLQ(Imm(2), ldd)
	for t := range acc {
		VMOVUPS(acc[t], k, Mem{Base: d})
		if t < len(acc)-1 {
			ADDQ(ldd, d)
		}
	}
}

// prefetch emits, for tiles of few tokens (which stream the panel from
// memory), prefetches of the block prefetchDist bytes ahead.
func prefetch(nt int, qp, sp reg.Register, lines int) {
	if nt <= prefetchTok {
		gen.Prefetch(qp, prefetchDist, lines*lineSize)
		gen.Prefetch(sp, prefetchDist/16, sBlock)
	}
}

// gemmQ4VNNI: per block, each token's int32 sums start at its correction
// and take one VPDPBUSD per weight line and nibble half (16 rows x 4
// bytes, the activation's 4 bytes broadcast from memory), exact in int32;
// then acc = fma(float(sum), dw*dx, acc), llama.cpp's repacked Q4_0 order.
// All of a tile's tokens share each weight line.
func gemmQ4VNNI() {
	name := "gemmQ4_0x16VNNI"
	TEXT(name, NOSPLIT, "func(q, s *byte, nb int, xt *byte, ntok int, dst *float32, ldd int, rows int)")
	Doc(name+" sets dst[t*ldd+r] = dot(panel row r, tile token t) for t < ntok (1..12)",
		"and r < rows (1..16); nb blocks.")
	ntok := Load(Param("ntok"), GP64())
	dispatch(ntok, q4VNNITile, func(nt int) {
		Commentf("tile of 16 rows x %d tokens", nt)
		qp := Load(Param("q"), GP64())
		sp := Load(Param("s"), GP64())
		n := Load(Param("nb"), GP64())
		xp := Load(Param("xt"), GP64())
		m4 := ZMM()
		VPBROADCASTD(gen.Splat8("nib4", 0x0f).Offset(0), m4)
		acc := make([]reg.VecVirtual, nt)
		for t := range acc {
			acc[t] = ZMM()
			VPXORD(acc[t], acc[t], acc[t])
		}
		Label(fmt.Sprintf("blk%d", nt))
		prefetch(nt, qp, sp, q4Lines)
		isum := make([]reg.VecVirtual, nt)
		for t := range isum {
			isum[t] = ZMM()
			VPBROADCASTD(Mem{Base: xp, Disp: actSize*t + actCorr}, isum[t])
		}
		for g := 0; g < q4Lines; g++ {
			lo, hi := ZMM(), ZMM()
			VMOVDQU64(Mem{Base: qp, Disp: lineSize * g}, lo)
			VPSRLW(Imm(4), lo, hi)
			VPANDD(m4, lo, lo)
			VPANDD(m4, hi, hi)
			for t := 0; t < nt; t++ {
				VPDPBUSD_BCST(Mem{Base: xp, Disp: actSize*t + 4*g}, lo, isum[t])
				VPDPBUSD_BCST(Mem{Base: xp, Disp: actSize*t + 16 + 4*g}, hi, isum[t])
			}
		}
		dw := ZMM()
		VCVTPH2PS(Mem{Base: sp}, dw)
		for t := 0; t < nt; t++ {
			f, sc := ZMM(), ZMM()
			VCVTDQ2PS(isum[t], f)
			VMULPS_BCST(Mem{Base: xp, Disp: actSize*t + actD}, dw, sc)
			VFMADD231PS(f, sc, acc[t])
		}
		ADDQ(U32(q4Lines*lineSize), qp)
		ADDQ(Imm(sBlock), sp)
		ADDQ(U32(uint64(actSize*nt)), xp)
		DECQ(n)
		JNZ(LabelRef(fmt.Sprintf("blk%d", nt)))
		vnniStore(acc)
	})
}

// gemmQ8VNNI keeps llama.cpp's Q8_0 order: a panel line g holds the 4
// bytes of lane g of every row, so one VPDPBUSD (from the group's
// correction) gives lane g's exact sum for 16 rows, and each lane has its
// own float accumulator, acc[g] = fma(dw*dx, float(lane), acc[g]). The
// eight accumulators of a token are added at the end in hsum_float_8's
// order.
func gemmQ8VNNI() {
	name := "gemmQ8_0x16VNNI"
	TEXT(name, NOSPLIT, "func(q, s *byte, nb int, xt *byte, ntok int, dst *float32, ldd int, rows int)")
	Doc(name+" sets dst[t*ldd+r] = dot(panel row r, tile token t) for t < ntok (1..3)",
		"and r < rows (1..16); nb blocks.")
	ntok := Load(Param("ntok"), GP64())
	dispatch(ntok, q8VNNITile, func(nt int) {
		Commentf("tile of 16 rows x %d tokens", nt)
		qp := Load(Param("q"), GP64())
		sp := Load(Param("s"), GP64())
		n := Load(Param("nb"), GP64())
		xp := Load(Param("xt"), GP64())
		acc := make([][8]reg.VecVirtual, nt)
		for t := range acc {
			for g := range acc[t] {
				acc[t][g] = ZMM()
				VPXORD(acc[t][g], acc[t][g], acc[t][g])
			}
		}
		Label(fmt.Sprintf("blk%d", nt))
		prefetch(nt, qp, sp, q8Lines)
		dw := ZMM()
		VCVTPH2PS(Mem{Base: sp}, dw)
		d := make([]reg.VecVirtual, nt)
		for t := range d {
			d[t] = ZMM()
			VMULPS_BCST(Mem{Base: xp, Disp: actSize*t + actD}, dw, d[t])
		}
		for g := 0; g < q8Lines; g++ {
			wv := ZMM()
			VMOVDQU64(Mem{Base: qp, Disp: lineSize * g}, wv)
			for t := 0; t < nt; t++ {
				is := ZMM()
				VPBROADCASTD(Mem{Base: xp, Disp: actSize*t + actGCorr + 4*g}, is)
				VPDPBUSD_BCST(Mem{Base: xp, Disp: actSize*t + 4*g}, wv, is)
				VCVTDQ2PS(is, is)
				VFMADD231PS(is, d[t], acc[t][g])
			}
		}
		ADDQ(U32(q8Lines*lineSize), qp)
		ADDQ(Imm(sBlock), sp)
		ADDQ(U32(uint64(actSize*nt)), xp)
		DECQ(n)
		JNZ(LabelRef(fmt.Sprintf("blk%d", nt)))
		sums := make([]reg.VecVirtual, nt)
		for t := range sums {
			sums[t] = hsumLanes(acc[t])
		}
		vnniStore(sums)
	})
}

// hsumLanes adds eight lane registers as hsum_float_8 adds the lanes of
// one: ((a4+a0)+(a6+a2)) + ((a5+a1)+(a7+a3)).
func hsumLanes(a [8]reg.VecVirtual) reg.VecVirtual {
	for i := 0; i < 4; i++ {
		VADDPS(a[i], a[i+4], a[i+4])
	}
	VADDPS(a[6], a[4], a[4])
	VADDPS(a[7], a[5], a[5])
	VADDPS(a[5], a[4], a[4])
	return a[4]
}

// storeMask8 is a table whose 32 bytes from offset 4*(8-n) select the
// first n of 8 float32 lanes for VMASKMOVPS.
func storeMask8() Mem {
	b := make([]byte, 64)
	for i := 0; i < 32; i++ {
		b[i] = 0xff
	}
	return gen.Bytes("storemask8", b)
}

// avx2Halves runs half(h, rows of the half) for the two 8-row halves of
// the panel that hold rows (one YMM register of int32 lanes each).
func avx2Halves(nt int, half func(h int, nr reg.Register)) {
	for h := 0; h < 2; h++ {
		Commentf("rows %d-%d x %d tokens", 8*h, 8*h+7, nt)
		skip := fmt.Sprintf("skip%d_%d", nt, h)
		// Rows of this half: min(rows-8h, 8); none left ends the tile.
		nr := Load(Param("rows"), GP64())
		if h == 1 {
			SUBQ(Imm(8), nr)
			JLE(LabelRef(skip))
		}
		eight := GP64()
		MOVQ(U32(8), eight)
		CMPQ(nr, eight)
		CMOVQGT(eight, nr)
		half(h, nr)
		Label(skip)
	}
}

// avx2Store writes the nr (1..8) first lanes of each token's result of
// half h.
func avx2Store(acc []reg.VecVirtual, h int, nr reg.Register) {
	mk := YMM()
	mp := GP64()
	LEAQ(storeMask8().Offset(32), mp)
	SHLQ(Imm(2), nr)
	SUBQ(nr, mp)
	VMOVDQU(Mem{Base: mp}, mk)
	d := Load(Param("dst"), GP64())
	if h == 1 {
		ADDQ(Imm(32), d)
	}
	ldd := Load(Param("ldd"), GP64())
	SHLQ(Imm(2), ldd)
	for t := range acc {
		VMASKMOVPS(acc[t], mk, Mem{Base: d})
		if t < len(acc)-1 {
			ADDQ(ldd, d)
		}
	}
}

// gemmQ4AVX2 computes the panel in two halves of 8 rows, up to 4 tokens at
// a time. Q4_0 nibbles are unsigned, so VPMADDUBSW takes them directly and
// a block's pairs stay within int16 (8 lines x 2 x 15 x 128 < 32768); per
// block acc = fma(float(sum), dw*dx, acc), llama.cpp's repacked Q4_0 order.
func gemmQ4AVX2() {
	name := "gemmQ4_0x16AVX2"
	TEXT(name, NOSPLIT, "func(q, s *byte, nb int, xt *byte, ntok int, dst *float32, ldd int, rows int)")
	Doc(name+" sets dst[t*ldd+r] = dot(panel row r, tile token t) for t < ntok (1..4)",
		"and r < rows; nb blocks.")
	ntok := Load(Param("ntok"), GP64())
	dispatch(ntok, q4AVX2Tile, func(nt int) {
		avx2Halves(nt, func(h int, nr reg.Register) {
			qp := Load(Param("q"), GP64())
			sp := Load(Param("s"), GP64())
			n := Load(Param("nb"), GP64())
			xp := Load(Param("xt"), GP64())
			ones, m := YMM(), YMM()
			VMOVDQU(gen.Splat16("ones16", 1), ones)
			VMOVDQU(gen.Splat8("nib4", 0x0f), m)
			acc := make([]reg.VecVirtual, nt)
			for t := range acc {
				acc[t] = YMM()
				VXORPS(acc[t], acc[t], acc[t])
			}
			blk := fmt.Sprintf("blk%d_%d", nt, h)
			Label(blk)
			if h == 0 {
				// The first half's pass brings whole lines in; the second
				// one finds them in cache.
				prefetch(nt, qp, sp, q4Lines)
			}
			isum := make([]reg.VecVirtual, nt)
			for t := range isum {
				isum[t] = YMM()
				VPXOR(isum[t], isum[t], isum[t])
			}
			for g := 0; g < q4Lines; g++ {
				lo, hi := YMM(), YMM()
				VMOVDQU(Mem{Base: qp, Disp: lineSize*g + 32*h}, lo)
				VPSRLW(Imm(4), lo, hi)
				VPAND(m, lo, lo)
				VPAND(m, hi, hi)
				for t := 0; t < nt; t++ {
					for i, wv := range []reg.VecVirtual{lo, hi} {
						xv := YMM()
						VPBROADCASTD(Mem{Base: xp, Disp: actSize*t + 16*i + 4*g}, xv)
						VPMADDUBSW(xv, wv, xv)
						VPADDW(xv, isum[t], isum[t])
					}
				}
			}
			dw := YMM()
			VCVTPH2PS(Mem{Base: sp, Disp: 16 * h}, dw)
			for t := 0; t < nt; t++ {
				VPMADDWD(ones, isum[t], isum[t])
				c := YMM()
				VPBROADCASTD(Mem{Base: xp, Disp: actSize*t + actCorr}, c)
				VPADDD(c, isum[t], isum[t])
				sc := YMM()
				VBROADCASTSS(Mem{Base: xp, Disp: actSize*t + actD}, sc)
				VMULPS(dw, sc, sc)
				VCVTDQ2PS(isum[t], isum[t])
				VFMADD231PS(isum[t], sc, acc[t])
			}
			ADDQ(U32(q4Lines*lineSize), qp)
			ADDQ(Imm(sBlock), sp)
			ADDQ(U32(uint64(actSize*nt)), xp)
			DECQ(n)
			JNZ(LabelRef(blk))
			avx2Store(acc, h, nr)
		})
	})
}

// gemmQ8AVX2 runs one token through the panel in two halves of 8 rows, in
// llama.cpp's Q8_0 order: weights are made signed again and multiplied
// with VPSIGNB/VPMADDUBSW (|w| times x with w's sign, pairs exact in
// int16) and VPMADDWD, which gives line g's lane sums, each with its own
// float accumulator (eight registers), added at the end as hsum_float_8
// does.
func gemmQ8AVX2() {
	name := "gemmQ8_0x16AVX2"
	TEXT(name, NOSPLIT, "func(q, s *byte, nb int, xt *byte, ntok int, dst *float32, ldd int, rows int)")
	Doc(name+" sets dst[r] = dot(panel row r, tile token 0) for r < rows; ntok must be 1",
		"and ldd is unused; nb blocks.")
	avx2Halves(1, func(h int, nr reg.Register) {
		qp := Load(Param("q"), GP64())
		sp := Load(Param("s"), GP64())
		n := Load(Param("nb"), GP64())
		xp := Load(Param("xt"), GP64())
		ones, flip := YMM(), YMM()
		VMOVDQU(gen.Splat16("ones16", 1), ones)
		VMOVDQU(gen.Splat8("signbit8", 0x80), flip)
		var acc [8]reg.VecVirtual
		for g := range acc {
			acc[g] = YMM()
			VXORPS(acc[g], acc[g], acc[g])
		}
		blk := fmt.Sprintf("blk1_%d", h)
		Label(blk)
		if h == 0 {
			prefetch(1, qp, sp, q8Lines)
		}
		d := YMM()
		VCVTPH2PS(Mem{Base: sp, Disp: 16 * h}, d)
		dx := YMM()
		VBROADCASTSS(Mem{Base: xp, Disp: actD}, dx)
		VMULPS(dx, d, d)
		for g := 0; g < q8Lines; g++ {
			wv, a, xv := YMM(), YMM(), YMM()
			VPXOR(Mem{Base: qp, Disp: lineSize*g + 32*h}, flip, wv)
			VPABSB(wv, a)
			VPBROADCASTD(Mem{Base: xp, Disp: 4 * g}, xv)
			VPSIGNB(wv, xv, xv)
			VPMADDUBSW(xv, a, xv)
			VPMADDWD(ones, xv, xv)
			VCVTDQ2PS(xv, xv)
			VFMADD231PS(xv, d, acc[g])
		}
		ADDQ(U32(q8Lines*lineSize), qp)
		ADDQ(Imm(sBlock), sp)
		ADDQ(U32(actSize), xp)
		DECQ(n)
		JNZ(LabelRef(blk))
		avx2Store([]reg.VecVirtual{hsumLanes(acc)}, h, nr)
	})
	VZEROUPPER()
	RET()
}

// gemmQ4AVXVNNI is gemmQ4VNNI on YMM registers with the VEX VPDPBUSD, in
// two halves of 8 rows as the AVX2 tile: per block, each token's int32
// sums start at its correction and take one VPDPBUSD per weight line and
// nibble half, exact in int32; then acc = fma(float(sum), dw*dx, acc),
// llama.cpp's repacked Q4_0 order. The VPDPBUSD operands are fixed
// registers (gen.VPDPBUSDY): the sums gen.VNNIAcc[t], the nibbles
// gen.VNNIW, the activation broadcast gen.VNNIX.
func gemmQ4AVXVNNI() {
	name := "gemmQ4_0x16AVXVNNI"
	TEXT(name, NOSPLIT, "func(q, s *byte, nb int, xt *byte, ntok int, dst *float32, ldd int, rows int)")
	Doc(name+" sets dst[t*ldd+r] = dot(panel row r, tile token t) for t < ntok (1..6)",
		"and r < rows; nb blocks.")
	ntok := Load(Param("ntok"), GP64())
	dispatch(ntok, q4AVXVNNITile, func(nt int) {
		avx2Halves(nt, func(h int, nr reg.Register) {
			qp := Load(Param("q"), GP64())
			sp := Load(Param("s"), GP64())
			n := Load(Param("nb"), GP64())
			xp := Load(Param("xt"), GP64())
			m := YMM()
			VMOVDQU(gen.Splat8("nib4", 0x0f), m)
			acc := make([]reg.VecVirtual, nt)
			for t := range acc {
				acc[t] = YMM()
				VXORPS(acc[t], acc[t], acc[t])
			}
			blk := fmt.Sprintf("blk%d_%d", nt, h)
			Label(blk)
			if h == 0 {
				prefetch(nt, qp, sp, q4Lines)
			}
			isum := gen.VNNIAcc[:nt]
			for t, s := range isum {
				VPBROADCASTD(Mem{Base: xp, Disp: actSize*t + actCorr}, s)
			}
			w, xv := gen.VNNIW, gen.VNNIX
			for g := 0; g < q4Lines; g++ {
				line := Mem{Base: qp, Disp: lineSize*g + 32*h}
				for i := 0; i < 2; i++ {
					if i == 0 {
						VPAND(line, m, w)
					} else {
						VMOVDQU(line, w)
						VPSRLW(Imm(4), w, w)
						VPAND(m, w, w)
					}
					for t, s := range isum {
						VPBROADCASTD(Mem{Base: xp, Disp: actSize*t + 16*i + 4*g}, xv)
						gen.VPDPBUSDY(xv, w, s)
					}
				}
			}
			dw := YMM()
			VCVTPH2PS(Mem{Base: sp, Disp: 16 * h}, dw)
			for t, s := range isum {
				VCVTDQ2PS(s, s)
				sc := YMM()
				VBROADCASTSS(Mem{Base: xp, Disp: actSize*t + actD}, sc)
				VMULPS(dw, sc, sc)
				VFMADD231PS(s, sc, acc[t])
			}
			ADDQ(U32(q4Lines*lineSize), qp)
			ADDQ(Imm(sBlock), sp)
			ADDQ(U32(uint64(actSize*nt)), xp)
			DECQ(n)
			JNZ(LabelRef(blk))
			avx2Store(acc, h, nr)
		})
	})
}

// gemmQ8AVXVNNI is gemmQ8AVX2 with the VEX VPDPBUSD: per line g, the
// unsigned weights (q+128) times the broadcast activations, from the
// group's correction, give lane g's exact sum for 8 rows in one
// instruction, which AVX2 needs five for; the float work is the AVX2
// tile's, in llama.cpp's Q8_0 order.
func gemmQ8AVXVNNI() {
	name := "gemmQ8_0x16AVXVNNI"
	TEXT(name, NOSPLIT, "func(q, s *byte, nb int, xt *byte, ntok int, dst *float32, ldd int, rows int)")
	Doc(name+" sets dst[r] = dot(panel row r, tile token 0) for r < rows; ntok must be 1",
		"and ldd is unused; nb blocks.")
	avx2Halves(1, func(h int, nr reg.Register) {
		qp := Load(Param("q"), GP64())
		sp := Load(Param("s"), GP64())
		n := Load(Param("nb"), GP64())
		xp := Load(Param("xt"), GP64())
		var acc [8]reg.VecVirtual
		for g := range acc {
			acc[g] = YMM()
			VXORPS(acc[g], acc[g], acc[g])
		}
		blk := fmt.Sprintf("blk1_%d", h)
		Label(blk)
		if h == 0 {
			prefetch(1, qp, sp, q8Lines)
		}
		d := YMM()
		VCVTPH2PS(Mem{Base: sp, Disp: 16 * h}, d)
		dx := YMM()
		VBROADCASTSS(Mem{Base: xp, Disp: actD}, dx)
		VMULPS(dx, d, d)
		is, w, xv := gen.VNNIAcc[0], gen.VNNIW, gen.VNNIX
		for g := 0; g < q8Lines; g++ {
			VPBROADCASTD(Mem{Base: xp, Disp: actGCorr + 4*g}, is)
			VPBROADCASTD(Mem{Base: xp, Disp: 4 * g}, xv)
			VMOVDQU(Mem{Base: qp, Disp: lineSize*g + 32*h}, w)
			gen.VPDPBUSDY(xv, w, is)
			VCVTDQ2PS(is, is)
			VFMADD231PS(is, d, acc[g])
		}
		ADDQ(U32(q8Lines*lineSize), qp)
		ADDQ(Imm(sBlock), sp)
		ADDQ(U32(actSize), xp)
		DECQ(n)
		JNZ(LabelRef(blk))
		avx2Store([]reg.VecVirtual{hsumLanes(acc)}, h, nr)
	})
	VZEROUPPER()
	RET()
}
