//go:build !purego

package kernels

import (
	"golang.org/x/sys/cpu"

	"qinfer/host/backend"
)

// Feature switches. Tests turn them off to run the same vectors on the
// next path down (SDOT, then Advanced SIMD alone, then pure Go).
var (
	// useASIMD switches the Advanced SIMD (NEON) kernels. Every ARMv8-A
	// core has it; the switch exists for the tests.
	useASIMD = hasASIMD
	// useSDOT switches the kernels that need the dot-product instructions
	// (FEAT_DotProd, "asimddp": Cortex-A55/A75 and later, Neoverse, Apple
	// M1 and later); without them the ASIMD kernels widen products to 16
	// bits instead.
	useSDOT = hasSDOT
)

var (
	hasASIMD = cpu.ARM64.HasASIMD
	hasSDOT  = hasASIMD && cpu.ARM64.HasASIMDDP
)

func init() { preferGGUF = ggufPreferred }

// ggufPreferred reports whether Prepare should keep wt in GGUF layout:
// Q8_0 with NEON. Its panel kernel needs eight float lanes per row like
// the GGUF one, so it takes as many instructions with SDOT (14.75 per row
// and block against 14.5) and more without (27.75 against 20.5), and it
// reads each panel line four times (once per group of four rows), which
// for long rows falls out of L1. Q4_0's panel kernel, with the rows in
// lanes, needs about half the GGUF kernel's instructions and is kept.
func ggufPreferred(wt backend.DType) bool {
	return useASIMD && wt == backend.Q8_0
}

func simdFeatures() []string {
	var f []string
	if useASIMD {
		f = append(f, "ASIMD")
	}
	if useASIMD && useSDOT {
		f = append(f, "ASIMDDP")
	}
	return f
}

// simdKernel returns the NEON kernel of wt on the GGUF layout: the
// one-token kernels for every batch, so the batch size cannot change a
// result. Their float order is llama.cpp's for Q8_0 (vec_dot) and Q4_0
// (rows in lanes), as the pure-Go kernels' is, and that of the AVX2
// kernels for the K-quants. F16 and F32 run the pure-Go kernels.
func simdKernel(wt backend.DType, _ int) *kernel {
	if !useASIMD {
		return nil
	}
	var k *[2]kernel
	switch wt {
	case backend.Q8_0:
		k = &q8_0GEMV
	case backend.Q4_0:
		k = &q4_0GEMV
	case backend.Q4_K:
		k = &q4KGEMV
	case backend.Q5_K:
		k = &q5KGEMV
	case backend.Q6_K:
		k = &q6KGEMV
	default:
		return nil
	}
	if useSDOT {
		return &k[1]
	}
	return &k[0]
}

// simdPanelFuncs returns the NEON panel kernels of wt the feature
// switches allow, or nil.
func simdPanelFuncs(wt backend.DType) *panelFuncs {
	if !useASIMD {
		return nil
	}
	switch {
	case wt == backend.Q8_0 && useSDOT:
		return q8_0PanelSDOT
	case wt == backend.Q8_0:
		return q8_0PanelASIMD
	case wt == backend.Q4_0 && useSDOT:
		return q4_0PanelSDOT
	case wt == backend.Q4_0:
		return q4_0PanelASIMD
	}
	return nil
}

// simdQuantRow returns the NEON quantizer of activation rows to at, or
// nil (Q8_K rows are quantized in Go).
func simdQuantRow(at backend.DType) func(src []float32, out []byte) {
	if useASIMD && at == backend.Q8_0 {
		return quantRowQ8_0NEON
	}
	return nil
}
