package quant

import "math"

// FP8 E4M3 as the OCP 8-bit floating point specification defines its
// "E4M3FN" variant (also NVIDIA's __nv_fp8_e4m3): 1 sign, 4 exponent bits
// with bias 7, 3 mantissa bits; subnormals at exponent 0
// (m * 2^-9); no infinities; S.1111.111 is NaN, so the largest finite
// value is S.1111.110 = 448.

// fp8Table holds the float32 value of every code, built once from the
// definition so that decoding is a lookup.
var fp8Table = func() (t [256]float32) {
	for c := range t {
		t[c] = fp8Decode(byte(c))
	}
	return t
}()

func fp8Decode(c byte) float32 {
	e, m := int(c>>3&15), int(c&7)
	var v float32
	switch {
	case e == 15 && m == 7:
		v = float32(math.NaN())
	case e == 0:
		v = float32(m) * fp8Unit
	default:
		// (8+m) * 2^(e-10): an integer times a power of two, exact.
		v = float32(math.Ldexp(float64(8+m), e-10))
	}
	if c&0x80 != 0 {
		v = -v
	}
	return v
}

// FP8ToFP32 decodes an FP8 E4M3 code exactly.
func FP8ToFP32(c byte) float32 { return fp8Table[c] }

// fp8Units returns a finite code's value in units of 2^-9 (an integer:
// (8+m) << (e-1) for normal codes, m for subnormal ones), or false for
// NaN.
func fp8Units(c byte) (int32, bool) {
	e, m := int32(c>>3&15), int32(c&7)
	var u int32
	switch {
	case e == 15 && m == 7:
		return 0, false
	case e == 0:
		u = m
	default:
		u = (8 + m) << (e - 1)
	}
	if c&0x80 != 0 {
		u = -u
	}
	return u, true
}

// FP8Units is fp8Units for every code, NaN codes as 0: the table the
// integer kernels decode FP8 weights with.
var FP8Units = func() (t [256]int32) {
	for c := range t {
		t[c], _ = fp8Units(byte(c))
	}
	return t
}()

// FP32ToFP8 encodes f as FP8 E4M3, rounding to nearest with ties to even
// and saturating: finite values beyond 448 (and infinities) become ±448,
// NaN becomes the NaN code with f's sign. The sign of zero is kept.
func FP32ToFP8(f float32) byte {
	b := math.Float32bits(f)
	sign := byte(b >> 24 & 0x80)
	b &^= 1 << 31
	if b > 0x7f800000 { // NaN
		return sign | 0x7f
	}
	a := math.Float32frombits(b)
	if a < 1.0/64 {
		// Subnormal range (below the smallest normal, 2^-6): multiples of
		// 2^-9. a*512 is exact, and rounding it to even gives the code,
		// 8 being the smallest normal's code.
		return sign | byte(roundEven(a*512))
	}
	if a >= fp8Max {
		return sign | 0x7e
	}
	// Round the float32 mantissa to 3 bits, ties to even: add just under
	// half an ulp of the target, plus one when the kept lsb is odd; a
	// carry moves into the exponent as it should.
	// Below 448 the result is at most 448 (0x7e).
	r := (b + 0x7ffff + (b >> 20 & 1)) >> 20
	return sign | byte(r-(127-7)<<3) // rebias the exponent: float32 127, E4M3 7
}
