package fallback

import "qinfer/fallback/vecmath"

// This file holds the scalar building blocks that reproduce the float
// arithmetic of llama.cpp's CPU backend (build 4748, x86-64 with AVX2, FMA
// and F16C, as on the project's reference machine), so that greedy tokens
// agree with llama.cpp's. Each function names the ggml code it follows.
//
// Go may fuse x*y+z into one FMA on some architectures (arm64, ppc64,
// s390x, amd64 with GOAMD64=v3); products that C rounds separately are
// therefore wrapped in float32(...), which the Go spec guarantees rounds.

// dotVecF32 is ggml_vec_dot_f32 on AVX2 for an F32 KV cache (the F16 cache
// uses qinfer/fallback/vecmath): four 8-lane FMA accumulators over the
// first n&^31 elements, reduce32, then the tail; unlike ggml_vec_dot_f16
// the reduced sum stays a float and the tail is accumulated in float (GCC
// contracts `sumf += x[i]*y[i]` into an FMA under -march=native).
func dotVecF32(a, b []float32) float32 {
	var acc [32]float32
	b = b[:len(a)]
	np := len(a) &^ 31
	for i := 0; i < np; i += 32 {
		for l := 0; l < 32; l++ {
			acc[l] = vecmath.FMA32(a[i+l], b[i+l], acc[l])
		}
	}
	sum := vecmath.Reduce32(&acc)
	for i := np; i < len(a); i++ {
		sum = vecmath.FMA32(a[i], b[i], sum)
	}
	return sum
}
