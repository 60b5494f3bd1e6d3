package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

// A token's output must not depend on the other tokens of the call: the
// engine batches unrelated sequences together, and a sequence has to get
// the same tokens whatever it shares a step with (and the same as
// llama.cpp computes for it alone). Checked bit for bit against one call
// per token, for every batch size from the decode to the tile paths.
func TestMatMulBatchInvariant(t *testing.T) {
	featureCases(t, func(t *testing.T) {
		p := NewPool(3)
		defer p.Close()
		for _, wt := range []backend.DType{backend.Q8_0, backend.Q4_0, backend.Q4_K, backend.Q5_K, backend.Q6_K, backend.F16, backend.F32} {
			rng := rand.New(rand.NewPCG(uint64(wt), 7))
			rows, cols := 37, 512
			wf := randFloats(rng, rows*cols, 1)
			rb, err := backend.RowBytes(wt, cols)
			require.NoError(t, err)
			w := make([]byte, rows*rb)
			require.NoError(t, quant.Quantize(wt, wf, w))
			ab, err := ActRowBytes(wt, cols)
			require.NoError(t, err)
			for _, ntok := range []int{2, 3, 4, 5, 8, 9, 16, 33} {
				x := randFloats(rng, ntok*cols, 2)
				xq := make([]byte, ntok*ab)
				require.NoError(t, QuantizeActs(p, wt, x, cols, ntok, cols, xq))
				all := make([]float32, ntok*rows)
				require.NoError(t, MatMul(p, wt, w, rows, cols, xq, ntok, all, rows))
				one := make([]float32, rows)
				for tok := 0; tok < ntok; tok++ {
					require.NoError(t, MatMul(p, wt, w, rows, cols, xq[tok*ab:(tok+1)*ab], 1, one, rows))
					for r := range one {
						if math.Float32bits(one[r]) != math.Float32bits(all[tok*rows+r]) {
							t.Fatalf("%v: %d tokens: token %d row %d is %g in the batch, %g alone", wt, ntok, tok, r, all[tok*rows+r], one[r])
						}
					}
				}
			}
		}
	})
}
