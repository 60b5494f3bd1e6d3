//go:build !purego

package kernels

// Matrix-vector kernels for Q8_0 and Q4_0 weights in GGUF layout
// (gemv_arm64.s), in the pure-Go kernels' float order. Each sets dst[r] =
// dot(row r, x) for rows rows of nb blocks, wstride bytes apart, and one
// Q8_0 activation row x. The SDOT versions need FEAT_DotProd; the ASIMD
// ones compute the same integer lanes with widening multiplies.

//go:noescape
func gemvQ8_0SDOT(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)

//go:noescape
func gemvQ8_0ASIMD(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)

//go:noescape
func gemvQ4_0SDOT(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)

//go:noescape
func gemvQ4_0ASIMD(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)

type gemvFunc func(w *byte, wstride, rows int, x *byte, nb int, dst *float32)

// rowsGEMV runs a one-token kernel (nb = cols/blockSize) token by token
// over a panel of rows: 16 rows of a 1024-element Q8_0 matrix are 17 KB,
// which stay in L1 while the tokens of a batch pass, so the weights are
// read from memory once. Every batch size runs the same kernel, so a
// token's result does not depend on its batch.
func rowsGEMV(f gemvFunc, blockSize int) kernel {
	return kernel{panel: 16, grain: 4, rows: func(j *matmulJob, _ int, r0, r1 int) {
		nb := j.cols / blockSize
		for t := 0; t < j.ntok; t++ {
			f(&j.w[r0*j.wrb], j.wrb, r1-r0, &j.xq[t*j.xrb], nb, &j.dst[t*j.ldd+r0])
		}
	}}
}

// The kernels of each format: [0] Advanced SIMD alone, [1] with SDOT.
var (
	q8_0GEMV = [2]kernel{rowsGEMV(gemvQ8_0ASIMD, qk), rowsGEMV(gemvQ8_0SDOT, qk)}
	q4_0GEMV = [2]kernel{rowsGEMV(gemvQ4_0ASIMD, qk), rowsGEMV(gemvQ4_0SDOT, qk)}
)
