//go:build !purego

package kernels

import "qinfer/host/backend"

// Panel kernels (panel_arm64.s): one token against the 16 rows of a
// panel, nb blocks, all 16 results stored at dst. The SDOT versions need
// FEAT_DotProd.

//go:noescape
func gemmQ8_0x16SDOT(q *byte, s *byte, nb int, x *byte, dst *float32)

//go:noescape
func gemmQ8_0x16ASIMD(q *byte, s *byte, nb int, x *byte, dst *float32)

//go:noescape
func gemmQ4_0x16SDOT(q *byte, s *byte, nb int, x *byte, dst *float32)

//go:noescape
func gemmQ4_0x16ASIMD(q *byte, s *byte, nb int, x *byte, dst *float32)

// neonPanel wraps a one-token panel kernel. The kernels read activation
// rows as they are (no tile layout) and always write 16 results; a short
// last panel goes through a buffer on the stack so that nothing is
// written past the caller's rows. Packing is the pure-Go one: it runs
// once per matrix (Prepare), since on arm64 the GGUF-layout products do
// not pack.
func neonPanel(wt backend.DType, gemm func(q, s *byte, nb int, x *byte, dst *float32)) *panelFuncs {
	return newPanelFuncs(wt, &panelFuncs{
		tile: 8,
		pack: func(w []byte, wrb, nb int, q, s []byte) { packPanelGo(wt, w, wrb, nb, q, s) },
		gemm: func(q, s []byte, nb int, x []byte, xrb, ntok int, dst []float32, ldd, rows int) {
			for t := 0; t < ntok; t++ {
				xt := &x[t*xrb]
				if rows == panelRows {
					gemm(&q[0], &s[0], nb, xt, &dst[t*ldd])
					continue
				}
				var buf [panelRows]float32
				gemm(&q[0], &s[0], nb, xt, &buf[0])
				copy(dst[t*ldd:t*ldd+rows], buf[:rows])
			}
		},
	})
}

var (
	q8_0PanelSDOT  = neonPanel(backend.Q8_0, gemmQ8_0x16SDOT)
	q8_0PanelASIMD = neonPanel(backend.Q8_0, gemmQ8_0x16ASIMD)
	q4_0PanelSDOT  = neonPanel(backend.Q4_0, gemmQ4_0x16SDOT)
	q4_0PanelASIMD = neonPanel(backend.Q4_0, gemmQ4_0x16ASIMD)
)
