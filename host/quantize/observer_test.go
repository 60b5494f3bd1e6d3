package quantize

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMinMaxObserver(t *testing.T) {
	s := newActStats(4)
	require.NoError(t, s.add([]float32{0.5, -3.25, 1, 2, -0.1, 0.2, 2.5, -1}, 2, 4))
	assert.Equal(t, 3.25, s.clip(MinMax, 0))
	assert.Equal(t, []float32{0.5, 3.25, 2.5, 2}, s.chanMax)
	assert.Equal(t, 2, s.outliers(2.2))
	assert.Equal(t, 0, s.outliers(-1), "a negative threshold turns detection off")
}

// TestPercentileObserver: on the sample |x| = i/10000, i = 1..10000, the
// p-th percentile is p/100 (to one value), read from the histogram to
// within one bin. The sample arrives in two batches, the second twice
// the range of the first, so the histogram has to grow.
func TestPercentileObserver(t *testing.T) {
	const n = 10000
	rng := rand.New(rand.NewPCG(1, 2))
	var lo, hi []float32
	for i := 1; i <= n; i++ {
		v := float32(i) / n
		if rng.IntN(2) == 0 {
			v = -v
		}
		if i <= n/2 {
			lo = append(lo, v)
		} else {
			hi = append(hi, v)
		}
	}
	rng.Shuffle(len(lo), func(i, j int) { lo[i], lo[j] = lo[j], lo[i] })
	s := newActStats(1)
	require.NoError(t, s.add(lo, len(lo), 1))
	require.NoError(t, s.add(hi, len(hi), 1))
	bin := 1.0 / histBins
	for _, p := range []float64{50, 90, 99, 99.99} {
		assert.InDelta(t, p/100, s.clip(Percentile, p), bin+1.0/n, "percentile %g", p)
	}
	assert.InDelta(t, 1.0, s.clip(Percentile, 100), 1e-9)
}

// TestMSEObserverUniform: for |x| uniform on [0, a], the expected error
// c^3/(12*127^2*a) + (a-c)^3/(3a) of clipping at c is smallest at
// c = a*254/255 (set its derivative to zero).
func TestMSEObserverUniform(t *testing.T) {
	const a = 3.0
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 1<<21)
	for i := range x {
		x[i] = float32((2*rng.Float64() - 1) * a)
	}
	s := newActStats(1)
	require.NoError(t, s.add(x, len(x), 1))
	want := a * 254 / 255
	assert.InDelta(t, want, s.clip(MSE, 0), 4*a/histBins)
	assert.Less(t, s.clip(MSE, 0), float64(s.absMax), "clips a little")
}

// TestObserversOnOutliers: a Gaussian with three outliers at 100. Min-max
// spends the int8 range on them; the 99.99th percentile sits at the
// Gaussian's (3.89 sigma). For the MSE clip c between the Gaussian and
// the outliers, the error is N*(c/127)^2/12 for the N Gaussian values
// plus 3*(100-c)^2, smallest at c = 300/(3 + N/(12*127^2)).
func TestObserversOnOutliers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, 1<<20)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	x[10], x[20], x[30] = 100, -100, 100
	s := newActStats(1)
	require.NoError(t, s.add(x, len(x), 1))
	mm, pc, mse := s.clip(MinMax, 0), s.clip(Percentile, 99.99), s.clip(MSE, 0)
	assert.Equal(t, 100.0, mm)
	assert.InDelta(t, 3.89, pc, 0.15)
	n := float64(len(x) - 3)
	assert.InDelta(t, 300/(3+n/(12*127*127)), mse, 0.1)
}

func TestObserverEdgeCases(t *testing.T) {
	s := newActStats(2)
	require.NoError(t, s.add([]float32{0, 0, 0, 0}, 2, 2))
	assert.Equal(t, 0.0, s.clip(MSE, 0), "all zeros: no scale")
	require.Error(t, s.add([]float32{1, float32(math.Inf(1))}, 1, 2))
	require.Error(t, s.add([]float32{1, 2, 3}, 1, 3), "wrong width")
}
