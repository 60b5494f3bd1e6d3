//go:build amd64 && !purego

package kernels

import (
	"golang.org/x/sys/cpu"

	"qinfer/host/backend"
)

// Feature switches, detected once. Tests turn them off to run the same
// vectors on the next path down (AVX512-VNNI, then AVX-VNNI, then AVX2,
// then pure Go): the VPDPBUSD kernels run when their switch and useAVX2
// are on, AVX512-VNNI's before AVX-VNNI's.
var (
	// useAVX2 switches the AVX2 kernels (which also need FMA and F16C,
	// present on every AVX2 CPU in practice but reported separately).
	useAVX2 = hasAVX2
	// useAVXVNNI switches the AVX-VNNI kernels (the VEX-encoded VPDPBUSD
	// on YMM registers, which Intel's client CPUs since Alder Lake and its
	// E-core Xeons have without AVX-512); they also run AVX2 code.
	useAVXVNNI = hasAVXVNNI
	// useVNNI switches the AVX512-VNNI kernels (VPDPBUSD on ZMM registers,
	// with AVX512BW byte ops and BMI2); they also run AVX2 code.
	useVNNI = hasVNNI
)

var (
	hasAVX2    = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C
	hasAVXVNNI = hasAVX2 && cpu.X86.HasAVXVNNI
	hasVNNI    = hasAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL &&
		cpu.X86.HasAVX512VNNI && cpu.X86.HasBMI2
)

// avx512VNNI and avxVNNI say which VPDPBUSD kernels run, at most one.
func avx512VNNI() bool { return useAVX2 && useVNNI }
func avxVNNI() bool    { return useAVX2 && useAVXVNNI && !useVNNI }

func simdFeatures() []string {
	var f []string
	if useAVX2 {
		f = append(f, "AVX2", "FMA", "F16C")
	}
	switch {
	case avx512VNNI():
		f = append(f, "AVX512-VNNI")
	case avxVNNI():
		f = append(f, "AVX-VNNI")
	}
	return f
}

func simdKernel(wt backend.DType, ntok int) *kernel {
	if !useAVX2 {
		return nil
	}
	switch wt {
	case backend.Q8_0:
		// Every path keeps llama.cpp's vec_dot order (order.go). With
		// AVX2 the panel kernel runs one token at a time, so several
		// tokens run the GGUF-layout tile (q8tile_simd_amd64.go) and one
		// the row kernel. With VPDPBUSD (AVX512-VNNI, AVX-VNNI) the panel
		// kernels need fewer instructions per product than either, which
		// pays for packing from a few tokens (gemvMaxTok).
		switch {
		case avx512VNNI() && ntok > gemvMaxTok, avxVNNI() && ntok > gemvMaxTokAVXVNNI:
			return &simdPanelFuncs(wt).kern
		case avx512VNNI():
			return &q8_0GEMVVNNI
		case avxVNNI():
			return &q8_0GEMVAVXVNNI
		case ntok >= 2:
			return &q8_0TileAVX2
		}
		return &q8_0GEMV
	case backend.Q4_0:
		// Llama.cpp's repacked Q4_0 order has rows in lanes: the panel
		// kernel for every batch, one token included.
		return &simdPanelFuncs(wt).kern
	case backend.Q4_K, backend.Q5_K, backend.Q6_K:
		if ntok >= kTileMinTok {
			return kTileKernel(wt)
		}
		switch wt {
		case backend.Q4_K:
			return &q4KAVX2
		case backend.Q5_K:
			return &q5KAVX2
		}
		return &q6KAVX2
	case backend.F16:
		return &f16AVX2
	case backend.F32:
		return &f32AVX2
	}
	return nil
}

// simdQuantRow returns the AVX2 quantizer of activation rows to at, or nil.
func simdQuantRow(at backend.DType) func(src []float32, out []byte) {
	if !useAVX2 {
		return nil
	}
	switch at {
	case backend.Q8_0:
		return quantRowQ8_0AVX2
	case backend.Q8_K:
		return quantRowQ8KAVX2
	}
	return nil
}

func quantRowQ8_0AVX2(src []float32, out []byte) {
	quantizeQ8_0AVX2(&src[0], len(src)/qk, &out[0])
}

func quantRowQ8KAVX2(src []float32, out []byte) {
	quantizeQ8KAVX2(&src[0], len(src)/qkK, &out[0])
}
