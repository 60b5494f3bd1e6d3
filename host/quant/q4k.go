package quant

// Q4_K super-block (144 bytes): d fp16, dmin fp16, scales[12] (eight 6-bit
// scales and eight 6-bit mins, see getScaleMinK4), qs[128]. Each 64-element
// chunk c uses qs[32c:32c+32]: element 64c+l is the low nibble of byte l,
// element 64c+32+l the high nibble. value = d*scale*q - dmin*min, one
// scale/min pair per 32 elements.
const (
	q4kSize   = 144
	q4kD      = 0
	q4kDmin   = 2
	q4kScales = 4
	q4kQs     = 16
)

// fitK4Scales is the part of quantize_row_q4_K_ref/q5_K_ref that fits each
// 32-element sub-block with make_qkx2_quants and packs the 6-bit scales and
// mins and the super-block d/dmin into y (layout shared by Q4_K and Q5_K).
// L receives the fitted quants, which the caller requantizes.
func fitK4Scales(x []float32, y []byte, L []uint8, nmax int, rmin, rdelta float32, nstep int) {
	var (
		laux    [32]uint8
		weights [32]float32
		mins    [qkK / 32]float32
		scales  [qkK / 32]float32
	)
	var maxScale, maxMin float32
	for j := 0; j < qkK/32; j++ {
		xs := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xs {
			sumX2 += float32(v * v)
		}
		avX := sqrt32(sumX2 / 32)
		for l, v := range xs {
			weights[l] = avX + abs32(v)
		}
		scales[j], mins[j] = makeQkx2Quants(nmax, xs, weights[:], L[32*j:32*j+32], laux[:], rmin, rdelta, nstep, false)
		if scales[j] > maxScale {
			maxScale = scales[j]
		}
		if mins[j] > maxMin {
			maxMin = mins[j]
		}
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	sc := y[q4kScales : q4kScales+12]
	for j := 0; j < qkK/32; j++ {
		ls := min(uint8(nearestInt(invScale*scales[j])), 63)
		lm := min(uint8(nearestInt(invMin*mins[j])), 63)
		if j < 4 {
			sc[j] = ls
			sc[j+4] = lm
		} else {
			sc[j+4] = ls&0xf | (lm&0xf)<<4
			sc[j-4] |= (ls >> 4) << 6
			sc[j] |= (lm >> 4) << 6
		}
	}
	putFP16(y[q4kD:], maxScale/63)
	putFP16(y[q4kDmin:], maxMin/63)
}

// requantK4 recomputes L from the stored (rounded) scales and mins, as the
// reference quantizers do after packing them.
func requantK4(x []float32, y []byte, L []uint8, nmax int) {
	d0, m0 := fp16At(y[q4kD:]), fp16At(y[q4kDmin:])
	for j := 0; j < qkK/32; j++ {
		sc, m := getScaleMinK4(j, y[q4kScales:])
		d := d0 * float32(sc)
		if d == 0 {
			continue
		}
		dm := float32(m0 * float32(m)) // rounded: not fused into x+dm
		for ii := 0; ii < 32; ii++ {
			L[32*j+ii] = uint8(clamp(nearestInt((x[32*j+ii]+dm)/d), 0, nmax))
		}
	}
}

func quantQ4K(src []float32, dst []byte) {
	var L [qkK]uint8
	for b := 0; b*qkK < len(src); b++ {
		x := src[b*qkK : (b+1)*qkK]
		y := dst[b*q4kSize : (b+1)*q4kSize]
		fitK4Scales(x, y, L[:], 15, -1, 0.1, 20)
		requantK4(x, y, L[:], 15)
		q := y[q4kQs:]
		for j := 0; j < qkK; j += 64 {
			for l := 0; l < 32; l++ {
				q[l] = L[j+l] | L[j+l+32]<<4
			}
			q = q[32:]
		}
	}
}

// q4At returns the 4-bit quant of element e of a Q4_K/Q5_K qs array.
func q4At(qs []byte, e int) int {
	c, r := e/64, e%64
	return int(qs[32*c+r%32]>>(4*(r/32))) & 0xf
}

func dequantQ4K(src []byte, dst []float32) {
	for b := 0; b*qkK < len(dst); b++ {
		x := src[b*q4kSize : (b+1)*q4kSize]
		y := dst[b*qkK : (b+1)*qkK]
		d, dmin := fp16At(x[q4kD:]), fp16At(x[q4kDmin:])
		for j := 0; j < qkK/32; j++ {
			sc, m := getScaleMinK4(j, x[q4kScales:])
			d1, m1 := d*float32(sc), float32(dmin*float32(m)) // m1 rounded: not fused into the subtraction
			for e := 32 * j; e < 32*j+32; e++ {
				y[e] = float32(d1*float32(q4At(x[q4kQs:], e))) - m1
			}
		}
	}
}
