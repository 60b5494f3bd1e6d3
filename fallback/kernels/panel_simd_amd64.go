//go:build amd64 && !purego

package kernels

import (
	"unsafe"

	"qinfer/host/backend"
)

// Drivers of the panel kernels: AVX512-VNNI (16 rows per instruction, up
// to 12 Q4_0 or 3 Q8_0 tokens per tile), AVX-VNNI (8 rows, up to 6 Q4_0
// tokens or one Q8_0 token) and AVX2 (8 rows, up to 4 Q4_0 tokens or one
// Q8_0 token). All pack and lay out activations with the same AVX2 code.

func f32p(d []float32) *float32 { return unsafe.SliceData(d) }

func asmPanel(wt backend.DType, tile int, zmm bool,
	pack func(w *byte, wstride, nb int, q, s *byte),
	gemm func(q, s *byte, nb int, xt *byte, ntok int, dst *float32, ldd, rows int)) *panelFuncs {
	shift := panelShift(wt)
	return newPanelFuncs(wt, &panelFuncs{
		tile: tile,
		zmm:  zmm,
		pack: func(w []byte, wrb, nb int, q, s []byte) { pack(&w[0], wrb, nb, &q[0], &s[0]) },
		acts: func(x []byte, xrb, ntok, nb int, dst []byte) {
			tileActsAVX2(&x[0], xrb, ntok, nb, shift, &dst[0])
		},
		gemm: func(q, s []byte, nb int, x []byte, _ int, ntok int, dst []float32, ldd, rows int) {
			gemm(&q[0], &s[0], nb, &x[0], ntok, f32p(dst), ldd, rows)
		},
	})
}

var (
	q8_0PanelVNNI = asmPanel(backend.Q8_0, 3, true, packQ8_0x16AVX2, gemmQ8_0x16VNNI)
	q4_0PanelVNNI = asmPanel(backend.Q4_0, 12, true, packQ4_0x16AVX2, gemmQ4_0x16VNNI)
	q8_0PanelAVX2 = asmPanel(backend.Q8_0, 1, false, packQ8_0x16AVX2, gemmQ8_0x16AVX2)
	q4_0PanelAVX2 = asmPanel(backend.Q4_0, 4, false, packQ4_0x16AVX2, gemmQ4_0x16AVX2)

	q8_0PanelAVXVNNI = asmPanel(backend.Q8_0, 1, false, packQ8_0x16AVX2, gemmQ8_0x16AVXVNNI)
	q4_0PanelAVXVNNI = asmPanel(backend.Q4_0, 6, false, packQ4_0x16AVX2, gemmQ4_0x16AVXVNNI)
)

// simdPanelFuncs returns the fastest panel kernels of wt the CPU and the
// feature switches allow, or nil.
func simdPanelFuncs(wt backend.DType) *panelFuncs {
	vnni, avxvnni := avx512VNNI(), avxVNNI()
	switch {
	case vnni && wt == backend.Q8_0:
		return q8_0PanelVNNI
	case vnni && wt == backend.Q4_0:
		return q4_0PanelVNNI
	case avxvnni && wt == backend.Q8_0:
		return q8_0PanelAVXVNNI
	case avxvnni && wt == backend.Q4_0:
		return q4_0PanelAVXVNNI
	case useAVX2 && wt == backend.Q8_0:
		return q8_0PanelAVX2
	case useAVX2 && wt == backend.Q4_0:
		return q4_0PanelAVX2
	}
	return nil
}
