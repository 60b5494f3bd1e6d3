package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"

	"qinfer/host/backend"
)

// Test-side references, written independently of the package code: the
// decoders follow llama.cpp's dequantize_row_* loop structure (pointer
// walks, shifts, masks) instead of the package's per-element indexing, and
// also return each element's integer decomposition
// value = d*scale*q - dmin*min (q the unsigned stored quant for K-quants).

type refElem struct {
	q, scale, min int
}

func h2f(b []byte) float32 {
	// Independent half decoder: sign * mantissa * 2^exp in float64.
	h := binary.LittleEndian.Uint16(b)
	e := int(h>>10) & 31
	m := float64(h & 0x3ff)
	var v float64
	switch e {
	case 0:
		v = math.Ldexp(m, -24)
	case 31:
		if m != 0 {
			v = math.NaN()
		} else {
			v = math.Inf(1)
		}
	default:
		v = math.Ldexp(1024+m, e-25)
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return float32(v)
}

func refDequantBlock(t backend.DType, x []byte) ([]float32, []refElem) {
	switch t {
	case backend.Q4_0:
		y, el := make([]float32, 32), make([]refElem, 32)
		d := h2f(x)
		for j := 0; j < 16; j++ {
			x0 := int(x[2+j]&0x0F) - 8
			x1 := int(x[2+j]>>4) - 8
			y[j], y[j+16] = float32(x0)*d, float32(x1)*d
			el[j], el[j+16] = refElem{x0, 1, 0}, refElem{x1, 1, 0}
		}
		return y, el
	case backend.Q4_1:
		y, el := make([]float32, 32), make([]refElem, 32)
		d, m := h2f(x), h2f(x[2:])
		for j := 0; j < 16; j++ {
			x0, x1 := int(x[4+j]&0x0F), int(x[4+j]>>4)
			y[j], y[j+16] = float32(float32(x0)*d)+m, float32(float32(x1)*d)+m
			el[j], el[j+16] = refElem{x0, 1, 0}, refElem{x1, 1, 0}
		}
		return y, el
	case backend.Q5_0:
		y, el := make([]float32, 32), make([]refElem, 32)
		d := h2f(x)
		qh := binary.LittleEndian.Uint32(x[2:])
		for j := 0; j < 16; j++ {
			xh0 := uint8((qh>>(j+0))<<4) & 0x10
			xh1 := uint8(qh>>(j+12)) & 0x10
			x0 := int((x[6+j]&0x0F)|xh0) - 16
			x1 := int((x[6+j]>>4)|xh1) - 16
			y[j], y[j+16] = float32(x0)*d, float32(x1)*d
			el[j], el[j+16] = refElem{x0, 1, 0}, refElem{x1, 1, 0}
		}
		return y, el
	case backend.Q5_1:
		y, el := make([]float32, 32), make([]refElem, 32)
		d, m := h2f(x), h2f(x[2:])
		qh := binary.LittleEndian.Uint32(x[4:])
		for j := 0; j < 16; j++ {
			xh0 := uint8((qh>>(j+0))<<4) & 0x10
			xh1 := uint8(qh>>(j+12)) & 0x10
			x0 := int((x[8+j] & 0x0F) | xh0)
			x1 := int((x[8+j] >> 4) | xh1)
			y[j], y[j+16] = float32(float32(x0)*d)+m, float32(float32(x1)*d)+m
			el[j], el[j+16] = refElem{x0, 1, 0}, refElem{x1, 1, 0}
		}
		return y, el
	case backend.Q8_0:
		y, el := make([]float32, 32), make([]refElem, 32)
		d := h2f(x)
		for j := range y {
			q := int(int8(x[2+j]))
			y[j] = float32(q) * d
			el[j] = refElem{q, 1, 0}
		}
		return y, el
	case backend.Q8_1:
		y, el := make([]float32, 32), make([]refElem, 32)
		d := h2f(x)
		for j := range y {
			q := int(int8(x[4+j]))
			y[j] = float32(q) * d
			el[j] = refElem{q, 1, 0}
		}
		return y, el
	case backend.Q2_K:
		return refQ2K(x)
	case backend.Q3_K:
		return refQ3K(x)
	case backend.Q4_K:
		return refQ45K(x, false)
	case backend.Q5_K:
		return refQ45K(x, true)
	case backend.Q6_K:
		return refQ6K(x)
	case backend.Q8_K:
		y, el := make([]float32, 256), make([]refElem, 256)
		d := math.Float32frombits(binary.LittleEndian.Uint32(x))
		for j := range y {
			q := int(int8(x[4+j]))
			y[j] = d * float32(q)
			el[j] = refElem{q, 1, 0}
		}
		return y, el
	}
	panic("no reference for " + t.String())
}

func refQ2K(x []byte) ([]float32, []refElem) {
	var y []float32
	var el []refElem
	scales, q, d, min := x[0:16], x[16:80], h2f(x[80:]), h2f(x[82:])
	is := 0
	for n := 0; n < 256; n += 128 {
		shift := 0
		for j := 0; j < 4; j++ {
			for half := 0; half < 2; half++ {
				sc := scales[is]
				is++
				dl, ml := d*float32(sc&0xF), min*float32(sc>>4)
				for l := 0; l < 16; l++ {
					qv := int(int8((q[l+16*half] >> shift) & 3))
					y = append(y, float32(dl*float32(qv))-ml)
					el = append(el, refElem{qv, int(sc & 0xF), int(sc >> 4)})
				}
			}
			shift += 2
		}
		q = q[32:]
	}
	return y, el
}

func refQ3K(x []byte) ([]float32, []refElem) {
	const kmask1, kmask2 = 0x03030303, 0x0f0f0f0f
	var aux [4]uint32
	var sc12 [16]byte
	copy(sc12[:], x[96:108])
	for i := range aux {
		aux[i] = binary.LittleEndian.Uint32(sc12[4*i:])
	}
	tmp := aux[2]
	aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4)
	aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4)
	aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4)
	aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4)
	var scales [16]int8
	for i := range scales {
		scales[i] = int8(aux[i/4] >> (8 * (i % 4)))
	}
	dAll := h2f(x[108:])
	q, hm := x[32:96], x[0:32]
	m := uint8(1)
	var y []float32
	var el []refElem
	is := 0
	for n := 0; n < 256; n += 128 {
		shift := 0
		for j := 0; j < 4; j++ {
			for half := 0; half < 2; half++ {
				sc := int(scales[is]) - 32
				is++
				dl := dAll * float32(sc)
				for l := 0; l < 16; l++ {
					low := int(int8((q[l+16*half] >> shift) & 3))
					sub := 4
					if hm[l+16*half]&m != 0 {
						sub = 0
					}
					y = append(y, dl*float32(low-sub))
					el = append(el, refElem{low + 4 - sub, sc, 4 * sc})
				}
			}
			shift += 2
			m <<= 1
		}
		q = q[32:]
	}
	return y, el
}

