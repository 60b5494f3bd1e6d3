package quant

// Q3_K super-block (110 bytes): hmask[32] (bit e/32 of byte e%32 is the
// high bit of element e), qs[64] (low 2 bits, packed as in Q2_K),
// scales[12] (sixteen 6-bit scales stored with +32), d fp16.
// value = d*(scale-32)*(q-4), q = low | high<<2 in 0..7.
const (
	q3kSize   = 110
	q3kHmask  = 0
	q3kQs     = 32
	q3kScales = 96
	q3kD      = 108
)

// q3kScale decodes the signed 6-bit scale of sub-block j (0..15).
func q3kScale(sc []byte, j int) int {
	var low int
	if j < 8 {
		low = int(sc[j] & 0xf)
	} else {
		low = int(sc[j-8] >> 4)
	}
	high := int(sc[8+j%4]>>(2*(j/4))) & 3
	return (low | high<<4) - 32
}

func quantQ3K(src []float32, dst []byte) {
	var (
		L      [qkK]int8
		scales [qkK / 16]float32
	)
	for b := 0; b*qkK < len(src); b++ {
		x := src[b*qkK : (b+1)*qkK]
		y := dst[b*q3kSize : (b+1)*q3kSize]
		var maxScale, amax float32
		for j := 0; j < qkK/16; j++ {
			scales[j] = makeQ3Quants(4, x[16*j:16*j+16], L[16*j:16*j+16], true)
			if s := abs32(scales[j]); s > amax {
				amax, maxScale = s, scales[j]
			}
		}
		sc := y[q3kScales : q3kScales+12]
		for j := range sc {
			sc[j] = 0
		}
		if maxScale != 0 {
			iscale := -32 / maxScale
			for j := 0; j < qkK/16; j++ {
				l := clamp(int(int8(nearestInt(iscale*scales[j]))), -32, 31) + 32
				if j < 8 {
					sc[j] = uint8(l & 0xf)
				} else {
					sc[j-8] |= uint8((l & 0xf) << 4)
				}
				l >>= 4
				sc[j%4+8] |= uint8(l << (2 * (j / 4)))
			}
			putFP16(y[q3kD:], 1/iscale)
		} else {
			putFP16(y[q3kD:], 0)
		}
		dAll := fp16At(y[q3kD:])
		for j := 0; j < qkK/16; j++ {
			d := dAll * float32(q3kScale(sc, j))
			if d == 0 {
				continue
			}
			for ii := 0; ii < 16; ii++ {
				L[16*j+ii] = int8(clamp(nearestInt(x[16*j+ii]/d), -4, 3) + 4)
			}
		}
		hm := y[q3kHmask : q3kHmask+32]
		var low [qkK]uint8
		for j := range hm {
			hm[j] = 0
		}
		for e := 0; e < qkK; e++ {
			l := uint8(L[e])
			if l > 3 {
				hm[e%32] |= 1 << (e / 32)
				l -= 4
			}
			low[e] = l
		}
		packQ2(low[:], y[q3kQs:q3kQs+64])
	}
}

// q3At returns the unsigned 3-bit quant (0..7) of element e of a Q3_K block.
func q3At(blk []byte, e int) int {
	q := q2At(blk[q3kQs:], e)
	if blk[q3kHmask+e%32]>>(e/32)&1 != 0 {
		q |= 4
	}
	return q
}

func dequantQ3K(src []byte, dst []float32) {
	for b := 0; b*qkK < len(dst); b++ {
		x := src[b*q3kSize : (b+1)*q3kSize]
		y := dst[b*qkK : (b+1)*qkK]
		d := fp16At(x[q3kD:])
		sc := x[q3kScales:]
		for j := 0; j < qkK/16; j++ {
			dl := d * float32(q3kScale(sc, j))
			for e := 16 * j; e < 16*j+16; e++ {
				y[e] = dl * float32(q3At(x, e)-4)
			}
		}
	}
}
