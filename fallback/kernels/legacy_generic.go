package kernels

// Pure-Go Q8_0 and Q4_0 weight rows against a Q8_0 activation row, in
// llama.cpp's float orders (order.go).

func dotQ8_0Generic(w, x []byte, nb int) float32 {
	var acc [8]float32
	for b := 0; b < nb; b++ {
		wb := w[b*q8_0Bytes : (b+1)*q8_0Bytes]
		xb := x[b*q8_0Bytes : (b+1)*q8_0Bytes]
		d := float32(fp16At(wb) * fp16At(xb))
		for i := range acc {
			var s int32
			for j := 2 + 4*i; j < 2+4*i+4; j++ {
				s += int32(int8(wb[j])) * int32(int8(xb[j]))
			}
			acc[i] = fma32(d, float32(s), acc[i])
		}
	}
	return hsum8(&acc)
}

func dotQ4_0Generic(w, x []byte, nb int) float32 {
	var acc float32
	for b := 0; b < nb; b++ {
		wb := w[b*q4_0Bytes : (b+1)*q4_0Bytes]
		xb := x[b*q8_0Bytes : (b+1)*q8_0Bytes]
		var s int32
		for j := 0; j < qk/2; j++ {
			q := wb[2+j]
			s += (int32(q&15) - 8) * int32(int8(xb[2+j]))
			s += (int32(q>>4) - 8) * int32(int8(xb[2+j+qk/2]))
		}
		acc = fma32(float32(s), float32(fp16At(wb)*fp16At(xb)), acc)
	}
	return acc
}
