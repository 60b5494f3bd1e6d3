// Command gemv generates the AVX512-VNNI and AVX-VNNI matrix-vector
// products of Q8_0 weights in GGUF layout (decode on matrices that were
// not Prepared), and the activation layout they read.
//
// One ZMM register holds two consecutive blocks of a row, so the integer
// work (one VPDPBUSD per 64 weights) is shared by two blocks: the weights
// are made unsigned (q+128), the corrections -128*sum(x) of each 4 bytes
// start the lane sums, and the row scales of both blocks are gathered with
// one VPERMW. The float work keeps llama.cpp's order (ggml_vec_dot_q8_0_q8_0:
// eight lanes, one FMA per block in block order, hsum_float_8 at the end),
// so the two blocks of a register are added to the row's eight-lane
// accumulator one after the other.
//
// The AVX-VNNI kernel (VEX VPDPBUSD, YMM registers, see gen/vex.go) reads
// the same pairs one block at a time.
package main

//go:generate go run . -out ../../gemv_amd64.s -stubs ../../gemv_amd64.go -pkg kernels

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"

	"qinfer/fallback/kernels/_asm/internal/gen"
)

const (
	q8Block = 34

	// Activation pair (pSize bytes): the 64 quants of blocks 2p and 2p+1,
	// the corrections -(sum(q) << shift) of each 4 quants as 16 int32,
	// the two scales as 8 float32 each. A missing second block is all
	// zero.
	pQs   = 0
	pCorr = 64
	pD    = 128
	pSize = 192
)

func main() {
	gen.Header()
	acts()
	gemv()
	gemvAVXVNNI()
	Generate()
}

// actBlock writes the half h (0, 1) of a pair at dst from the Q8_0 block at
// x. The kernels sum a block's eight int32 lanes (4 products each), so each
// lane gets the correction of its own 4 activations: every lane is then
// the exact dot product of its 4 elements, as it would be with signed
// weights.
func actBlock(x, dst reg.Register, h int, sh, zero, ones8, ones16 reg.VecVirtual) {
	v := YMM()
	VMOVDQU(Mem{Base: x, Disp: 2}, v)
	VMOVDQU(v, Mem{Base: dst, Disp: pQs + 32*h})
	VPMADDUBSW(v, ones8, v)
	VPMADDWD(ones16, v, v)
	VPSLLD(sh, v, v)
	VPSUBD(v, zero, v)
	VMOVDQU(v, Mem{Base: dst, Disp: pCorr + 32*h})
	d := XMM()
	VPBROADCASTW(Mem{Base: x}, d)
	df := YMM()
	VCVTPH2PS(d, df)
	VMOVUPS(df, Mem{Base: dst, Disp: pD + 32*h})
}

func acts() {
	TEXT("gemvActsAVX2", NOSPLIT, "func(x *byte, nb, shift int, dst *byte)")
	Doc("gemvActsAVX2 writes the Q8_0 activation row x of nb blocks as (nb+1)/2 pairs",
		"of 192 bytes at dst: quants, corrections -(sum(q) << shift) per 4 quants, scales.")
	x := Load(Param("x"), GP64())
	n := Load(Param("nb"), GP64())
	dst := Load(Param("dst"), GP64())
	sh := XMM()
	MOVQ(Load(Param("shift"), GP64()), sh)
	zero, ones8, ones16 := YMM(), YMM(), YMM()
	VPXOR(zero, zero, zero)
	VMOVDQU(gen.Splat8("ones8", 1), ones8)
	VMOVDQU(gen.Splat16("ones16", 1), ones16)
	pairs := GP64()
	MOVQ(n, pairs)
	SHRQ(Imm(1), pairs)
	JZ(LabelRef("tail"))
	Label("pair")
	actBlock(x, dst, 0, sh, zero, ones8, ones16)
	ADDQ(Imm(q8Block), x)
	actBlock(x, dst, 1, sh, zero, ones8, ones16)
	ADDQ(Imm(q8Block), x)
	ADDQ(U32(pSize), dst)
	DECQ(pairs)
	JNZ(LabelRef("pair"))
	Label("tail")
	TESTQ(U32(1), n)
	JZ(LabelRef("done"))
	actBlock(x, dst, 0, sh, zero, ones8, ones16)
	for _, off := range []int{pQs, pCorr, pD} {
		VMOVDQU(zero, Mem{Base: dst, Disp: off + 32})
	}
	Label("done")
	VZEROUPPER()
	RET()
}

// scaleIndex returns the VPERMW index that puts word a in words 0-7 and
// word b in words 8-15.
func scaleIndex(name string, a, b int) Mem {
	var v [64]byte
	for i := 0; i < 16; i++ {
		w := a
		if i >= 8 {
			w = b
		}
		v[2*i] = byte(w)
	}
	return gen.Bytes(name, v[:])
}

