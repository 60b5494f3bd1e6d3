// Command kquant generates the AVX2 dot-product kernels for Q4_K, Q5_K and
// Q6_K weights against Q8_K activations: one token against many rows, the
// per-super-block integer work of llama.cpp's ggml_vec_dot_q*_K_q8_K.
package main

//go:generate go run . -out ../../kquant_amd64.s -stubs ../../kquant_amd64.go -pkg kernels

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"

	"qinfer/fallback/kernels/_asm/internal/gen"
)

// Q8_K block: f32 d, 256 int8 quants, 16 int16 sums of 16 quants.
const (
	q8KBytes = 292
	q8KQs    = 4
	q8KSums  = 260
)

func main() {
	gen.Header()
	gemvK4("gemvQ4KAVX2", "Q4_K", 144, false)
	gemvK4("gemvQ5KAVX2", "Q5_K", 176, true)
	gemvQ6K()
	Generate()
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

// byteShuffle returns the VPSHUFB mask that repeats byte k in bytes 0-7 and
// byte k+1 in bytes 8-15 (a pair of 16-element sub-block scales for the 32
// products of one register, after sign extension to words).
func byteShuffle(k int) Mem {
	var b [32]byte
	for i := 0; i < 16; i++ {
		b[i] = byte(k + i/8)
		b[16+i] = b[i]
	}
	return gen.Bytes32(fmt.Sprintf("byteshuf%d", k), b)
}

// rowLoop emits the loop over rows around body, which computes one row's
// dot product into an XMM register's low lane from the row at w and the
// activation at x.
func rowLoop(name string, body func(w, x, nb reg.Register) reg.VecVirtual) {
	w := Load(Param("w"), GP64())
	ws := Load(Param("wstride"), GP64())
	rows := Load(Param("rows"), GP64())
	dst := Load(Param("dst"), GP64())
	TESTQ(rows, rows)
	JZ(LabelRef("done"))
	Label("row")
	x := Load(Param("x"), GP64())
	nb := Load(Param("nb"), GP64())
	wp := GP64()
	MOVQ(w, wp)
	res := body(wp, x, nb)
	VMOVSS(res, Mem{Base: dst})
	ADDQ(Imm(4), dst)
	ADDQ(ws, w)
	DECQ(rows)
	JNZ(LabelRef("row"))
	Label("done")
	VZEROUPPER()
	RET()
}

// gemvK4 handles Q4_K and Q5_K: 8 sub-blocks of 32 with 6-bit scales and
// mins. The products of a sub-block are scaled in VPMADDWD against its
// broadcast scale; the mins enter through the Q8_K block sums.
func gemvK4(name, format string, blockBytes int, q5 bool) {
	TEXT(name, NOSPLIT, "func(w *byte, wstride, rows int, x *byte, nb int, dst *float32)")
	Doc(name+" sets dst[r] = dot(row r, x) for rows rows of "+format+" weights wstride",
		"bytes apart and one Q8_K activation row of nb blocks.")
	qsOff := 16
	if q5 {
		qsOff = 48
	}
	rowLoop(name, func(w, x, nb reg.Register) reg.VecVirtual {
		acc, accm := YMM(), XMM()
		VXORPS(acc, acc, acc)
		VXORPS(accm, accm, accm)
		m4 := YMM()
		VMOVDQU(gen.Splat8("nib4", 0x0f), m4)
		Label("blk")
		gen.Prefetch(w, gen.PrefetchAhead, blockBytes)
		sx := gen.ScaleMinK4(Mem{Base: w, Disp: 4})
		ms := YMM()
		VPMOVZXBW(sx, ms) // words: 8 scales, 8 mins
		// Mins times the 32-element activation sums.
		bs := YMM()
		VMOVDQU(Mem{Base: x, Disp: q8KSums}, bs)
		bhi := XMM()
		VEXTRACTI128(Imm(1), bs, bhi)
		VPHADDW(bhi, bs.AsX(), bhi) // 8 sums of 32
		mins := XMM()
		VEXTRACTI128(Imm(1), ms, mins)
		VPMADDWD(bhi, mins, mins) // 4 int32
		sc := YMM()
		VINSERTI128(Imm(1), ms.AsX(), ms, sc) // scales in both lanes
		var hb reg.VecVirtual
		if q5 {
			hb = YMM()
			VMOVDQU(Mem{Base: w, Disp: 16}, hb)
		}
		sumi := YMM()
		VPXOR(sumi, sumi, sumi)
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
			for h, v := range []reg.VecVirtual{q, qh} {
				VPMADDUBSW(Mem{Base: x, Disp: q8KQs + 64*j + 32*h}, v, v)
				s := YMM()
				VPSHUFB(wordShuffle(2*j+h), sc, s)
				VPMADDWD(s, v, v)
				VPADDD(v, sumi, sumi)
			}
		}
		// d*dy and dmin*dy in lanes 0 and 1.
		dd, dy := XMM(), XMM()
		VMOVD(Mem{Base: w}, dd)
		VCVTPH2PS(dd, dd)
		VBROADCASTSS(Mem{Base: x}, dy)
		VMULPS(dy, dd, dd)
		d := YMM()
		VBROADCASTSS(dd, d)
		VCVTDQ2PS(sumi, sumi)
		VFMADD231PS(sumi, d, acc)
		dm := XMM()
		VMOVSHDUP(dd, dm)
		VBROADCASTSS(dm, dm)
		VCVTDQ2PS(mins, mins)
		VFMADD231PS(mins, dm, accm)
		ADDQ(U32(uint64(blockBytes)), w)
		ADDQ(U32(q8KBytes), x)
		DECQ(nb)
		JNZ(LabelRef("blk"))
		r := gen.HsumPS(acc)
		m := XMM()
		VMOVHLPS(accm, accm, m)
		VADDPS(m, accm, accm)
		VMOVSHDUP(accm, m)
		VADDSS(m, accm, accm)
		VSUBSS(accm, r, r)
		return r
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

// gemvQ6K: 16 sub-blocks of 16 with int8 scales; quants are 6-bit
// unsigned with offset 32, so the dot is sum(sc*q*x) - 32*sum(sc*bsum),
// the second term from the Q8_K block sums once per super-block.
func gemvQ6K() {
	name := "gemvQ6KAVX2"
	TEXT(name, NOSPLIT, "func(w *byte, wstride, rows int, x *byte, nb int, dst *float32)")
	Doc(name+" sets dst[r] = dot(row r, x) for rows rows of Q6_K weights wstride",
		"bytes apart and one Q8_K activation row of nb blocks.")
	rowLoop(name, func(w, x, nb reg.Register) reg.VecVirtual {
		acc := YMM()
		VXORPS(acc, acc, acc)
		m4 := YMM()
		VMOVDQU(gen.Splat8("nib4", 0x0f), m4)
		Label("blk")
		gen.Prefetch(w, gen.PrefetchAhead, 210)
		scb := XMM()
		VMOVDQU(Mem{Base: w, Disp: 192}, scb)
		// Offset term: 32 * sum over sub-blocks of scale * block sum.
		sc16, off := YMM(), YMM()
		VPMOVSXBW(scb, sc16)
		VPMADDWD(Mem{Base: x, Disp: q8KSums}, sc16, off)
		VPSLLD(Imm(5), off, off)
		sumi := YMM()
		VPXOR(sumi, sumi, sumi)
		for n := 0; n < 2; n++ {
			q6 := gen.LoadQ6K(w, n)
			for k := 0; k < 4; k++ {
				q := q6.Quants(k, m4)
				VPMADDUBSW(Mem{Base: x, Disp: q8KQs + 128*n + 32*k}, q, q)
				s := XMM()
				VPSHUFB(byteShuffle(8*n+2*k).Offset(0), scb, s)
				s16 := YMM()
				VPMOVSXBW(s, s16)
				VPMADDWD(s16, q, q)
				VPADDD(q, sumi, sumi)
			}
		}
		VPSUBD(off, sumi, sumi)
		dd := XMM()
		VPBROADCASTW(Mem{Base: w, Disp: 208}, dd)
		VCVTPH2PS(dd, dd)
		VMULSS(Mem{Base: x}, dd, dd)
		d := YMM()
		VBROADCASTSS(dd, d)
		VCVTDQ2PS(sumi, sumi)
		VFMADD231PS(sumi, d, acc)
		ADDQ(U32(210), w)
		ADDQ(U32(q8KBytes), x)
		DECQ(nb)
		JNZ(LabelRef("blk"))
		return gen.HsumPS(acc)
	})
}
