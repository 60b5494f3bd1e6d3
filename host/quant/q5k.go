package quant

// Q5_K super-block (176 bytes): d fp16, dmin fp16, scales[12] (as Q4_K),
// qh[32], qs[128] (low 4 bits, as Q4_K). The fifth bit of element e is bit
// e/32 of qh[e%32]. value = d*scale*q - dmin*min.
const (
	q5kSize = 176
	q5kQh   = 16
	q5kQs   = 48
)

func quantQ5K(src []float32, dst []byte) {
	var L [qkK]uint8
	for b := 0; b*qkK < len(src); b++ {
		x := src[b*qkK : (b+1)*qkK]
		y := dst[b*q5kSize : (b+1)*q5kSize]
		fitK4Scales(x, y, L[:], 31, -0.5, 0.1, 15)
		requantK4(x, y, L[:], 31)
		qh := y[q5kQh : q5kQh+32]
		ql := y[q5kQs:]
		for j := range qh {
			qh[j] = 0
		}
		m1, m2 := uint8(1), uint8(2)
		for n := 0; n < qkK; n += 64 {
			for j := 0; j < 32; j++ {
				l1 := L[n+j]
				if l1 > 15 {
					l1 -= 16
					qh[j] |= m1
				}
				l2 := L[n+j+32]
				if l2 > 15 {
					l2 -= 16
					qh[j] |= m2
				}
				ql[j] = l1 | l2<<4
			}
			m1 <<= 2
			m2 <<= 2
			ql = ql[32:]
		}
	}
}

// q5At returns the 5-bit quant of element e of a Q5_K block.
func q5At(blk []byte, e int) int {
	return q4At(blk[q5kQs:], e) | int(blk[q5kQh+e%32]>>(e/32)&1)<<4
}

func dequantQ5K(src []byte, dst []float32) {
	for b := 0; b*qkK < len(dst); b++ {
		x := src[b*q5kSize : (b+1)*q5kSize]
		y := dst[b*qkK : (b+1)*qkK]
		d, dmin := fp16At(x[q4kD:]), fp16At(x[q4kDmin:])
		for j := 0; j < qkK/32; j++ {
			sc, m := getScaleMinK4(j, x[q4kScales:])
			d1, m1 := d*float32(sc), float32(dmin*float32(m)) // m1 rounded: not fused into the subtraction
			for e := 32 * j; e < 32*j+32; e++ {
				y[e] = float32(d1*float32(q5At(x, e))) - m1
			}
		}
	}
}
