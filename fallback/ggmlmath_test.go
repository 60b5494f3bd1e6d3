package fallback

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/fallback/vecmath"
)

// exactFMA32 rounds a*b+c computed exactly (big.Float) to float32;
// big.Float.Float32 rounds to nearest even, subnormals included.
func ulpDiff(a, b float32) int64 {
	d := int64(math.Float32bits(a)) - int64(math.Float32bits(b))
	if d < 0 {
		d = -d
	}
	return d
}

// TestVExpf checks ggml's vector exponential against math.Exp within its
// documented error (1.45 ulp + 0.5) and its documented limits.
func TestVExpf(t *testing.T) {
	for x := float32(-87); x < 88; x += 0.0137 {
		want := float32(math.Exp(float64(x)))
		require.LessOrEqualf(t, ulpDiff(vExpf(x), want), int64(2), "vExpf(%v) = %v, exp = %v", x, vExpf(x), want)
	}
	require.Equal(t, float32(1), vExpf(0))
	require.Equal(t, float32(0), vExpf(-104))
	require.Equal(t, float32(0), vExpf(float32(math.Inf(-1))))
	require.True(t, math.IsInf(float64(vExpf(89)), 1))
	// Between -103.97 and -87.3 the result is subnormal: the c-branch.
	require.InEpsilon(t, math.Exp(-95), float64(vExpf(-95)), 1e-3)
}

// Closed-form checks of the reduction orders: 2^24+1 is not a float32,
// so (2^24 + 1) + 1 = 2^24 while 2^24 + (1 + 1) = 2^24 + 2.
func TestReductionOrders(t *testing.T) {
	const big = 0x1p24
	// hsum8 pairs lane 1 with lane 3 before adding lane 0's sum.
	v := [8]float32{big, 1, 0, 1}
	require.Equal(t, float32(big+2), vecmath.Hsum8(&v))
	v = [8]float32{big, 0, 0, 0, 1, 0, 0, 1}
	require.Equal(t, float32(big), vecmath.Hsum8(&v), "lane 4 joins lane 0 first")

	// reduce32 adds accumulators 1 and 3 before accumulator 0...
	var a [32]float32
	a[0], a[8], a[24] = big, 1, 1
	require.Equal(t, float32(big+2), vecmath.Reduce32(&a))
	// ...and after that pairs lanes 0+1 and 2+3 (HADD), unlike hsum8.
	a = [32]float32{}
	a[0], a[1], a[3] = big, 1, 1
	require.Equal(t, float32(big), vecmath.Reduce32(&a))
}

func TestDotShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, n := range []int{8, 16, 40, 64, 72} {
		a, b := randVals(rng, n, 1), randVals(rng, n, 1)
		var want float64
		for i := range a {
			want += float64(a[i]) * float64(b[i])
		}
		require.InDelta(t, want, dotTiny(a, b), 1e-5, "tiny n=%d", n)
		require.InDelta(t, want, dotVecF16(a, b), 1e-5, "vec f16 n=%d", n)
		require.InDelta(t, want, dotVecF32(a, b), 1e-5, "vec f32 n=%d", n)
	}
	// dotVecF16 sums the tail past the 32-element blocks in double.
	a := make([]float32, 35)
	b := make([]float32, 35)
	a[0], b[0] = 0x1p24, 1
	a[32], b[32], a[33], b[33] = 1, 1, 1, 1
	require.Equal(t, float32(0x1p24+2), dotVecF16(a, b))
	require.Equal(t, float32(0x1p24), dotVecF32(a, b), "dotVecF32 keeps the tail in float")
}

func TestSoftmaxGGML(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	for _, n := range []int{1, 7, 8, 13, 32, 37} {
		for _, padded := range []bool{false, true} {
			x := randVals(rng, n, 10)
			y := make([]float32, n)
			softmaxGGML(y, x, padded)
			var sum float64
			m := math.Inf(-1)
			for _, v := range x {
				m = math.Max(m, float64(v))
			}
			for _, v := range x {
				sum += math.Exp(float64(v) - m)
			}
			for i, v := range x {
				require.InDelta(t, math.Exp(float64(v)-m)/sum, y[i], 1e-6, "n=%d padded=%v i=%d", n, padded, i)
			}
		}
	}
}
