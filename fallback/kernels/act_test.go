package kernels

import (
	"math"
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
	if ntok > 4 {
		// Infinities: the block scale becomes Inf and every quant of its
		// block is decided by the Inf*0 = NaN conversion rules.
		x[4*ldx+7] = float32(math.Inf(1))
		x[4*ldx+cols-40] = float32(math.Inf(-1))
	}
	for t := 3; t < ntok; t++ {
		// Ties for the largest magnitude, of either sign: Q8_K takes the
		// sign of the first, and the SIMD maximum must not pick another.
		r := x[t*ldx : t*ldx+cols]
		m := float32(20 + t)
		r[rng.IntN(cols)] = m
		r[rng.IntN(cols)] = -m
		r[rng.IntN(cols)] = m
	}
	return x
}

func TestQuantizeActsMatchesQuant(t *testing.T) {
	featureCases(t, func(t *testing.T) {
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
	})
}

// TestQuantizeActsNaN checks Q8_K rows with NaN, where quantize_row_q8_K
// defines the result (NaN never becomes the maximum; nearest_int(NaN) is
// 0); for Q8_0 the lane order of llama.cpp's SIMD maximum decides, so NaN
// input has no reference here.
func TestQuantizeActsNaN(t *testing.T) {
	featureCases(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(23, 24))
		p := NewPool(1)
		defer p.Close()
		const cols = 512
		x := randFloats(rng, 3*cols, 1)
		nan := float32(math.NaN())
		x[5], x[300] = nan, nan // two blocks with a NaN
		for i := 2 * cols; i < 2*cols+256; i++ {
			x[i] = nan // a block of NaN only
		}
		rb, err := ActRowBytes(backend.Q4_K, cols)
		require.NoError(t, err)
		got := make([]byte, 3*rb)
		require.NoError(t, QuantizeActs(p, backend.Q4_K, x, cols, 3, cols, got))
		want := make([]byte, 3*rb)
		for tk := 0; tk < 3; tk++ {
			require.NoError(t, quant.QuantizeActivations(backend.Q8_K, x[tk*cols:(tk+1)*cols], want[tk*rb:(tk+1)*rb]))
		}
		require.Equal(t, want, got)
	})
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

// BenchmarkQuantizeActs quantizes 128 activation rows of 1024 (a prompt's
// worth for one matrix of the 168M llama) for each activation format.
func BenchmarkQuantizeActs(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const ntok, cols = 128, 1024
	x := randFloats(rng, ntok*cols, 1)
	p := NewPool(0)
	defer p.Close()
	for _, wt := range []backend.DType{backend.Q8_0, backend.Q4_K} {
		b.Run(wt.String(), func(b *testing.B) {
			rb, err := ActRowBytes(wt, cols)
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, ntok*rb)
			b.SetBytes(4 * ntok * cols)
			for i := 0; i < b.N; i++ {
				if err := QuantizeActs(p, wt, x, cols, ntok, cols, dst); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(ntok*cols), "ns/elem")
		})
	}
}
