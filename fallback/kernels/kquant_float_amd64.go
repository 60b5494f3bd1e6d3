//go:build amd64 && !purego

package kernels

// Drivers of the one-token AVX2 kernels (K-quants, F16, F32). A batch runs
// them token by token over a panel of rows small enough to stay in cache,
// so the weights are read from memory once per call; K-quant batches of
// kTileMinTok tokens or more run the tile kernels instead (ktile_simd_amd64.go).

type gemvFunc func(w *byte, wstride, rows int, x *byte, n int, dst *float32)

// rowsGEMV builds a kernel from a one-token kernel whose n argument is
// cols/blockSize.
func rowsGEMV(f gemvFunc, blockSize int) kernel {
	return kernel{panel: 16, grain: 2, rows: func(j *matmulJob, _ int, r0, r1 int) {
		n := j.cols / blockSize
		for t := 0; t < j.ntok; t++ {
			f(&j.w[r0*j.wrb], j.wrb, r1-r0, &j.xq[t*j.xrb], n, &j.dst[t*j.ldd+r0])
		}
	}}
}

var (
	q4KAVX2 = rowsGEMV(gemvQ4KAVX2, qkK)
	q5KAVX2 = rowsGEMV(gemvQ5KAVX2, qkK)
	q6KAVX2 = rowsGEMV(gemvQ6KAVX2, qkK)
	f16AVX2 = rowsGEMV(gemvF16AVX2, 1)
	f32AVX2 = rowsGEMV(gemvF32AVX2, 1)
)
