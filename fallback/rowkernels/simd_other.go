//go:build !amd64 || purego

package rowkernels

// Without assembly every format runs on the pure-Go kernels.

func features() []string { return nil }

func simdBlock() (int, bool) { return 0, false }

func dotTile(*int8, int, *int8, int, int, int, *[16]int32) {
	panic("rowkernels: no SIMD kernel on this platform")
}

func maxTile() int { return 4 }

func absMaxBits([]float32) (uint32, int) { return 0, 0 }

func quantPrefix([]float32, float32, []int8) int { return 0 }

func useTok16() bool { return false }

func tok16(*int8, int, []int8, int, *[16]int32, *[16]float32, []float32, []float32, int, int, int) {
	panic("rowkernels: no SIMD kernel on this platform")
}

func outlierDot(w []float32, k int, x []float32, nt int, dst []float32, ldd int) {
	outlierDotGo(w, k, x, nt, dst, ldd)
}
