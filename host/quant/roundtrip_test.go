package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
)

// quantTypes are the types Quantize supports besides F32.
var quantTypes = []backend.DType{
	backend.F16, backend.BF16, backend.Q4_0, backend.Q4_1, backend.Q5_0, backend.Q5_1, backend.Q8_0,
	backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K, backend.Q8_K,
}

func roundTrip(t *testing.T, dt backend.DType, x []float32) []float32 {
	t.Helper()
	rb, err := rowBytes(dt, len(x))
	require.NoError(t, err)
	q := make([]byte, rb)
	require.NoError(t, Quantize(dt, x, q))
	y := make([]float32, len(x))
	require.NoError(t, Dequantize(dt, q, y))
	return y
}

// elementBound is the largest error a correct encoding of element x of
// block blk can have, for the formats with a closed-form bound: half an ulp
// for F16/BF16 (|x|*2^-11, |x|*2^-8); for block formats half a step
// (a full step where the format clips the far end, Q4_0/Q5_0), plus the
// fp16 rounding of the stored scale (relative 2^-11) times the largest
// reconstructed magnitude, plus the fp16 rounding of a stored min.
func elementBound(dt backend.DType, x float32, blk []float32) float64 {
	var amax, lo, hi float64 = 0, math.Inf(1), math.Inf(-1)
	for _, v := range blk {
		amax = math.Max(amax, math.Abs(float64(v)))
		lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
	}
	const h = 1.0 / 2048
	slack := 1e-6 * amax
	switch dt {
	case backend.F16:
		return math.Max(math.Abs(float64(x))*h, math.Ldexp(1, -25)) * 1.000001
	case backend.BF16:
		return math.Abs(float64(x)) / 256 * 1.000001
	case backend.Q8_0:
		return amax/127/2 + amax*h + slack
	case backend.Q8_K:
		return amax/127/2 + slack // the f32 scale is not rounded
	case backend.Q4_0:
		return amax/8 + amax*h + slack
	case backend.Q5_0:
		return amax/16 + amax*h + slack
	case backend.Q4_1:
		return (hi-lo)/15/2 + (hi-lo)*h + math.Abs(lo)*h + slack
	case backend.Q5_1:
		return (hi-lo)/31/2 + (hi-lo)*h + math.Abs(lo)*h + slack
	}
	return math.Inf(1)
}

// TestRoundTripBounds quantizes random non-zero data of several scales and
// checks every element against its format's closed-form error bound.
func TestRoundTripBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, dt := range []backend.DType{backend.F16, backend.BF16, backend.Q8_0, backend.Q8_K, backend.Q4_0, backend.Q5_0, backend.Q4_1, backend.Q5_1} {
		for _, sigma := range []float64{1, 0.02, 300} {
			x := randNormal(r, 1024, sigma)
			for i := 0; i < len(x); i += 97 {
				x[i] += float32(sigma) // skewed blocks too
			}
			y := roundTrip(t, dt, x)
			tr, _ := backend.TraitsOf(dt)
			bs := max(tr.BlockSize, 32) // F16/BF16 bounds are per element
			for i := range x {
				b := i / bs * bs
				bound := elementBound(dt, x[i], x[b:b+bs])
				require.LessOrEqual(t, math.Abs(float64(y[i]-x[i])), bound, "%v sigma %g element %d: x=%g y=%g", dt, sigma, i, x[i], y[i])
			}
		}
	}
}

// TestRoundTripKQuants checks the K-quants' reconstruction error on normal
// data against the expected quantization noise: a b-bit code with a fitted
// per-group scale leaves an RMS error near step/sqrt(12); the limits below
// are about 1.5x the noise of a uniform quantizer over each group's range,
// so a wrong scale, min, shift or nibble order fails them by far.
func TestRoundTripKQuants(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	limits := map[backend.DType]float64{
		backend.Q2_K: 0.45, backend.Q3_K: 0.25, backend.Q4_K: 0.12,
		backend.Q5_K: 0.06, backend.Q6_K: 0.03, backend.Q8_K: 0.01,
		backend.Q4_0: 0.15, backend.Q8_0: 0.01,
	}
	for dt, limit := range limits {
		for _, sigma := range []float64{1, 0.01} {
			x := randNormal(r, 4096, sigma)
			y := roundTrip(t, dt, x)
			var se float64
			for i := range x {
				d := float64(y[i] - x[i])
				se += d * d
			}
			rel := math.Sqrt(se/float64(len(x))) / sigma
			t.Logf("%v sigma %g: relative RMS error %.4f (limit %.2f)", dt, sigma, rel, limit)
			require.Less(t, rel, limit, "%v sigma %g", dt, sigma)
			require.Greater(t, rel, limit/50, "%v sigma %g: error implausibly small", dt, sigma)
		}
	}
}

// TestQuantizeDegenerate covers blocks the fitters special-case: all zero,
// constant, a single non-zero, all positive.
func TestQuantizeDegenerate(t *testing.T) {
	for _, dt := range quantTypes {
		zero := make([]float32, 256)
		require.Equal(t, zero, roundTrip(t, dt, zero), "%v of zeros", dt)

		one := make([]float32, 256)
		one[77] = -1.5
		y := roundTrip(t, dt, one)
		require.InDelta(t, -1.5, y[77], 1.5/64, "%v single value", dt)
		for i, v := range y {
			if i != 77 {
				// Exact for the symmetric formats; Q4_1/Q5_1 rebuild zero
				// as q*d+min from fp16 d and min (error <= 1.5*2^-10).
				require.InDelta(t, 0, v, 1.5/1024, "%v element %d of a single-value block", dt, i)
			}
		}

		c := make([]float32, 256)
		for i := range c {
			c[i] = 0.25 + float32(i%3)*0.125
		}
		// Values in [0.25, 0.5] with the min clamped to 0: Q2_K's levels
		// 0, s, 2s, 3s (s = 0.5/3) leave up to s/2; the rest are finer.
		tol := 0.07
		if dt == backend.Q2_K {
			tol = 0.5 / 3 / 2 * 1.05
		}
		y = roundTrip(t, dt, c)
		for i := range c {
			require.InDelta(t, c[i], y[i], tol, "%v positive block element %d", dt, i)
		}
	}
}
