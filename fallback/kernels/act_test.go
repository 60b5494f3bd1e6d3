package kernels

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

// actInputs returns ntok rows of cols floats with stride ldx: random
// values, plus rows that hit the rounding corner cases (halfway values
// after scaling, an all-zero block, a negative extreme).
func actInputs(rng *rand.Rand, ntok, cols, ldx int) []float32 {
	x := randFloats(rng, ntok*ldx, 1)
	for i := 0; i < cols && ntok > 1; i++ {
		// Row 1: amax 127 makes the Q8_0 multiplier exactly 1, so k+0.5
		// values are ties (even vs away-from-zero rounding differ).
		x[ldx+i] = float32(i%100) + 0.5
		if i%7 == 0 {
			x[ldx+i] = -x[ldx+i]
		}
	}
	if ntok > 1 {
		x[ldx] = 127
	}
	if ntok > 2 {
		clear(x[2*ldx : 2*ldx+min(cols, 256)]) // zero blocks
		x[2*ldx+cols-1] = -3                   // a negative extreme
	}
	return x
}

func TestQuantizeActsMatchesQuant(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, threads := range []int{1, 2, 5} {
		p := NewPool(threads)
		for _, wt := range []backend.DType{backend.Q8_0, backend.Q4_0, backend.Q4_K, backend.Q6_K, backend.F16, backend.F32, backend.Q4_1, backend.BF16} {
			for _, cols := range []int{256, 768} {
				for _, ntok := range []int{1, 3, 10} {
					ldx := cols + 5
					x := actInputs(rng, ntok, cols, ldx)
					rb, err := ActRowBytes(wt, cols)
					require.NoError(t, err)
					got := make([]byte, ntok*rb)
					require.NoError(t, QuantizeActs(p, wt, x, ldx, ntok, cols, got))
					at, err := quant.ActivationType(wt)
					require.NoError(t, err)
					want := make([]byte, ntok*rb)
					for tk := 0; tk < ntok; tk++ {
						require.NoError(t, quant.QuantizeActivations(at, x[tk*ldx:tk*ldx+cols], want[tk*rb:(tk+1)*rb]))
					}
					require.Equal(t, want, got, "%v cols %d ntok %d threads %d", wt, cols, ntok, threads)
				}
			}
		}
		p.Close()
	}
}

func TestQuantizeActsErrors(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	x := make([]float32, 2*64)
	dst := make([]byte, 2*68)
	require.NoError(t, QuantizeActs(p, backend.Q8_0, x, 64, 2, 64, dst))
	assert.Error(t, QuantizeActs(p, backend.Q8_0, x, 64, 2, 60, dst), "partial block")
	assert.Error(t, QuantizeActs(p, backend.Q8_0, x, 32, 2, 64, dst), "stride below cols")
	assert.Error(t, QuantizeActs(p, backend.Q8_0, x[:100], 64, 2, 64, dst), "short input")
	assert.Error(t, QuantizeActs(p, backend.Q8_0, x, 64, 2, 64, dst[:100]), "short output")
	assert.Error(t, QuantizeActs(p, backend.I8, x, 64, 2, 64, dst), "no activation type")
	assert.Error(t, QuantizeActs(nil, backend.Q8_0, x, 64, 2, 64, dst), "nil pool")
	_, err := ActRowBytes(backend.Q4_K, 100)
	assert.Error(t, err, "K-quant row of 100")
}
