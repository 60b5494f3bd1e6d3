//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"

	"qinfer/host/backend"
)

// Multi-token products of K-quant weights (Q4_K, Q5_K, Q6_K). Their
// super-blocks pack quants in 4 to 6 bits with per-sub-block scales, so
// decoding one costs about as much as multiplying it with one token. The
// tile kernels decode ("unpack") 16 rows at a time into per-thread scratch
// in one layout common to the three formats, and multiply each unpacked
// row with a tile of tokens while it stays in registers:
//
//   - per row and super-block (kUnpSize bytes): the 256 quants as
//     unsigned bytes in element order; 128 int16 scales, word i the
//     integer scale of the sub-block holding elements 2i and 2i+1; the 8
//     mins (Q4_K/Q5_K) or 16 scales (Q6_K, whose quants carry an offset of
//     32) as int16; d and dmin as float32.
//   - per token and super-block of an activation tile (kActSize bytes):
//     the 256 Q8_K quants, the 16 block sums of 16, the 8 sums of 32, and
//     the Q8_K scale.
//
// Each (row, token) is computed in exactly the float order of the
// one-token kernels (kquant_amd64.s): the same eight int32 lanes per
// super-block, scaled by d*dy into eight float lanes, the mins' four lanes
// by dmin*dy, the same final additions. So a token's result does not
// depend on the batch it is computed in.

const (
	kUnpSize  = 640
	kActSize  = 320
	kActBsum  = 256 // 16 int16 sums of 16
	kActBsum2 = 288 // 8 int16 sums of 32
	kActScale = 304
	// kTileMinTok is the batch from which unpacking once per call and
	// reusing the rows beats the one-token kernels, which decode each row
	// again for every token.
	kTileMinTok = 2
)

type kTileFuncs struct {
	tile   int
	zmm    bool // gemm uses AVX-512 registers (see clearUpperZMM)
	unpack func(w *byte, nb int, u *byte)
	gemm   func(u *byte, rows, nsb int, xt *byte, ntok int, dst *float32, ldd int)
	kern   kernel
}

func newKTile(tile int, zmm bool, unpack func(w *byte, nb int, u *byte), gemm func(u *byte, rows, nsb int, xt *byte, ntok int, dst *float32, ldd int)) *kTileFuncs {
	f := &kTileFuncs{tile: tile, zmm: zmm, unpack: unpack, gemm: gemm}
	f.kern = kernel{panel: panelRows, grain: 1, prepare: f.prepare, rows: f.rows}
	return f
}

var (
	q4KTileVNNI = newKTile(8, true, unpackQ4KAVX2, kTileK4VNNI)
	q5KTileVNNI = newKTile(8, true, unpackQ5KAVX2, kTileK4VNNI)
	q6KTileVNNI = newKTile(8, true, unpackQ6KAVX2, kTileQ6KVNNI)
	q4KTileAVX2 = newKTile(4, false, unpackQ4KAVX2, kTileK4AVX2)
	q5KTileAVX2 = newKTile(4, false, unpackQ5KAVX2, kTileK4AVX2)
	q6KTileAVX2 = newKTile(4, false, unpackQ6KAVX2, kTileQ6KAVX2)
)

// kTileKernel returns the tile kernel of a K-quant type, or nil.
func kTileKernel(wt backend.DType) *kernel {
	vnni := avx512VNNI()
	var f *kTileFuncs
	switch wt {
	case backend.Q4_K:
		f = pick(vnni, q4KTileVNNI, q4KTileAVX2)
	case backend.Q5_K:
		f = pick(vnni, q5KTileVNNI, q5KTileAVX2)
	case backend.Q6_K:
		f = pick(vnni, q6KTileVNNI, q6KTileAVX2)
	default:
		return nil
	}
	return &f.kern
}

func pick[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}

// prepare lays out the activations as tiles of f.tile tokens (the last
// one shorter), tile by tile, each super-block-major.
func (f *kTileFuncs) prepare(j *matmulJob) {
	nsb := j.cols / qkK
	j.acts = j.pool.actsFor(j.ntok * nsb * kActSize)
	for t0 := 0; t0 < j.ntok; t0 += f.tile {
		n := min(f.tile, j.ntok-t0)
		kActTile(j.xq[t0*j.xrb:], j.xrb, n, nsb, j.acts[t0*nsb*kActSize:])
	}
}

// kActTile writes ntok Q8_K rows (xrb bytes apart) as one tile.
func kActTile(x []byte, xrb, ntok, nsb int, dst []byte) {
	for b := 0; b < nsb; b++ {
		for t := 0; t < ntok; t++ {
			src := x[t*xrb+b*q8KBytes : t*xrb+(b+1)*q8KBytes]
			o := dst[(b*ntok+t)*kActSize : (b*ntok+t+1)*kActSize]
			copy(o[:qkK], src[4:4+qkK])
			sums := src[4+qkK : 4+qkK+32]
			copy(o[kActBsum:kActBsum+32], sums)
			for i := 0; i < 8; i++ {
				// |sum of 32| <= 32*128 fits int16, as the one-token
				// kernels' VPHADDW assumes.
				binary.LittleEndian.PutUint16(o[kActBsum2+2*i:], uint16(i16At(sums[4*i:])+i16At(sums[4*i+2:])))
			}
			copy(o[kActScale:kActScale+4], src[:4])
		}
	}
}

func (f *kTileFuncs) rows(j *matmulJob, worker, r0, r1 int) {
	nsb := j.cols / qkK
	rowBytes := nsb * kUnpSize
	u := align64(j.pool.scratchFor(worker, panelRows*rowBytes+panelLine))
	for r := r0; r < r1; r += panelRows {
		nr := min(panelRows, r1-r)
		for i := 0; i < nr; i++ {
			f.unpack(&j.w[(r+i)*j.wrb], nsb, &u[i*rowBytes])
		}
		for t0 := 0; t0 < j.ntok; t0 += f.tile {
			n := min(f.tile, j.ntok-t0)
			f.gemm(&u[0], nr, nsb, &j.acts[t0*nsb*kActSize], n, &j.dst[t0*j.ldd+r], j.ldd)
		}
	}
	if f.zmm {
		clearUpperZMM()
	}
}
