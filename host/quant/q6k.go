package quant

// Q6_K super-block (210 bytes): ql[128] (low 4 bits), qh[64] (high 2 bits),
// scales int8[16] (one per 16 elements), d fp16. value = d*scale*(q-32).
// In each 128-element half h, for l < 32: ql[64h+l] holds elements l (low
// nibble) and l+64 (high nibble), ql[64h+32+l] elements l+32 and l+96, and
// qh[32h+l] the high bits of l, l+32, l+64, l+96 at bit offsets 0, 2, 4, 6.
const (
	q6kSize   = 210
	q6kQl     = 0
	q6kQh     = 128
	q6kScales = 192
	q6kD      = 208
)

func quantQ6K(src []float32, dst []byte) {
	var (
		L      [qkK]int8
		scales [qkK / 16]float32
	)
	for b := 0; b*qkK < len(src); b++ {
		x := src[b*qkK : (b+1)*qkK]
		y := dst[b*q6kSize : (b+1)*q6kSize]
		var maxScale, maxAbsScale float32
		for ib := 0; ib < qkK/16; ib++ {
			s := makeQxQuants(32, x[16*ib:16*ib+16], L[16*ib:16*ib+16], 1)
			scales[ib] = s
			if a := abs32(s); a > maxAbsScale {
				maxAbsScale, maxScale = a, s
			}
		}
		if maxAbsScale < groupMaxEps {
			for i := range y {
				y[i] = 0
			}
			continue
		}
		iscale := -128 / maxScale
		putFP16(y[q6kD:], 1/iscale)
		sc := y[q6kScales : q6kScales+16]
		for ib := range sc {
			sc[ib] = uint8(int8(min(127, nearestInt(iscale*scales[ib]))))
		}
		dAll := fp16At(y[q6kD:])
		for j := 0; j < qkK/16; j++ {
			d := dAll * float32(int8(sc[j]))
			if d == 0 {
				continue
			}
			for ii := 0; ii < 16; ii++ {
				L[16*j+ii] = int8(clamp(nearestInt(x[16*j+ii]/d), -32, 31) + 32)
			}
		}
		ql := y[q6kQl:]
		qh := y[q6kQh:]
		for j := 0; j < qkK; j += 128 {
			for l := 0; l < 32; l++ {
				q1 := uint8(L[j+l]) & 0xf
				q2 := uint8(L[j+l+32]) & 0xf
				q3 := uint8(L[j+l+64]) & 0xf
				q4 := uint8(L[j+l+96]) & 0xf
				ql[l] = q1 | q3<<4
				ql[l+32] = q2 | q4<<4
				qh[l] = uint8(L[j+l])>>4 | (uint8(L[j+l+32])>>4)<<2 | (uint8(L[j+l+64])>>4)<<4 | (uint8(L[j+l+96])>>4)<<6
			}
			ql = ql[64:]
			qh = qh[32:]
		}
	}
}

// q6At returns the unsigned 6-bit quant (0..63) of element e of a Q6_K block.
func q6At(blk []byte, e int) int {
	h, r := e/128, e%128
	l, quarter := r%32, r/32 // quarter 0..3: elements l, l+32, l+64, l+96
	lo := blk[q6kQl+64*h+32*(quarter%2)+l] >> (4 * (quarter / 2)) & 0xf
	hi := blk[q6kQh+32*h+l] >> (2 * quarter) & 3
	return int(lo) | int(hi)<<4
}

func dequantQ6K(src []byte, dst []float32) {
	for b := 0; b*qkK < len(dst); b++ {
		x := src[b*q6kSize : (b+1)*q6kSize]
		y := dst[b*qkK : (b+1)*qkK]
		d := fp16At(x[q6kD:])
		for j := 0; j < qkK/16; j++ {
			ds := d * float32(int8(x[q6kScales+j]))
			for e := 16 * j; e < 16*j+16; e++ {
				y[e] = ds * float32(q6At(x, e)-32)
			}
		}
	}
}
