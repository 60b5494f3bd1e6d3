package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fp8Formula is the E4M3FN definition written independently of fp8.go:
// (-1)^s * 2^(1-7) * (m/8) for exponent 0, (-1)^s * 2^(e-7) * (1 + m/8)
// otherwise, NaN for e = 15, m = 7.
func fp8Formula(c int) float64 {
	s, e, m := c>>7, (c>>3)&0xf, c&7
	if e == 15 && m == 7 {
		return math.NaN()
	}
	var v float64
	if e == 0 {
		v = math.Pow(2, -6) * float64(m) / 8
	} else {
		v = math.Pow(2, float64(e-7)) * (1 + float64(m)/8)
	}
	if s == 1 {
		v = -v
	}
	return v
}

func TestFP8DecodeAllCodes(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := fp8Formula(c)
		got := FP8ToFP32(byte(c))
		if math.IsNaN(want) {
			assert.True(t, math.IsNaN(float64(got)), "code %#02x", c)
			continue
		}
		assert.Equal(t, want, float64(got), "code %#02x", c)
		assert.Equal(t, math.Signbit(want), math.Signbit(float64(got)), "sign of code %#02x", c)
		assert.Equal(t, want*512, float64(FP8Units[c]), "units of code %#02x", c)
	}
	assert.Equal(t, float32(448), FP8ToFP32(0x7e))
	assert.Equal(t, float32(-448), FP8ToFP32(0xfe))
	assert.Equal(t, float32(1.0/512), FP8ToFP32(0x01))
	assert.Equal(t, float32(1.0/64), FP8ToFP32(0x08))
	assert.Equal(t, float32(1), FP8ToFP32(0x38))
}

// fp8Nearest is a brute-force encoder: the finite code of f's sign whose
// value is nearest to f, ties to the code with an even mantissa, values
// beyond 448 saturating.
func fp8Nearest(f float32) byte {
	if f != f {
		if math.Signbit(float64(f)) {
			return 0xff
		}
		return 0x7f
	}
	sign := 0
	if math.Signbit(float64(f)) {
		sign = 0x80
	}
	a := math.Abs(float64(f))
	best, bestD := 0, math.Inf(1)
	for c := 0; c <= 0x7e; c++ {
		d := math.Abs(fp8Formula(c) - a)
		if d < bestD || (d == bestD && c&1 == 0) {
			best, bestD = c, d
		}
	}
	return byte(sign | best)
}

func TestFP8EncodeRoundTripAllCodes(t *testing.T) {
	for c := 0; c < 256; c++ {
		if c&0x7f == 0x7f {
			continue
		}
		assert.Equal(t, byte(c), FP32ToFP8(float32(fp8Formula(c))), "code %#02x", c)
	}
}

func TestFP8EncodeMidpointsTieToEven(t *testing.T) {
	for c := 0; c < 0x7e; c++ {
		lo, hi := fp8Formula(c), fp8Formula(c+1)
		mid := float32((lo + hi) / 2) // exact: both have few mantissa bits
		require.Equal(t, (lo+hi)/2, float64(mid))
		want := byte(c)
		if c&1 == 1 {
			want = byte(c + 1)
		}
		assert.Equal(t, want, FP32ToFP8(mid), "midpoint of %#02x and %#02x", c, c+1)
		assert.Equal(t, want|0x80, FP32ToFP8(-mid), "negative midpoint of %#02x and %#02x", c, c+1)
		assert.Equal(t, byte(c), FP32ToFP8(math.Nextafter32(mid, 0)), "just below midpoint %v", mid)
		assert.Equal(t, byte(c+1), FP32ToFP8(math.Nextafter32(mid, 1000)), "just above midpoint %v", mid)
	}
}

func TestFP8EncodeRandomMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 4))
	for i := 0; i < 20000; i++ {
		// Magnitudes from 2^-14 (far below the subnormals) to 2^10
		// (beyond 448), both signs.
		f := float32(math.Ldexp(rng.Float64()+0.5, rng.IntN(25)-14))
		if rng.IntN(2) == 0 {
			f = -f
		}
		require.Equal(t, fp8Nearest(f), FP32ToFP8(f), "f = %v", f)
	}
}

func TestFP8EncodeSpecials(t *testing.T) {
	assert.Equal(t, byte(0x7e), FP32ToFP8(float32(math.Inf(1))))
	assert.Equal(t, byte(0xfe), FP32ToFP8(float32(math.Inf(-1))))
	assert.Equal(t, byte(0x7e), FP32ToFP8(463.99))
	assert.Equal(t, byte(0x7e), FP32ToFP8(1e30))
	assert.Equal(t, byte(0x7f), FP32ToFP8(float32(math.NaN())))
	assert.Equal(t, byte(0xff), FP32ToFP8(float32(-math.NaN())))
	assert.Equal(t, byte(0x00), FP32ToFP8(0))
	assert.Equal(t, byte(0x80), FP32ToFP8(float32(math.Copysign(0, -1))))
	// Half the smallest subnormal ties to zero (even); a bit more rounds up.
	assert.Equal(t, byte(0x00), FP32ToFP8(1.0/1024))
	assert.Equal(t, byte(0x01), FP32ToFP8(math.Nextafter32(1.0/1024, 1)))
}
