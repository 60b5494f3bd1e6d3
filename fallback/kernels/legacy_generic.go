package kernels

// Pure-Go Q8_0 and Q4_0 weight rows against a Q8_0 activation row.

func dotQ8_0Generic(w, x []byte, nb int) float32 {
	var sum float32
	for b := 0; b < nb; b++ {
		wb := w[b*q8_0Bytes : (b+1)*q8_0Bytes]
		xb := x[b*q8_0Bytes : (b+1)*q8_0Bytes]
		var s int32
		for j := 2; j < q8_0Bytes; j++ {
			s += int32(int8(wb[j])) * int32(int8(xb[j]))
		}
		sum += float32(s) * (fp16At(wb) * fp16At(xb))
	}
	return sum
}

func dotQ4_0Generic(w, x []byte, nb int) float32 {
	var sum float32
	for b := 0; b < nb; b++ {
		wb := w[b*q4_0Bytes : (b+1)*q4_0Bytes]
		xb := x[b*q8_0Bytes : (b+1)*q8_0Bytes]
		var s int32
		for j := 0; j < qk/2; j++ {
			q := wb[2+j]
			s += (int32(q&15) - 8) * int32(int8(xb[2+j]))
			s += (int32(q>>4) - 8) * int32(int8(xb[2+j+qk/2]))
		}
		sum += float32(s) * (fp16At(wb) * fp16At(xb))
	}
	return sum
}
