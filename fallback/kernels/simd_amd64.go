//go:build amd64 && !purego

package kernels

import (
	"golang.org/x/sys/cpu"

	"qinfer/host/backend"
)

// useAVX2 switches the AVX2 kernels (which also need FMA and F16C, present
// on every AVX2 CPU in practice but reported separately). Tests turn it off
// to run the same vectors on the pure-Go kernels.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

func simdFeatures() []string {
	if useAVX2 {
		return []string{"AVX2", "FMA", "F16C"}
	}
	return nil
}

func simdKernel(wt backend.DType, ntok int) *kernel {
	if !useAVX2 {
		return nil
	}
	// One kernel per format for every batch size, so that a token's
	// result never depends on what else is in the batch, and each in
	// llama.cpp's float order for that format: Q8_0 as ggml_vec_dot and
	// tinyBLAS sum (8 lanes per row and token), Q4_0 as its repacked 8x8
	// gemv/gemm (rows in lanes, one FMA per block).
	switch wt {
	case backend.Q8_0:
		return &q8_0GEMV
	case backend.Q4_0:
		return &q4_0GEMM
	case backend.Q4_K:
		return &q4KAVX2
	case backend.Q5_K:
		return &q5KAVX2
	case backend.Q6_K:
		return &q6KAVX2
	case backend.F16:
		return &f16AVX2
	case backend.F32:
		return &f32AVX2
	}
	return nil
}