func refScaleMin(j int, q []byte) (int, int) {
	if j < 4 {
		return int(q[j] & 63), int(q[j+4] & 63)
	}
	return int((q[j+4] & 0xF) | ((q[j-4] >> 6) << 4)), int((q[j+4] >> 4) | ((q[j-0] >> 6) << 4))
}

func refQ45K(x []byte, five bool) ([]float32, []refElem) {
	d, min := h2f(x[0:]), h2f(x[2:])
	scales := x[4:16]
	var ql, qh []byte
	if five {
		qh, ql = x[16:48], x[48:176]
	} else {
		ql = x[16:144]
	}
	var y []float32
	var el []refElem
	is := 0
	u1, u2 := uint8(1), uint8(2)
	for j := 0; j < 256; j += 64 {
		sc1, m1i := refScaleMin(is+0, scales)
		sc2, m2i := refScaleMin(is+1, scales)
		d1, m1 := d*float32(sc1), min*float32(m1i)
		d2, m2 := d*float32(sc2), min*float32(m2i)
		for l := 0; l < 32; l++ {
			q := int(ql[l] & 0xF)
			if five && qh[l]&u1 != 0 {
				q += 16
			}
			y = append(y, float32(d1*float32(q))-m1)
			el = append(el, refElem{q, sc1, m1i})
		}
		for l := 0; l < 32; l++ {
			q := int(ql[l] >> 4)
			if five && qh[l]&u2 != 0 {
				q += 16
			}
			y = append(y, float32(d2*float32(q))-m2)
			el = append(el, refElem{q, sc2, m2i})
		}
		ql = ql[32:]
		is += 2
		u1 <<= 2
		u2 <<= 2
	}
	return y, el
}

func refQ6K(x []byte) ([]float32, []refElem) {
	y, el := make([]float32, 256), make([]refElem, 256)
	d := h2f(x[208:])
	ql, qh, sc := x[0:128], x[128:192], x[192:208]
	for n := 0; n < 256; n += 128 {
		for l := 0; l < 32; l++ {
			is := l / 16
			q1 := int((ql[l+0]&0xF)|((qh[l]>>0)&3)<<4) - 32
			q2 := int((ql[l+32]&0xF)|((qh[l]>>2)&3)<<4) - 32
			q3 := int((ql[l+0]>>4)|((qh[l]>>4)&3)<<4) - 32
			q4 := int((ql[l+32]>>4)|((qh[l]>>6)&3)<<4) - 32
			for k, q := range []int{q1, q2, q3, q4} {
				s := int(int8(sc[is+2*k]))
				y[n+l+32*k] = d * float32(s) * float32(q)
				el[n+l+32*k] = refElem{q + 32, s, 32 * s}
			}
		}
		ql, qh, sc = ql[64:], qh[32:], sc[8:]
	}
	return y, el
}

// randomBlocks returns nb random blocks of t whose fp16/f32 scale fields
// hold finite values (random bytes elsewhere), so decoded values are finite.
func randomBlocks(r *rand.Rand, t backend.DType, nb int) []byte {
	tr, _ := backend.TraitsOf(t)
	b := make([]byte, nb*tr.TypeSize)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	half := func(p []byte) {
		binary.LittleEndian.PutUint16(p, FP32ToFP16(float32(r.NormFloat64()*0.05)))
	}
	for k := 0; k < nb; k++ {
		blk := b[k*tr.TypeSize : (k+1)*tr.TypeSize]
		switch t {
		case backend.Q4_0, backend.Q5_0, backend.Q8_0:
			half(blk)
		case backend.Q4_1, backend.Q5_1, backend.Q8_1:
			half(blk)
			half(blk[2:])
		case backend.Q2_K:
			half(blk[80:])
			half(blk[82:])
		case backend.Q3_K:
			half(blk[108:])
		case backend.Q4_K, backend.Q5_K:
			half(blk)
			half(blk[2:])
		case backend.Q6_K:
			half(blk[208:])
		case backend.Q8_K:
			binary.LittleEndian.PutUint32(blk, math.Float32bits(float32(r.NormFloat64()*0.01)))
		}
	}
	return b
}

func randNormal(r *rand.Rand, n int, sigma float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * sigma)
	}
	return x
}
