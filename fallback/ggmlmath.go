package fallback

import "math"

// This file holds the scalar building blocks that reproduce the float
// arithmetic of llama.cpp's CPU backend (build 4748, x86-64 with AVX2, FMA
// and F16C, as on the project's reference machine), so that greedy tokens
// agree with llama.cpp's. Each function names the ggml code it follows.
//
// Go may fuse x*y+z into one FMA on some architectures (arm64, ppc64,
// s390x, amd64 with GOAMD64=v3); products that C rounds separately are
// therefore wrapped in float32(...), which the Go spec guarantees rounds.

// fma32 is a single-rounding float32 fused multiply-add (VFMADD*PS). The
// float64 FMA is exact up to one rounding to double; rounding that double
// again to float32 is correct unless it landed exactly on a float32
// midpoint (or in float32's subnormal range), which the slow path handles.
func fma32(a, b, c float32) float32 {
	s := math.FMA(float64(a), float64(b), float64(c))
	u := math.Float64bits(s)
	if u&(1<<29-1) != 1<<28 && (u>>52)&0x7ff >= 1023-126 {
		return float32(s)
	}
	return fma32Exact(a, b, c)
}

// fma32Exact rounds a*b+c to double with round-to-odd (exact product,
// TwoSum for the addition error), after which one rounding to float32 is
// correct: round-to-odd with at least two extra bits makes double rounding
// innocuous.
func fma32Exact(a, b, c float32) float32 {
	p := float64(a) * float64(b) // exact: 24+24 significant bits
	cc := float64(c)
	s := p + cc
	if s == 0 || math.IsInf(s, 0) || math.IsNaN(s) {
		return float32(s)
	}
	bv := s - p
	err := (p - (s - bv)) + (cc - bv)
	if u := math.Float64bits(s); err != 0 && u&1 == 0 {
		if (err > 0) == (s > 0) {
			u++ // away from zero, toward the exact value
		} else {
			u--
		}
		s = math.Float64frombits(u)
	}
	return float32(s)
}

// hsum8 is llamafile's hsum(__m256) and the horizontal sum in ggml's AVX2
// softmax: fold the high half onto the low half, then lanes 0+2 and 1+3,
// then those two.
func hsum8(v *[8]float32) float32 {
	h0, h1, h2, h3 := v[4]+v[0], v[5]+v[1], v[6]+v[2], v[7]+v[3]
	return (h0 + h2) + (h1 + h3)
}

// reduce32 is GGML_F32x8_REDUCE over ggml_vec_dot's four 8-lane
// accumulators (lane i of accumulator j at index 8j+i): add accumulators
// 2,3 onto 0,1, then 1 onto 0, then fold halves and sum with two HADDs.
func reduce32(a *[32]float32) float32 {
	var x [8]float32
	for i := 0; i < 8; i++ {
		x0 := a[i] + a[16+i]
		x1 := a[8+i] + a[24+i]
		x[i] = x0 + x1
	}
	t0, t1, t2, t3 := x[0]+x[4], x[1]+x[5], x[2]+x[6], x[3]+x[7]
	return (t0 + t1) + (t2 + t3)
}

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
			acc[l] = fma32(a[i+l], b[i+l], acc[l])
		}
	}
	sum := reduce32(&acc)
	for i := np; i < len(a); i++ {
		sum = fma32(a[i], b[i], sum)
	}
	return sum
}
