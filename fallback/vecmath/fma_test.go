package vecmath

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func exactFMA32(a, b, c float32) float32 {
	x := new(big.Float).SetPrec(200).SetFloat64(float64(a))
	x.Mul(x, new(big.Float).SetPrec(200).SetFloat64(float64(b)))
	x.Add(x, new(big.Float).SetPrec(200).SetFloat64(float64(c)))
	f, _ := x.Float32()
	return f
}

func TestFMA32(t *testing.T) {
	// a*b = 2^-24 - 2^-70 and c = 1+2^-23: the exact sum lies just below
	// the float32 midpoint 1+2^-23+2^-24, so it rounds to c; rounding to
	// double first lands on the midpoint, and ties-to-even then gives
	// 1+2^-22.
	a := float32(1 + 0x1p-23)
	b := float32(0x1p-24 - 0x1p-47)
	c := float32(1 + 0x1p-23)
	require.Equal(t, c, fma32(a, b, c))
	require.Equal(t, float32(1+0x1p-22), float32(math.FMA(float64(a), float64(b), float64(c))), "the case must be a double-rounding one")
	// The mirror image above the midpoint, and a subnormal result.
	require.Equal(t, exactFMA32(a, -b, -c), fma32(a, -b, -c))
	require.Equal(t, exactFMA32(0x1p-70, 0x1p-70, 0x1p-149), fma32(0x1p-70, 0x1p-70, 0x1p-149))

	rng := rand.New(rand.NewPCG(21, 22))
	for i := 0; i < 20000; i++ {
		a := float32(rng.NormFloat64()) * float32(math.Ldexp(1, rng.IntN(40)-20))
		b := float32(rng.NormFloat64()) * float32(math.Ldexp(1, rng.IntN(40)-20))
		c := -a * b * (1 + float32(rng.NormFloat64())*1e-6) // near-cancellation stresses rounding
		if i%2 == 0 {
			c = float32(rng.NormFloat64())
		}
		require.Equal(t, exactFMA32(a, b, c), fma32(a, b, c), "fma32(%v, %v, %v)", a, b, c)
		require.Equal(t, exactFMA32(a, b, c), fma32Exact(a, b, c), "fma32Exact(%v, %v, %v)", a, b, c)
	}
}
