package kernels

// Pure-Go K-quant weight rows against a Q8_K activation row.

// scaleMinK4 unpacks the 6-bit scale and min of sub-block j from the 12
// packed bytes of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4).
func scaleMinK4(j int, q []byte) (sc, m int32) {
	if j < 4 {
		return int32(q[j] & 63), int32(q[j+4] & 63)
	}
	return int32(q[j+4]&0xF | (q[j-4]>>6)<<4), int32(q[j+4]>>4 | (q[j]>>6)<<4)
}

// q8KSums returns the sums of the 32-element sub-blocks of a Q8_K block
// from its 16-element block sums.
func q8KSum32(xb []byte, j int) int32 {
	return i16At(xb[4+qkK+4*j:]) + i16At(xb[4+qkK+4*j+2:])
}

func dotQ4KGeneric(w, x []byte, nb int) float32 {
	var sum float32
	for b := 0; b < nb; b++ {
		wb := w[b*q4KBytes : (b+1)*q4KBytes]
		xb := x[b*q8KBytes : (b+1)*q8KBytes]
		scales, qs, q8 := wb[4:16], wb[16:144], xb[4:4+qkK]
		var isum, msum int32
		for j := 0; j < 4; j++ {
			sc1, m1 := scaleMinK4(2*j, scales)
			sc2, m2 := scaleMinK4(2*j+1, scales)
			var s1, s2 int32
			for l := 0; l < 32; l++ {
				q := qs[32*j+l]
				s1 += int32(q&15) * int32(int8(q8[64*j+l]))
				s2 += int32(q>>4) * int32(int8(q8[64*j+32+l]))
			}
			isum += sc1*s1 + sc2*s2
			msum += m1*q8KSum32(xb, 2*j) + m2*q8KSum32(xb, 2*j+1)
		}
		dy := f32At(xb)
		sum += float32(dy*fp16At(wb)*float32(isum)) - float32(dy*fp16At(wb[2:])*float32(msum))
	}
	return sum
}

func dotQ5KGeneric(w, x []byte, nb int) float32 {
	var sum float32
	for b := 0; b < nb; b++ {
		wb := w[b*q5KBytes : (b+1)*q5KBytes]
		xb := x[b*q8KBytes : (b+1)*q8KBytes]
		scales, qh, qs, q8 := wb[4:16], wb[16:48], wb[48:176], xb[4:4+qkK]
		var isum, msum int32
		for j := 0; j < 4; j++ {
			sc1, m1 := scaleMinK4(2*j, scales)
			sc2, m2 := scaleMinK4(2*j+1, scales)
			var s1, s2 int32
			for l := 0; l < 32; l++ {
				q, h := qs[32*j+l], qh[l]>>(2*j)
				s1 += int32(q&15|(h&1)<<4) * int32(int8(q8[64*j+l]))
				s2 += int32(q>>4|(h&2)<<3) * int32(int8(q8[64*j+32+l]))
			}
			isum += sc1*s1 + sc2*s2
			msum += m1*q8KSum32(xb, 2*j) + m2*q8KSum32(xb, 2*j+1)
		}
		dy := f32At(xb)
		sum += float32(dy*fp16At(wb)*float32(isum)) - float32(dy*fp16At(wb[2:])*float32(msum))
	}
	return sum
}

func dotQ6KGeneric(w, x []byte, nb int) float32 {
	var sum float32
	for b := 0; b < nb; b++ {
		wb := w[b*q6KBytes : (b+1)*q6KBytes]
		xb := x[b*q8KBytes : (b+1)*q8KBytes]
		var isum int32
		for n := 0; n < 2; n++ {
			ql, qh := wb[64*n:64*n+64], wb[128+32*n:128+32*n+32]
			sc, q8 := wb[192+8*n:192+8*n+8], xb[4+128*n:4+128*n+128]
			var s [8]int32 // per 16-element sub-block
			for l := 0; l < 32; l++ {
				is, h := l/16, qh[l]
				s[is] += (int32(ql[l]&15|(h&3)<<4) - 32) * int32(int8(q8[l]))
				s[is+2] += (int32(ql[l+32]&15|(h>>2&3)<<4) - 32) * int32(int8(q8[l+32]))
				s[is+4] += (int32(ql[l]>>4|(h>>4&3)<<4) - 32) * int32(int8(q8[l+64]))
				s[is+6] += (int32(ql[l+32]>>4|(h>>6&3)<<4) - 32) * int32(int8(q8[l+96]))
			}
			for i, v := range s {
				isum += int32(int8(sc[i])) * v
			}
		}
		sum += float32(f32At(xb) * fp16At(wb[208:]) * float32(isum))
	}
	return sum
}
