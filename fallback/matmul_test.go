package fallback

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

// TestMatMulEachType checks every weight type element by element against
// quant.VecDot on the same quantized activations (the pure-Go reference
// kernel), with strided input and output views, and, within the input's
// quantization error, against a float64 product of the data.
func TestMatMulEachType(t *testing.T) {
	types := []backend.DType{
		backend.F32, backend.F16, backend.BF16,
		backend.Q4_0, backend.Q4_1, backend.Q5_0, backend.Q5_1, backend.Q8_0,
		backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K,
	}
	const rows, ntok = 5, 3
	for _, wt := range types {
		t.Run(wt.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(wt), 7))
			tr, err := backend.TraitsOf(wt)
			require.NoError(t, err)
			cols := 37 // odd where the format allows
			if tr.BlockSize > 1 {
				cols = 2 * tr.BlockSize
			}
			c := newCPU(t, 2)

			wvals := randVals(rng, rows*cols, 1)
			rb, err := backend.RowBytes(wt, cols)
			require.NoError(t, err)
			wdata := make([]byte, rows*rb)
			for r := 0; r < rows; r++ {
				require.NoError(t, quant.Quantize(wt, wvals[r*cols:(r+1)*cols], wdata[r*rb:(r+1)*rb]))
			}
			w, err := c.Upload(&backend.Weight{Name: "w", Type: wt, Rows: rows, Cols: cols, Data: wdata})
			require.NoError(t, err)

			xvals := randVals(rng, ntok*cols, 2)
			x := newStrided(t, c, rng, ntok, cols, xvals)
			dst := newStrided(t, c, rng, ntok, rows, nil)
			require.NoError(t, c.MatMul(dst.view, w, x.view))
			got := readAll(t, c, dst.view)
			dst.checkGuard(t, c)
			x.checkGuard(t, c)

			wdeq, err := quant.DequantizeRows(wt, wdata, rows, cols)
			require.NoError(t, err)
			act, err := quant.ActivationType(wt)
			require.NoError(t, err)
			xrb, err := backend.RowBytes(act, cols)
			require.NoError(t, err)
			xq := make([]byte, xrb)
			for tok := 0; tok < ntok; tok++ {
				require.NoError(t, quant.QuantizeActivations(act, xvals[tok*cols:(tok+1)*cols], xq))
				for r := 0; r < rows; r++ {
					want, err := quant.VecDot(wt, cols, wdata[r*rb:(r+1)*rb], xq)
					require.NoError(t, err)
					g := got[tok*rows+r]
					require.InDeltaf(t, want, g, 1e-5*(1+math.Abs(float64(want))),
						"token %d row %d: kernel %v, reference %v", tok, r, g, want)

					// Against the dequantized weights and the unquantized
					// input: only the input's quantization error remains,
					// at most half a step (amax/127 <= 2/127) per element.
					var exact, bound float64
					for k := 0; k < cols; k++ {
						exact += float64(wdeq[r*cols+k]) * float64(xvals[tok*cols+k])
						bound += math.Abs(float64(wdeq[r*cols+k])) / 127
					}
					require.InDeltaf(t, exact, g, bound+1e-4, "token %d row %d: far from the product of the data", tok, r)
				}
			}
		})
	}
}

// TestMatMulScratchReuse runs a larger MatMul after a smaller one and a
// smaller one after that: the activation scratch grows, then is reused
// without stale bytes leaking into results.
func TestMatMulScratchReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	c := newCPU(t, 2)
	const rows, cols = 7, 64
	wvals := randVals(rng, rows*cols, 1)
	w := uploadF32(t, c, "w", rows, cols, wvals)
	for _, ntok := range []int{1, 9, 2} {
		xvals := randVals(rng, ntok*cols, 1)
		x := newAct(t, c, ntok, cols, xvals)
		d := newAct(t, c, ntok, rows, nil)
		require.NoError(t, c.MatMul(d, w, x))
		got := readAll(t, c, d)
		want := make([]float64, ntok*rows)
		for tok := 0; tok < ntok; tok++ {
			for r := 0; r < rows; r++ {
				for k := 0; k < cols; k++ {
					want[tok*rows+r] += float64(wvals[r*cols+k]) * float64(xvals[tok*cols+k])
				}
			}
		}
		requireClose(t, want, got, 1e-5, 1e-5, "f32 matmul")
	}
}
