package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// refToHalf rounds f to half precision with float64 arithmetic (ties to
// even): an independent reference for FP32ToFP16 on non-NaN input.
func refToHalf(f float32) uint16 {
	v := float64(f)
	var sign uint16
	if math.Signbit(v) {
		sign, v = 0x8000, -v
	}
	if v >= 65520 { // halfway between 65504 (odd mantissa) and 2^16: to infinity
		return sign | 0x7c00
	}
	if v < math.Ldexp(1, -14) {
		return sign | uint16(math.RoundToEven(math.Ldexp(v, 24)))
	}
	_, e := math.Frexp(v) // v = frac * 2^e, frac in [0.5, 1)
	e--                   // v in [2^e, 2^(e+1))
	m := math.RoundToEven(math.Ldexp(v, 10-e))
	if m == 2048 {
		m, e = 1024, e+1
	}
	return sign | uint16(e+15)<<10 | uint16(m-1024)
}

// refToBF16 rounds f to bfloat16 (ties to even) with float64 arithmetic.
func refToBF16(f float32) uint16 {
	v := float64(f)
	var sign uint16
	if math.Signbit(v) {
		sign, v = 0x8000, -v
	}
	if math.IsInf(v, 0) {
		return sign | 0x7f80
	}
	if v < math.Ldexp(1, -126) { // float32 subnormal: unit 2^-133
		return sign | uint16(math.RoundToEven(math.Ldexp(v, 133)))
	}
	_, e := math.Frexp(v)
	e--
	m := math.RoundToEven(math.Ldexp(v, 7-e))
	if m == 256 {
		m, e = 128, e+1
	}
	if e > 127 {
		return sign | 0x7f80
	}
	return sign | uint16(e+127)<<7 | uint16(m-128)
}

func TestFP16ToFP32Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		got := math.Float32bits(FP16ToFP32(uint16(h)))
		want := math.Float32bits(h2f([]byte{byte(h), byte(h >> 8)}))
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			want = uint32(h&0x8000)<<16 | 0x7fc00000 | uint32(h&0x3ff)<<13
		}
		require.Equal(t, want, got, "half %#04x", h)
	}
}

func TestFP32ToFP16(t *testing.T) {
	// Every half converts back to itself.
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			continue
		}
		require.Equal(t, uint16(h), FP32ToFP16(FP16ToFP32(uint16(h))), "half %#04x", h)
	}
	// Exact midpoints between neighbouring halves and their float32
	// neighbours exercise ties-to-even and the rounding direction.
	for h := 0; h < 0x7bff; h++ {
		lo, hi := float64(FP16ToFP32(uint16(h))), float64(FP16ToFP32(uint16(h+1)))
		mid := float32((lo + hi) / 2)
		for _, f := range []float32{mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, 1e9)} {
			require.Equal(t, refToHalf(f), FP32ToFP16(f), "f=%g (%#08x)", f, math.Float32bits(f))
			require.Equal(t, refToHalf(-f), FP32ToFP16(-f), "f=%g", -f)
		}
	}
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 200000; i++ {
		f := math.Float32frombits(r.Uint32())
		if f != f {
			got := FP32ToFP16(f)
			require.Equal(t, uint16(0x7c00), got&0x7c00, "NaN stays NaN")
			require.NotZero(t, got&0x200, "NaN becomes quiet")
			continue
		}
		require.Equal(t, refToHalf(f), FP32ToFP16(f), "f=%g (%#08x)", f, math.Float32bits(f))
	}
	require.Equal(t, uint16(0x7c00), FP32ToFP16(float32(math.Inf(1))))
	require.Equal(t, uint16(0xfc00), FP32ToFP16(float32(math.Inf(-1))))
	require.Equal(t, uint16(0x7bff), FP32ToFP16(65519.99))
	require.Equal(t, uint16(0x7c00), FP32ToFP16(65520))
	require.Equal(t, uint16(0x8000), FP32ToFP16(-1e-30))
}

func TestBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for i := 0; i < 200000; i++ {
		f := math.Float32frombits(r.Uint32())
		got := FP32ToBF16(f)
		if f != f {
			require.Equal(t, uint16(math.Float32bits(f)>>16)|64, got, "NaN is truncated and forced quiet")
			continue
		}
		require.Equal(t, refToBF16(f), got, "f=%g (%#08x)", f, math.Float32bits(f))
		// Widening is exact: a bf16 is the top half of a float32.
		require.Equal(t, uint32(got)<<16, math.Float32bits(BF16ToFP32(got)))
	}
	// Ties: 1 + 2^-8 is halfway between 1 and 1+2^-7; even wins.
	require.Equal(t, uint16(0x3f80), FP32ToBF16(1+1.0/256))
	require.Equal(t, uint16(0x3f82), FP32ToBF16(1+3.0/256))
	require.Equal(t, uint16(0x7f80), FP32ToBF16(math.MaxFloat32), "rounds up to infinity")
}
