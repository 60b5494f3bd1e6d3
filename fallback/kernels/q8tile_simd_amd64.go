//go:build amd64 && !purego

package kernels

import "qinfer/host/backend"

// The AVX2 Q8_0 tile on the GGUF layout (q8tile_amd64.s): several rows by
// several tokens, one 8-lane accumulator per row and token, in llama.cpp's
// vec_dot order (order.go). With AVX2's 16 registers that order leaves
// room for one token in the panel kernel (eight lane accumulators per row
// group and token) but for 12 row-token pairs here, where the eight lanes
// of one pair share a register. Each weight block is then loaded once per
// three tokens and each activation block once per four rows, and the work
// shared by a row's or a token's products (|w|, the scales) is done once
// per tile: per row, token and block about 5.7 instructions on the vector
// ALUs, against 7 in the panel kernel and 8 in the one-row kernel.

const (
	q8TileRows = 4 // rows of a full tile
	q8TileTok  = 3 // tokens of a full tile
	// q8TilePanel is the rows a thread takes at a time: their weights
	// (up to 48 KB at 2816 columns) stay in L1/L2 while every group of
	// tokens passes over them, and the activations stream from L2.
	q8TilePanel = 16
)

// q8_0TileAVX2 multiplies Q8_0 weights in GGUF layout by two or more
// tokens with AVX2.
var q8_0TileAVX2 = kernel{panel: q8TilePanel, grain: 2, prepare: prepareQ8Tile, rows: q8TileRowsAVX2}

// prepareQ8Tile lays out the activations for the tile once per call, for
// all threads: quants 32-byte aligned in j.acts, scales as float32 in j.aux.
func prepareQ8Tile(j *matmulJob) {
	n := j.ntok * (j.cols / qk)
	j.acts = j.pool.actsFor(n * qk)
	j.aux = j.pool.auxFor(n)
	q8TileActsAVX2(&j.xq[0], n, &j.acts[0], &j.aux[0])
}

func q8TileRowsAVX2(j *matmulJob, _ int, r0, r1 int) {
	nb := j.cols / qk
	for p := r0; p < r1; p += q8TilePanel {
		pe := min(p+q8TilePanel, r1)
		for t := 0; t < j.ntok; t += q8TileTok {
			nt := min(q8TileTok, j.ntok-t)
			for r := p; r < pe; r += q8TileRows {
				q8TileAVX2(&j.w[r*j.wrb], j.wrb, min(q8TileRows, pe-r), &j.acts[t*nb*qk], nt,
					&j.aux[t*nb], nb, &j.dst[t*j.ldd+r], j.ldd)
			}
		}
	}
}

func init() { preferGGUF = q8TilePreferred }

// q8TilePreferred reports whether Q8_0 products of several tokens on the
// GGUF layout run the AVX2 tile with the current feature switches. Prepare
// then keeps Q8_0 weights in GGUF layout: the panel layout's AVX2 kernel
// computes one token at a time with more instructions per product, the
// one-row GGUF kernel reads one token's weights as fast as the panel one
// (docs/benchmarks.md), and no repacked copy takes memory.
func q8TilePreferred(wt backend.DType) bool {
	return wt == backend.Q8_0 && simdKernel(wt, 2) == &q8_0TileAVX2
}
