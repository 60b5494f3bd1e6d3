//go:build amd64 && !purego

package kernels

// Drivers of the matrix-vector kernels for Q8_0 weights in GGUF layout
// (Q8_0 activations), run one token at a time over a few rows kept in
// cache: AVX512-VNNI (two blocks per register, gemv_amd64.s), AVX-VNNI or
// AVX2 (one block), all in llama.cpp's vec_dot order, as the panel
// kernels are, so any of them gives the same floats (order.go).

// gemvMaxTok is the largest batch that runs the AVX512-VNNI GGUF-layout
// kernel: from two tokens on, packing each panel once per call costs less
// than running the per-row kernel again for every token. The AVX-VNNI
// panel kernel takes one token at a time, which shares nothing between
// tokens, so packing pays only from about four (256 rows, one thread,
// cache-resident: at three tokens the row kernel was as fast at 1024
// columns and 15% faster at 2816; at four 10% slower and 6% faster).
const (
	gemvMaxTok        = 1
	gemvMaxTokAVXVNNI = 3
)

// gemvPairBytes is the size of an activation row laid out for the VNNI
// kernels by gemvActsAVX2: 192 bytes per pair of blocks.
func gemvPairBytes(nb int) int { return (nb + 1) / 2 * 192 }

var (
	q8_0GEMV        = legacyGEMV(gemvQ8_0AVX2)
	q8_0GEMVVNNI    = vnniGEMV(gemvQ8_0VNNI, true)
	q8_0GEMVAVXVNNI = vnniGEMV(gemvQ8_0AVXVNNI, false)
)

// prepareQ8_0Acts converts every activation block's scale to float32 once
// per call, for all threads.
func prepareQ8_0Acts(j *matmulJob) {
	n := j.ntok * (j.cols / qk)
	j.aux = j.pool.auxFor(2 * n)
	blockInfoQ8_0AVX2(&j.xq[0], n, &j.aux[0])
}

func legacyGEMV(f func(w *byte, wstride, rows int, x *byte, aux *int32, nb int, dst *float32)) kernel {
	return kernel{panel: 16, grain: 4, prepare: prepareQ8_0Acts, rows: func(j *matmulJob, _ int, r0, r1 int) {
		nb := j.cols / qk
		for t := 0; t < j.ntok; t++ {
			f(&j.w[r0*j.wrb], j.wrb, r1-r0, &j.xq[t*j.xrb], &j.aux[2*t*nb], nb, &j.dst[t*j.ldd+r0])
		}
	}}
}

// vnniGEMV builds the kernel of a VNNI matrix-vector product; its weights
// are q+128, corrected by -128 times the activation sums. zmm is set for
// the AVX512-VNNI kernel (see clearUpperZMM, which a CPU without AVX-512
// cannot run).
func vnniGEMV(f func(w *byte, wstride, rows int, xp *byte, nb int, dst *float32), zmm bool) kernel {
	const shift = 7
	return kernel{panel: 16, grain: 4,
		prepare: func(j *matmulJob) {
			nb := j.cols / qk
			pb := gemvPairBytes(nb)
			j.acts = j.pool.actsFor(j.ntok * pb)
			for t := 0; t < j.ntok; t++ {
				gemvActsAVX2(&j.xq[t*j.xrb], nb, shift, &j.acts[t*pb])
			}
		},
		rows: func(j *matmulJob, _ int, r0, r1 int) {
			nb := j.cols / qk
			pb := gemvPairBytes(nb)
			for t := 0; t < j.ntok; t++ {
				f(&j.w[r0*j.wrb], j.wrb, r1-r0, &j.acts[t*pb], nb, &j.dst[t*j.ldd+r0])
			}
			if zmm {
				clearUpperZMM()
			}
		}}
}
