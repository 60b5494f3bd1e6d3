//go:build !purego

package kernels

// quantizeQ8_0NEON quantizes nb blocks of 32 floats at x to Q8_0 blocks at
// dst as llama.cpp's AVX2 quantize_row_q8_0 does (quant_arm64.s).
//
//go:noescape
func quantizeQ8_0NEON(x *float32, nb int, dst *byte)

func quantRowQ8_0NEON(src []float32, out []byte) {
	quantizeQ8_0NEON(&src[0], len(src)/qk, &out[0])
}
