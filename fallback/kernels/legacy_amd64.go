//go:build amd64 && !purego

package kernels

import "unsafe"

// Drivers of the AVX2 kernels for Q8_0 and Q4_0 weights (Q8_0
// activations). Q8_0 runs the matrix-vector kernel on the GGUF layout, one
// token at a time over a few rows kept in cache; Q4_0 packs eight rows into
// an interleaved panel in per-thread scratch (once per panel, amortized
// over all tokens) and runs the 8-row x 4-token tile. simdKernel says why
// each format has exactly one.

const (
	panelRows  = 8
	panelBlock = 32 + 8*32 // 8 float32 scales + 8 rows x 32 quants
)

// legacyFuncs are one format's assembly kernels.
type legacyFuncs struct {
	wBlock int // bytes per weight block
	gemv   func(w *byte, wstride, rows int, x *byte, aux *int32, nb int, dst *float32)
	pack   func(w *byte, wstride, nb int, dst *byte)
	gemm   func(panel *byte, nb int, x *byte, xstride int, aux *int32, ntok int, dst *float32, ldd int)
}

var (
	q8_0Funcs = legacyFuncs{wBlock: q8_0Bytes, gemv: gemvQ8_0AVX2, pack: packQ8_0x8AVX2, gemm: gemmQ8_0x8AVX2}
	q4_0Funcs = legacyFuncs{wBlock: q4_0Bytes, gemv: gemvQ4_0AVX2, pack: packQ4_0x8AVX2, gemm: gemmQ4_0x8AVX2}

	q8_0GEMV = legacyGEMV(&q8_0Funcs)
	q8_0GEMM = legacyGEMM(&q8_0Funcs)
	q4_0GEMV = legacyGEMV(&q4_0Funcs)
	q4_0GEMM = legacyGEMM(&q4_0Funcs)
)

// prepareQ8_0Acts computes every activation block's float scale and
// quant sum once per call, for all threads.
func prepareQ8_0Acts(j *matmulJob) {
	n := j.ntok * (j.cols / qk)
	j.aux = j.pool.auxFor(2 * n)
	blockInfoQ8_0AVX2(&j.xq[0], n, &j.aux[0])
}

func legacyGEMV(f *legacyFuncs) kernel {
	return kernel{panel: 16, grain: 4, prepare: prepareQ8_0Acts, rows: func(j *matmulJob, _ int, r0, r1 int) {
		nb := j.cols / qk
		for t := 0; t < j.ntok; t++ {
			f.gemv(&j.w[r0*j.wrb], j.wrb, r1-r0, &j.xq[t*j.xrb], &j.aux[2*t*nb], nb, &j.dst[t*j.ldd+r0])
		}
	}}
}

func legacyGEMM(f *legacyFuncs) kernel {
	return kernel{panel: panelRows, grain: 2, prepare: prepareQ8_0Acts, rows: func(j *matmulJob, worker, r0, r1 int) {
		nb := j.cols / qk
		panelBytes := nb * panelBlock
		padBytes := panelRows * j.wrb
		sc := j.pool.scratchFor(worker, panelBytes+padBytes+4*panelRows*j.ntok)
		panel := &sc[0]
		for r := r0; r < r1; r += panelRows {
			if r+panelRows <= r1 {
				f.pack(&j.w[r*j.wrb], j.wrb, nb, panel)
				f.gemm(panel, nb, &j.xq[0], j.xrb, &j.aux[0], j.ntok, &j.dst[r], j.ldd)
				continue
			}
			// The last panel of the matrix: pad it with zero rows (scale
			// 0) and compute into scratch, since the tile writes 8 rows.
			nr := r1 - r
			pad := sc[panelBytes : panelBytes+padBytes]
			copy(pad, j.w[r*j.wrb:(r+nr)*j.wrb])
			clear(pad[nr*j.wrb:])
			f.pack(&pad[0], j.wrb, nb, panel)
			out := unsafe.Slice((*float32)(unsafe.Pointer(&sc[panelBytes+padBytes])), panelRows*j.ntok)
			f.gemm(panel, nb, &j.xq[0], j.xrb, &j.aux[0], j.ntok, &out[0], panelRows)
			for t := 0; t < j.ntok; t++ {
				copy(j.dst[t*j.ldd+r:t*j.ldd+r+nr], out[t*panelRows:])
			}
		}
	}}
}
