// Command ktile generates the multi-token kernels of K-quant weights (Q4_K,
// Q5_K, Q6_K) against Q8_K activations: per-format unpacking of GGUF rows
// into one common layout of bytes and expanded scales (see
// ktile_simd_amd64.go one folder up), and tile kernels that reuse an
// unpacked row for several tokens, with AVX512-VNNI and with AVX2. A tile
// computes each (row, token) in exactly the float order of the one-token
// kernels (../kquant), so a token's result does not depend on its batch.
package main

//go:generate go run . -out ../../ktile_amd64.s -stubs ../../ktile_amd64.go -pkg kernels

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"

	"qinfer/fallback/kernels/_asm/internal/gen"
)

// Unpacked super-block of one row (uSize bytes): the 256 quants as
// unsigned bytes in element order; 128 int16 scales (the integer scale of
// the sub-block holding elements 2i and 2i+1 at word i); Q4_K/Q5_K: the 8
// mins as int16, Q6_K: the 16 scales as int16 (for its offset of 32); the
// float32 scales d and dmin.
const (
	uQs    = 0
	uScale = 256
	uMins  = 512
	uD     = 544
	uDmin  = 548
	uSize  = 640

	// Activation tile, per super-block and token (aSize bytes): the 256
	// quants, the 16 block sums of 16, the 8 sums of 32 (int16), the
	// float32 scale.
	aQs    = 0
	aBsum  = 256
	aBsum2 = 288
	aD     = 304
	aSize  = 320

	vnniTile = 8
	avx2Tile = 4
)

func main() {
	gen.Header()
	unpackK4("unpackQ4KAVX2", "Q4_K", 144, false)
	unpackK4("unpackQ5KAVX2", "Q5_K", 176, true)
	unpackQ6K()
	tileVNNI("kTileK4VNNI", true)
	tileVNNI("kTileQ6KVNNI", false)
	tileAVX2("kTileK4AVX2", true)
	tileAVX2("kTileQ6KAVX2", false)
	Generate()
}

// unpackLoop emits the loop over a row's super-blocks around body, which
// unpacks the super-block at w into the 640 bytes at u.
func unpackLoop(name, format string, blockBytes int, body func(w, u reg.Register)) {
	TEXT(name, NOSPLIT, "func(w *byte, nb int, u *byte)")
	Doc(name+" unpacks nb "+format+" super-blocks at w into the common layout at u",
		"(640 bytes each: quants, expanded scales, mins or scales, d, dmin).")
	w := Load(Param("w"), GP64())
	n := Load(Param("nb"), GP64())
	u := Load(Param("u"), GP64())
	Label("blk")
	body(w, u)
	ADDQ(U32(uint64(blockBytes)), w)
	ADDQ(U32(uSize), u)
	DECQ(n)
	JNZ(LabelRef("blk"))
	VZEROUPPER()
	RET()
}

// wordShuffle returns the VPSHUFB mask that broadcasts int16 element k of
// each 128-bit lane to the whole lane.
func wordShuffle(k int) Mem {
	var b [32]byte
	for i := 0; i < 32; i += 2 {
		b[i], b[i+1] = byte(2*k), byte(2*k+1)
	}
	return gen.Bytes32(fmt.Sprintf("wordshuf%d", k), b)
}

// unpackK4 unpacks Q4_K and Q5_K: 8 sub-blocks of 32 with 6-bit scales
// and mins.
func unpackK4(name, format string, blockBytes int, q5 bool) {
	qsOff := 16
	if q5 {
		qsOff = 48
	}
	unpackLoop(name, format, blockBytes, func(w, u reg.Register) {
		m4 := YMM()
		VMOVDQU(gen.Splat8("nib4", 0x0f), m4)
		var hb reg.VecVirtual
		if q5 {
			hb = YMM()
			VMOVDQU(Mem{Base: w, Disp: 16}, hb)
		}
		for j := 0; j < 4; j++ {
			q, qh := YMM(), YMM()
			VMOVDQU(Mem{Base: w, Disp: qsOff + 32*j}, q)
			VPSRLW(Imm(4), q, qh)
			VPAND(m4, q, q)
			VPAND(m4, qh, qh)
			if q5 {
				addHighBit(q, hb, 2*j)
				addHighBit(qh, hb, 2*j+1)
			}
			VMOVDQU(q, Mem{Base: u, Disp: uQs + 64*j})
			VMOVDQU(qh, Mem{Base: u, Disp: uQs + 64*j + 32})
		}
		sx := gen.ScaleMinK4(Mem{Base: w, Disp: 4})
		ms := YMM()
		VPMOVZXBW(sx, ms) // words: 8 scales, 8 mins
		sc := YMM()
		VINSERTI128(Imm(1), ms.AsX(), ms, sc) // scales in both lanes
		for j := 0; j < 8; j++ {
			s := YMM()
			VPSHUFB(wordShuffle(j), sc, s)
			VMOVDQU(s, Mem{Base: u, Disp: uScale + 32*j})
		}
		mins := XMM()
		VEXTRACTI128(Imm(1), ms, mins)
		VMOVDQU(mins, Mem{Base: u, Disp: uMins})
		dd := XMM()
		VMOVD(Mem{Base: w}, dd)
		VCVTPH2PS(dd, dd) // d, dmin
		VMOVQ(dd, Mem{Base: u, Disp: uD})
	})
}

