package kernels

import "math"

// llama.cpp's float orders. Integer sums are exact on every path, but how
// the per-block results are scaled and added decides the last bits of the
// output, and the project requires both that a token's result not depend
// on the batch it is computed in and that Q8_0 and Q4_0 results equal
// llama.cpp's bit for bit (host/engine's parity tests). Every Q8_0 and Q4_0
// kernel here, SIMD or Go, follows one of these orders:
//
//   - Q8_0, ggml_vec_dot_q8_0_q8_0 (and llamafile's tinyBLAS, which
//     llama.cpp uses for Q8_0 prompts): per row and token eight float
//     lanes, lane i the integer sum of products 4i..4i+3 of each block;
//     per block acc[i] = fma(dw*dx, lane, acc[i]); at the end the lanes are
//     added as hsum_float_8 does.
//   - Q4_0, llama.cpp's repacked Q4_0 gemv/gemm (rows in lanes): per row
//     and token one float, per block acc = fma(float(block sum), dw*dx,
//     acc).

// fma32 is a fused float32 multiply-add (a*b+c rounded once), as VFMADD
// computes it. The product of two float32 is exact in float64; the sum is
// rounded to float64 with round-to-odd, which makes the final rounding to
// float32 correct (53 >= 24+2 bits).
func fma32(a, b, c float32) float32 {
	p := float64(float64(a) * float64(b)) // exact; the conversion forbids fusing
	cc := float64(c)
	s := p + cc
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return float32(s)
	}
	// TwoSum: e is the exact rounding error of s.
	bb := s - p
	e := (p - (s - bb)) + (cc - bb)
	if e != 0 {
		// Round to odd: of s and its neighbour towards s+e, the one with
		// an odd last bit (neighbouring floats alternate).
		bits := math.Float64bits(s)
		if bits&1 == 0 {
			if (e > 0) == (s > 0) {
				bits++
			} else {
				bits--
			}
		}
		s = math.Float64frombits(bits)
	}
	return float32(s)
}

// hsum8 adds eight lanes as hsum_float_8 does:
// ((a4+a0)+(a6+a2)) + ((a5+a1)+(a7+a3)).
func hsum8(a *[8]float32) float32 {
	s0, s1, s2, s3 := a[4]+a[0], a[5]+a[1], a[6]+a[2], a[7]+a[3]
	return (s0 + s2) + (s1 + s3)
}
