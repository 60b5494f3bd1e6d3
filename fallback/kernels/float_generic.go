package kernels

// The float formats sum in float64: products of two halves are exact in
// float32 and of two floats in float64, so the result is the correctly
// rounded dot product up to the final conversion.

func dotF16Generic(w, x []byte, n int) float32 {
	var sum float64
	for i := 0; i < n; i++ {
		sum += float64(fp16At(w[2*i:])) * float64(fp16At(x[2*i:]))
	}
	return float32(sum)
}

func dotF32Generic(w, x []byte, n int) float32 {
	var sum float64
	for i := 0; i < n; i++ {
		sum += float64(f32At(w[4*i:])) * float64(f32At(x[4*i:]))
	}
	return float32(sum)
}