type gemvRegs struct {
	flip, idx   reg.VecVirtual
	ws, ws3, xp reg.Register
}

// pair adds row r's blocks 2p and 2p+1 (at w) to the row's lanes acc.
func (g *gemvRegs) pair(r int, w reg.Register, acc reg.VecVirtual) {
	at := func(disp int) Mem { return gen.Nth(r, w, g.ws, g.ws3, disp) }
	wv, ds := ZMM(), ZMM()
	VMOVDQU64(at(2), wv.AsY())
	VINSERTI64X4(Imm(1), at(2+q8Block), wv, wv)
	VPXORD(g.flip, wv, wv)
	VPERMW(at(0), g.idx, ds)
	f, df := g.lanes(wv, ds)
	VFMADD231PS(f.AsY(), df.AsY(), acc)
	fh, dh := YMM(), YMM()
	VEXTRACTF64X4(Imm(1), f, fh)
	VEXTRACTF64X4(Imm(1), df, dh)
	VFMADD231PS(fh, dh, acc)
}

// tail adds row r's last block (at w) when nb is odd: the pair's second
// half is zero on the activation side and not added.
func (g *gemvRegs) tail(r int, w reg.Register, acc reg.VecVirtual) {
	at := func(disp int) Mem { return gen.Nth(r, w, g.ws, g.ws3, disp) }
	wv, ds := ZMM(), ZMM()
	VMOVDQU64(at(2), wv.AsY())
	VPXORD(g.flip, wv, wv)
	VPBROADCASTW(at(0), ds.AsY())
	f, df := g.lanes(wv, ds)
	VFMADD231PS(f.AsY(), df.AsY(), acc)
}

// lanes returns the two blocks' eight lane sums as float32 (exact) and
// their scales dw*dx, each block in one half.
func (g *gemvRegs) lanes(wv, ds reg.VecVirtual) (f, df reg.VecVirtual) {
	f = ZMM()
	VMOVDQU64(Mem{Base: g.xp, Disp: pCorr}, f)
	VPDPBUSD(Mem{Base: g.xp, Disp: pQs}, wv, f)
	VCVTDQ2PS(f, f)
	df = ZMM()
	VCVTPH2PS(ds.AsY(), df)
	VMULPS(Mem{Base: g.xp, Disp: pD}, df, df)
	return f, df
}

func gemv() {
	name := "gemvQ8_0VNNI"
	TEXT(name, NOSPLIT, "func(w *byte, wstride, rows int, xp *byte, nb int, dst *float32)")
	Doc(name+" sets dst[r] = dot(row r, x) for rows rows of Q8_0 weights wstride bytes",
		"apart and one activation row of nb blocks laid out by gemvActsAVX2.")
	w := Load(Param("w"), GP64())
	ws := Load(Param("wstride"), GP64())
	rows := Load(Param("rows"), GP64())
	dst := Load(Param("dst"), GP64())
	g := &gemvRegs{ws: ws, ws3: GP64()}
	LEAQ(Mem{Base: ws, Index: ws, Scale: 2}, g.ws3)
	g.flip, g.idx = ZMM(), ZMM()
	VPBROADCASTD(gen.Splat8("signbit8", 0x80).Offset(0), g.flip)
	VMOVDQU64(scaleIndex("q8scaleidx", 0, q8Block/2), g.idx)

	g.rowLoop(w, ws, rows, dst, rowKernel{
		zero: func(acc reg.VecVirtual) { VPXORD(acc, acc, acc) },
		pair: func(nr int, wp reg.Register, acc []reg.VecVirtual) {
			for r := 0; r < nr; r++ {
				g.pair(r, wp, acc[r])
			}
		},
		tail: func(nr int, wp reg.Register, acc []reg.VecVirtual) {
			for r := 0; r < nr; r++ {
				g.tail(r, wp, acc[r])
			}
		},
		hsum: gen.HsumPS8X,
	})
	VZEROUPPER()
	RET()
}

// avxvnniBlock adds block h (0, 1) of the current pair of nr rows (at w)
// to their lanes acc, with VEX instructions only: the activation quants
// (gen.VNNIX) are loaded once for the rows; per row the unsigned weights
// (gen.VNNIW) times them, from the corrections, give the eight exact lane
// sums (in gen.VNNIAcc[0]), scaled by dw*dx and added as the AVX2 kernel
// adds them.
func (g *gemvRegs) avxvnniBlock(h, nr int, w reg.Register, acc []reg.VecVirtual) {
	xv, wv, is := gen.VNNIX, gen.VNNIW, gen.VNNIAcc[0]
	VMOVDQU(Mem{Base: g.xp, Disp: pQs + 32*h}, xv)
	for r := 0; r < nr; r++ {
		at := func(disp int) Mem { return gen.Nth(r, w, g.ws, g.ws3, q8Block*h+disp) }
		VPXOR(at(2), g.flip, wv)
		VMOVDQU(Mem{Base: g.xp, Disp: pCorr + 32*h}, is)
		gen.VPDPBUSDY(xv, wv, is)
		VCVTDQ2PS(is, is)
		d := gen.BroadcastFP16(at(0))
		VMULPS(Mem{Base: g.xp, Disp: pD + 32*h}, d, d)
		VFMADD231PS(is, d, acc[r])
	}
}

