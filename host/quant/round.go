package quant

import "math"

// nearestInt is ggml's nearest_int: adding 1.5*2^23 pushes the fraction out
// of a float32 mantissa, so the FPU's round-to-nearest-even does the
// rounding. Valid for |f| <= 2^22-1, which every caller guarantees for
// finite input; out-of-range or NaN input yields garbage, as in ggml, but
// never a panic.
//
// The explicit conversion keeps a caller's product from being fused with
// the addition (Go may fuse x*y + z into one FMA, as it does on arm64),
// which would round once where ggml rounds twice.
func nearestInt(f float32) int {
	v := float32(f) + 12582912
	i := int32(math.Float32bits(v))
	return int((i & 0x007fffff) - 0x00400000)
}

// roundAway is C's roundf: halfway cases away from zero.
func roundAway(f float32) float32 { return float32(math.Round(float64(f))) }

// roundEven is VROUNDPS with _MM_ROUND_NEAREST: halfway cases to even.
func roundEven(f float32) float32 { return float32(math.RoundToEven(float64(f))) }

// abs32 is fabsf.
func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

// cvtt is C's float-to-integer conversion as compiled for x86-64
// (CVTTSS2SI): truncation toward zero, and the "integer indefinite"
// 0x80000000 for NaN and out-of-range values. Conversions to int8/uint8 in
// the C reference code go through it and keep the low byte, so
// int8(cvtt(f)) and uint8(cvtt(f)) reproduce them even for the degenerate
// inputs (infinite inverse scales) where C's behaviour is formally
// undefined.
func cvtt(f float32) int32 {
	if f != f || f >= 2147483648 || f < -2147483648 {
		return math.MinInt32
	}
	return int32(f)
}

func clamp(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// sqrt32 is sqrtf: the float64 square root rounded to float32 is the
// correctly rounded float32 square root.
func sqrt32(f float32) float32 { return float32(math.Sqrt(float64(f))) }