// addHighBit sets bit 4 of each byte of q from bit b of the same byte of
// hb (Q5_K's fifth bit): a word shift moves bit b to bit 4 without
// crossing into the neighbouring byte's bit 4.
func addHighBit(q, hb reg.VecVirtual, b int) {
	t := YMM()
	switch {
	case b < 4:
		VPSLLW(Imm(uint64(4-b)), hb, t)
	case b > 4:
		VPSRLW(Imm(uint64(b-4)), hb, t)
	default:
		VMOVDQA(hb, t)
	}
	VPAND(gen.Splat8("bit4", 0x10), t, t)
	VPOR(t, q, q)
}

// byteShuffle returns the VPSHUFB mask that repeats byte k in bytes 0-7 and
// byte k+1 in bytes 8-15.
func byteShuffle(k int) Mem {
	var b [32]byte
	for i := 0; i < 16; i++ {
		b[i] = byte(k + i/8)
		b[16+i] = b[i]
	}
	return gen.Bytes32(fmt.Sprintf("byteshuf%d", k), b)
}

// unpackQ6K unpacks Q6_K: 16 sub-blocks of 16 with int8 scales; quants are
// 6-bit with offset 32, subtracted as 32*sum(scale*block sum).
func unpackQ6K() {
	unpackLoop("unpackQ6KAVX2", "Q6_K", 210, func(w, u reg.Register) {
		m4 := YMM()
		VMOVDQU(gen.Splat8("nib4", 0x0f), m4)
		for n := 0; n < 2; n++ {
			q6 := gen.LoadQ6K(w, n)
			for k := 0; k < 4; k++ {
				q := q6.Quants(k, m4)
				VMOVDQU(q, Mem{Base: u, Disp: uQs + 128*n + 32*k})
			}
		}
		scb := XMM()
		VMOVDQU(Mem{Base: w, Disp: 192}, scb)
		for o := 0; o < 8; o++ {
			s := XMM()
			VPSHUFB(byteShuffle(2*o).Offset(0), scb, s)
			s16 := YMM()
			VPMOVSXBW(s, s16)
			VMOVDQU(s16, Mem{Base: u, Disp: uScale + 32*o})
		}
		s16 := YMM()
		VPMOVSXBW(scb, s16)
		VMOVDQU(s16, Mem{Base: u, Disp: uMins})
		d := XMM()
		VPBROADCASTW(Mem{Base: w, Disp: 208}, d)
		VCVTPH2PS(d, d)
		VMOVSS(d, Mem{Base: u, Disp: uD})
	})
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

// rowTerms are a row's per-super-block operands of the epilogue, loaded
// once for all tokens.
type rowTerms struct {
	k4         bool
	mins, sc16 reg.VecVirtual // Q4_K/Q5_K: 8 mins; Q6_K: 16 scales
	d, dmin    reg.VecVirtual // scalars
}

// loadRowTerms loads them; evex selects the AVX-512 encoding of the
// integer loads (VNNI kernels use all 32 registers), else AVX2's.
func loadRowTerms(k4, evex bool, up reg.Register) rowTerms {
	load := func(m Mem, r reg.VecVirtual) { VMOVDQU(m, r) }
	if evex {
		load = func(m Mem, r reg.VecVirtual) { VMOVDQU64(m, r) }
	}
	rt := rowTerms{k4: k4, d: XMM()}
	VMOVSS(Mem{Base: up, Disp: uD}, rt.d)
	if k4 {
		rt.mins, rt.dmin = XMM(), XMM()
		load(Mem{Base: up, Disp: uMins}, rt.mins)
		VMOVSS(Mem{Base: up, Disp: uDmin}, rt.dmin)
	} else {
		rt.sc16 = YMM()
		load(Mem{Base: up, Disp: uMins}, rt.sc16)
	}
	return rt
}

// epilogue adds one token's super-block to its accumulators as the
// one-token kernels do: isum (8 int32 lanes) less, for Q6_K, 32 times the
// scaled block sums, times d*dy into acc (8 lanes); for Q4_K/Q5_K the
// mins times the sums of 32, times dmin*dy into accm (4 lanes).
func (rt rowTerms) epilogue(isum reg.VecVirtual, xp reg.Register, base int, acc, accm reg.VecVirtual) {
	if !rt.k4 {
		off := YMM()
		VPMADDWD(Mem{Base: xp, Disp: base + aBsum}, rt.sc16, off)
		VPSLLD(Imm(5), off, off)
		VPSUBD(off, isum, isum)
	}
	dd := XMM()
	VMULSS(Mem{Base: xp, Disp: base + aD}, rt.d, dd)
	db := YMM()
	VBROADCASTSS(dd, db)
	VCVTDQ2PS(isum, isum)
	VFMADD231PS(isum, db, acc)
	if rt.k4 {
		m := XMM()
		VPMADDWD(Mem{Base: xp, Disp: base + aBsum2}, rt.mins, m)
		VCVTDQ2PS(m, m)
		dm := XMM()
		VMULSS(Mem{Base: xp, Disp: base + aD}, rt.dmin, dm)
		VBROADCASTSS(dm, dm)
		VFMADD231PS(m, dm, accm)
	}
}

// storeRow writes each token's result for the current row (column d of
// the output) and moves d to the next row: the eight lanes added as
// hsum_float_8 does, less for Q4_K/Q5_K the four min lanes added pairwise.
func storeRow(k4, evex bool, acc, accm []reg.VecVirtual, d reg.Register) {
	hsum := gen.HsumPS
	if evex {
		hsum = gen.HsumPS8X
	}
	ldd := Load(Param("ldd"), GP64())
	SHLQ(Imm(2), ldd)
	o := GP64()
	MOVQ(d, o)
	for t := range acc {
		r := hsum(acc[t])
		if k4 {
			m, h := accm[t], XMM()
			VMOVHLPS(m, m, h)
			VADDPS(h, m, m)
			VMOVSHDUP(m, h)
			VADDSS(h, m, m)
			VSUBSS(m, r, r)
		}
		VMOVSS(r, Mem{Base: o})
		if t < len(acc)-1 {
			ADDQ(ldd, o)
		}
	}
	ADDQ(Imm(4), d)
}

// newAccs returns zeroed accumulators for nt tokens: 8 float lanes each
// and, for Q4_K/Q5_K, 4 lanes for the mins.
func newAccs(nt int, k4 bool) (acc, accm []reg.VecVirtual) {
	acc = make([]reg.VecVirtual, nt)
	for t := range acc {
		acc[t] = YMM()
		VXORPS(acc[t], acc[t], acc[t])
	}
	if k4 {
		accm = make([]reg.VecVirtual, nt)
		for t := range accm {
			accm[t] = XMM()
			VXORPS(accm[t], accm[t], accm[t])
		}
	}
	return acc, accm
}

func pick(v []reg.VecVirtual, i int) reg.VecVirtual {
	if v == nil {
		return nil
	}
	return v[i]
}

// tileVNNI: for each row, the unpacked super-block stays in registers (4
// ZMM of quants, 4 of scales) for all tokens of the tile. Per token and
// 64 elements, VPMADDUBSW makes exact int16 pairs (below 2*63*128) and
// VPDPWSSD multiplies them by the sub-block scales into int32; the two
// halves of the sum are then added, which gives the eight lanes of the
// one-token kernel (32 elements per VPMADDWD) exactly.
func tileVNNI(name string, k4 bool) {
	TEXT(name, NOSPLIT, "func(u *byte, rows, nsb int, xt *byte, ntok int, dst *float32, ldd int)")
	Doc(name+" sets dst[t*ldd+r] = dot(unpacked row r, tile token t) for r < rows,",
		"t < ntok (1..8); rows are nsb unpacked super-blocks each, the tile's tokens nsb blocks.")
	ntok := Load(Param("ntok"), GP64())
	dispatch(ntok, vnniTile, func(nt int) {
		Commentf("rows x %d tokens", nt)
		up := Load(Param("u"), GP64())
		rows := Load(Param("rows"), GP64())
		d := Load(Param("dst"), GP64())
		row := fmt.Sprintf("row%d", nt)
		Label(row)
		acc, accm := newAccs(nt, k4)
		xp := Load(Param("xt"), GP64())
		n := Load(Param("nsb"), GP64())
		sb := fmt.Sprintf("sb%d", nt)
		Label(sb)
		var wv, sv [4]reg.VecVirtual
		for k := 0; k < 4; k++ {
			wv[k], sv[k] = ZMM(), ZMM()
			VMOVDQU64(Mem{Base: up, Disp: uQs + 64*k}, wv[k])
			VMOVDQU64(Mem{Base: up, Disp: uScale + 64*k}, sv[k])
		}
		rt := loadRowTerms(k4, true, up)
		for t := 0; t < nt; t++ {
			base := aSize * t
			isum := ZMM()
			for k := 0; k < 4; k++ {
				p := ZMM()
				VPMADDUBSW(Mem{Base: xp, Disp: base + aQs + 64*k}, wv[k], p)
				if k == 0 {
					VPMADDWD(sv[k], p, isum)
				} else {
					VPDPWSSD(sv[k], p, isum)
				}
			}
			hi := YMM()
			VEXTRACTI64X4(Imm(1), isum, hi)
			VPADDD(hi, isum.AsY(), hi)
			rt.epilogue(hi, xp, base, acc[t], pick(accm, t))
		}
		ADDQ(U32(uSize), up)
		ADDQ(U32(uint64(aSize*nt)), xp)
		DECQ(n)
		JNZ(LabelRef(sb))
		storeRow(k4, true, acc, accm, d)
		DECQ(rows)
		JNZ(LabelRef(row))
	})
}

// tileAVX2 is tileVNNI with VPMADDWD and VPADDD on 32 elements at a time,
// the one-token kernel's own steps; with 16 registers the loop runs over
// the 8 chunks of a super-block outside the tokens, so one chunk of
// weights is live at a time.
func tileAVX2(name string, k4 bool) {
	TEXT(name, NOSPLIT, "func(u *byte, rows, nsb int, xt *byte, ntok int, dst *float32, ldd int)")
	Doc(name+" sets dst[t*ldd+r] = dot(unpacked row r, tile token t) for r < rows,",
		"t < ntok (1..4); rows are nsb unpacked super-blocks each, the tile's tokens nsb blocks.")
	ntok := Load(Param("ntok"), GP64())
	dispatch(ntok, avx2Tile, func(nt int) {
		Commentf("rows x %d tokens", nt)
		up := Load(Param("u"), GP64())
		rows := Load(Param("rows"), GP64())
		d := Load(Param("dst"), GP64())
		row := fmt.Sprintf("row%d", nt)
		Label(row)
		acc, accm := newAccs(nt, k4)
		xp := Load(Param("xt"), GP64())
		n := Load(Param("nsb"), GP64())
		sb := fmt.Sprintf("sb%d", nt)
		Label(sb)
		isum := make([]reg.VecVirtual, nt)
		for t := range isum {
			isum[t] = YMM()
			VPXOR(isum[t], isum[t], isum[t])
		}
		for k := 0; k < 8; k++ {
			wv := YMM()
			VMOVDQU(Mem{Base: up, Disp: uQs + 32*k}, wv)
			for t := 0; t < nt; t++ {
				p := YMM()
				VPMADDUBSW(Mem{Base: xp, Disp: aSize*t + aQs + 32*k}, wv, p)
				VPMADDWD(Mem{Base: up, Disp: uScale + 32*k}, p, p)
				VPADDD(p, isum[t], isum[t])
			}
		}
		rt := loadRowTerms(k4, false, up)
		for t := 0; t < nt; t++ {
			rt.epilogue(isum[t], xp, aSize*t, acc[t], pick(accm, t))
		}
		ADDQ(U32(uSize), up)
		ADDQ(U32(uint64(aSize*nt)), xp)
		DECQ(n)
		JNZ(LabelRef(sb))
		storeRow(k4, false, acc, accm, d)
		DECQ(rows)
		JNZ(LabelRef(row))
	})
}