// gemvAVXVNNI is gemv for AVX-VNNI: 4 rows at a time, then single rows,
// each pair of blocks added block by block in llama.cpp's order.
func gemvAVXVNNI() {
	name := "gemvQ8_0AVXVNNI"
	TEXT(name, NOSPLIT, "func(w *byte, wstride, rows int, xp *byte, nb int, dst *float32)")
	Doc(name+" sets dst[r] = dot(row r, x) for rows rows of Q8_0 weights wstride bytes",
		"apart and one activation row of nb blocks laid out by gemvActsAVX2.")
	w := Load(Param("w"), GP64())
	ws := Load(Param("wstride"), GP64())
	rows := Load(Param("rows"), GP64())
	dst := Load(Param("dst"), GP64())
	g := &gemvRegs{ws: ws, ws3: GP64()}
	LEAQ(Mem{Base: ws, Index: ws, Scale: 2}, g.ws3)
	g.flip = YMM()
	VMOVDQU(gen.Splat8("signbit8", 0x80), g.flip)

	g.rowLoop(w, ws, rows, dst, rowKernel{
		zero: func(acc reg.VecVirtual) { VXORPS(acc, acc, acc) },
		pair: func(nr int, wp reg.Register, acc []reg.VecVirtual) {
			g.avxvnniBlock(0, nr, wp, acc)
			g.avxvnniBlock(1, nr, wp, acc)
		},
		tail: func(nr int, wp reg.Register, acc []reg.VecVirtual) { g.avxvnniBlock(0, nr, wp, acc) },
		hsum: gen.HsumPS,
	})
	VZEROUPPER()
	RET()
}

// rowKernel is what the two GEMV kernels do differently inside their
// shared row loop.
type rowKernel struct {
	zero func(acc reg.VecVirtual)                            // clear a row's accumulator
	pair func(nr int, wp reg.Register, acc []reg.VecVirtual) // add a pair of blocks of nr rows
	tail func(nr int, wp reg.Register, acc []reg.VecVirtual) // add an odd last block
	hsum func(acc reg.VecVirtual) reg.VecVirtual             // a row's lanes summed, in lane 0
}

// rowLoop emits the row loop of the GEMV kernels: groups of 4 rows, then
// single rows; per group the pairs of blocks, an odd last block, and the
// rows' sums stored to dst. The next group of rows follows this one in
// memory: it is prefetched at the pace this group is read (nr pairs of
// blocks per iteration), across the page boundaries where the hardware
// prefetchers stop.
func (g *gemvRegs) rowLoop(w, ws, rows, dst reg.Register, k rowKernel) {
	block := q8Block
	for _, nr := range []int{4, 1} {
		loop, next := fmt.Sprintf("rows%d", nr), fmt.Sprintf("rows%d_done", nr)
		Label(loop)
		CMPQ(rows, Imm(uint64(nr)))
		JL(LabelRef(next))
		g.xp = Load(Param("xp"), GP64())
		n := Load(Param("nb"), GP64())
		wp := GP64()
		MOVQ(w, wp)
		acc := make([]reg.VecVirtual, nr)
		for r := range acc {
			acc[r] = YMM()
			k.zero(acc[r])
		}
		var pf reg.GPVirtual
		if nr == 4 {
			pf = GP64()
			LEAQ(Mem{Base: w, Index: ws, Scale: 4}, pf)
		}
		pairs := GP64()
		MOVQ(n, pairs)
		SHRQ(Imm(1), pairs)
		JZ(LabelRef(fmt.Sprintf("tail%d", nr)))
		Label(fmt.Sprintf("pair%d", nr))
		if nr == 4 {
			gen.Prefetch(pf, 0, 4*2*block)
			ADDQ(U32(uint64(4*2*block)), pf)
		}
		k.pair(nr, wp, acc)
		ADDQ(Imm(uint64(2*block)), wp)
		ADDQ(U32(pSize), g.xp)
		DECQ(pairs)
		JNZ(LabelRef(fmt.Sprintf("pair%d", nr)))
		Label(fmt.Sprintf("tail%d", nr))
		TESTQ(U32(1), n)
		JZ(LabelRef(fmt.Sprintf("store%d", nr)))
		k.tail(nr, wp, acc)
		Label(fmt.Sprintf("store%d", nr))
		for r := 0; r < nr; r++ {
			VMOVSS(k.hsum(acc[r]), Mem{Base: dst, Disp: 4 * r})
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
}
