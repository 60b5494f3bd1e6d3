//go:build !purego

package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

// kquantAVX2Order is the dot product of one K-quant row with a Q8_K row in
// the float order of the AVX2 kernels (_asm/kquant, llama.cpp's
// ggml_vec_dot_q*_K_q8_K for AVX2), written out plainly: per super-block
// eight int32 lanes, lane l gathering quants 4l..4l+3 of every 32-quant
// chunk times the chunk's sub-block scale; acc[l] = fma(d*dy, lane,
// acc[l]); for Q4_K/Q5_K four lanes of mins times 32-quant activation
// sums, pairs (2k, 2k+1) in lane k, accumulated by dmin*dy; for Q6_K the
// offset 32*(sc(2l)*bsum(2l) + sc(2l+1)*bsum(2l+1)) subtracted from lane l.
func kquantAVX2Order(wt backend.DType, w, x []byte, nb int) float32 {
	var acc [8]float32
	var accm [4]float32
	bs := map[backend.DType]int{backend.Q4_K: q4KBytes, backend.Q5_K: q5KBytes, backend.Q6_K: q6KBytes}[wt]
	for b := 0; b < nb; b++ {
		wb, xb := w[b*bs:(b+1)*bs], x[b*q8KBytes:(b+1)*q8KBytes]
		q8, dy := xb[4:4+qkK], f32At(xb)
		bsum := func(i int) int32 { return i16At(xb[4+qkK+2*i:]) }
		// quant(e) and scale(e) of element e of the super-block.
		var quant func(e int) int32
		var scale func(e int) int32
		var lanes [8]int32
		switch wt {
		case backend.Q4_K, backend.Q5_K:
			qs := wb[16:]
			if wt == backend.Q5_K {
				qs = wb[48:]
			}
			quant = func(e int) int32 {
				c, i := e/32, e%32 // sub-block c: nibbles (c%2) of bytes 32(c/2)..
				v := int32(qs[32*(c/2)+i]>>(4*(c%2))) & 15
				if wt == backend.Q5_K {
					v |= int32(wb[16+i]>>c&1) << 4
				}
				return v
			}
			scale = func(e int) int32 { sc, _ := scaleMinK4(e/32, wb[4:16]); return sc }
			var mins [4]int32
			for k := 0; k < 4; k++ {
				for _, c := range []int{2 * k, 2*k + 1} {
					_, m := scaleMinK4(c, wb[4:16])
					mins[k] += m * (bsum(2*c) + bsum(2*c+1))
				}
			}
			dm := float32(fp16At(wb[2:]) * dy)
			for k := range accm {
				accm[k] = fma32(dm, float32(mins[k]), accm[k])
			}
		case backend.Q6_K:
			quant = func(e int) int32 {
				n, k, l := e/128, e%128/32, e%32
				ql, qh := wb[64*n+32*(k%2)+l], wb[128+32*n+l]
				return int32(ql>>(4*(k/2))&15) | int32(qh>>(2*k)&3)<<4
			}
			scale = func(e int) int32 { return int32(int8(wb[192+e/16])) }
			for l := range lanes {
				lanes[l] = -32 * (int32(int8(wb[192+2*l]))*bsum(2*l) + int32(int8(wb[192+2*l+1]))*bsum(2*l+1))
			}
		}
		for e := 0; e < qkK; e++ {
			lanes[e%32/4] += scale(e) * quant(e) * int32(int8(q8[e]))
		}
		dw := fp16At(wb)
		if wt == backend.Q6_K {
			dw = fp16At(wb[208:])
		}
		d := float32(dw * dy)
		for l := range acc {
			acc[l] = fma32(d, float32(lanes[l]), acc[l])
		}
	}
	return hsum8(&acc) - ((accm[0] + accm[2]) + (accm[1] + accm[3]))
}

// TestNEONKQuantKernels checks the K-quant kernels bit for bit against the
// AVX2 float order on realistic rows (host/quant's quantizer, random
// scales per super-block) and Q8_K activations from QuantizeActs.
func TestNEONKQuantKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 62))
	p := NewPool(1)
	defer p.Close()
	neonCases(t, func(t *testing.T) {
		for _, wt := range []backend.DType{backend.Q4_K, backend.Q5_K, backend.Q6_K} {
			for _, nb := range []int{1, 3} {
				rows, cols := 5, nb*qkK
				wrb, err := backend.RowBytes(wt, cols)
				require.NoError(t, err)
				wf := randFloats(rng, rows*cols, 1)
				for i := range wf { // super-blocks of very different magnitudes
					wf[i] *= float32(math.Ldexp(1, i/qkK%7-3))
				}
				w := make([]byte, rows*wrb)
				require.NoError(t, quant.Quantize(wt, wf, w))
				xrb, err := ActRowBytes(wt, cols)
				require.NoError(t, err)
				x := make([]byte, xrb)
				require.NoError(t, QuantizeActs(p, wt, randFloats(rng, cols, 2), cols, 1, cols, x))
				dst := make([]float32, rows+1)
				dst[rows] = -7
				simdKernel(wt, 1).rows(&matmulJob{wt: wt, w: w, wrb: wrb, rows: rows, cols: cols, xq: x, xrb: xrb, ntok: 1, dst: dst, ldd: rows}, 0, 0, rows)
				for r := 0; r < rows; r++ {
					want := kquantAVX2Order(wt, w[r*wrb:], x, nb)
					require.Equal(t, math.Float32bits(want), math.Float32bits(dst[r]), "%v %d blocks row %d: %g, the AVX2 order gives %g", wt, nb, r, dst[r], want)
				}
				require.Equal(t, float32(-7), dst[rows], "%v: store past the rows", wt)
			}
		}
	})
}
