package quant

// Q2_K super-block (84 bytes): scales[16] (low nibble: 4-bit scale, high
// nibble: 4-bit min of each 16-element sub-block), qs[64] (2-bit quants),
// d fp16, dmin fp16. value = d*scale*q - dmin*min. Within each 128-element
// half, byte l of its 32 qs bytes holds elements l, l+32, l+64, l+96 at bit
// offsets 0, 2, 4, 6.
const (
	q2kSize   = 84
	q2kScales = 0
	q2kQs     = 16
	q2kD      = 80
	q2kDmin   = 82
)

func quantQ2K(src []float32, dst []byte) {
	var (
		L       [qkK]uint8
		laux    [16]uint8
		weights [16]float32
		mins    [qkK / 16]float32
		scales  [qkK / 16]float32
	)
	const q4scale = 15
	for b := 0; b*qkK < len(src); b++ {
		x := src[b*qkK : (b+1)*qkK]
		y := dst[b*q2kSize : (b+1)*q2kSize]
		var maxScale, maxMin float32
		for j := 0; j < qkK/16; j++ {
			xs := x[16*j : 16*j+16]
			for l, v := range xs {
				weights[l] = abs32(v)
			}
			scales[j], mins[j] = makeQkx2Quants(3, xs, weights[:], L[16*j:16*j+16], laux[:], -0.5, 0.1, 15, true)
			if scales[j] > maxScale {
				maxScale = scales[j]
			}
			if mins[j] > maxMin {
				maxMin = mins[j]
			}
		}
		sc := y[q2kScales : q2kScales+16]
		if maxScale > 0 {
			iscale := q4scale / maxScale
			for j := range sc {
				sc[j] = uint8(nearestInt(iscale * scales[j]))
			}
			putFP16(y[q2kD:], maxScale/q4scale)
		} else {
			for j := range sc {
				sc[j] = 0
			}
			putFP16(y[q2kD:], 0)
		}
		if maxMin > 0 {
			iscale := q4scale / maxMin
			for j := range sc {
				sc[j] |= uint8(nearestInt(iscale*mins[j]) << 4)
			}
			putFP16(y[q2kDmin:], maxMin/q4scale)
		} else {
			putFP16(y[q2kDmin:], 0)
		}
		dAll, dMin := fp16At(y[q2kD:]), fp16At(y[q2kDmin:])
		for j := 0; j < qkK/16; j++ {
			d := dAll * float32(sc[j]&0xf)
			if d == 0 {
				continue
			}
			dm := float32(dMin * float32(sc[j]>>4)) // rounded: not fused into x+dm
			for ii := 0; ii < 16; ii++ {
				L[16*j+ii] = uint8(clamp(nearestInt((x[16*j+ii]+dm)/d), 0, 3))
			}
		}
		packQ2(L[:], y[q2kQs:q2kQs+64])
	}
}

// packQ2 packs 256 2-bit values the way Q2_K and Q3_K store their low bits.
func packQ2(L []uint8, qs []byte) {
	for j := 0; j < qkK; j += 128 {
		for l := 0; l < 32; l++ {
			qs[j/4+l] = L[j+l] | L[j+l+32]<<2 | L[j+l+64]<<4 | L[j+l+96]<<6
		}
	}
}

// q2At returns the 2-bit quant of element e (0..255) of a Q2_K/Q3_K qs array.
func q2At(qs []byte, e int) int {
	half, r := e/128, e%128
	return int(qs[32*half+r%32]>>(2*(r/32))) & 3
}

func dequantQ2K(src []byte, dst []float32) {
	for b := 0; b*qkK < len(dst); b++ {
		x := src[b*q2kSize : (b+1)*q2kSize]
		y := dst[b*qkK : (b+1)*qkK]
		d, dmin := fp16At(x[q2kD:]), fp16At(x[q2kDmin:])
		qs := x[q2kQs:]
		for j := 0; j < qkK/16; j++ {
			sc := x[q2kScales+j]
			dl := d * float32(sc&0xf)
			ml := float32(dmin * float32(sc>>4)) // rounded: not fused into the subtraction
			for e := 16 * j; e < 16*j+16; e++ {
				y[e] = float32(dl*float32(q2At(qs, e))) - ml
			}
		}
	}
}
