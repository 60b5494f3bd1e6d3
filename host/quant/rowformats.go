package quant

import (
	"fmt"
	"math"

	"qinfer/host/backend"
)

// qinfer's row formats (backend.W8, FP8, Ternary, Binary) quantize a
// weight matrix row by row: each output row is a run of packed codes plus
// one F32 scale kept apart (backend.Weight.RowScales), and the element
// value is scale * code. They multiply per-token int8 activations
// (QuantizeTokenInt8), so every dot is an exact integer sum followed by one
// float scaling; see RowVecDot. docs/formats.md describes the layouts and
// how they are stored in GGUF.
//
//   - W8: one int8 per element, symmetric: scale = max|w|/127,
//     code = round(w * 127/max|w|), halfway cases away from zero, in
//     [-127, 127] (-128 is never written but reads as -128).
//   - FP8: one FP8 E4M3 byte per element (OCP "E4M3FN": bias 7, largest
//     finite 448, no infinities, S.1111.111 is NaN): scale = max|w|/448,
//     code = e4m3(w * 448/max|w|), rounded to nearest, ties to even.
//   - Ternary (BitNet b1.58 "absmean"): scale = mean|w|,
//     code = clamp(round(w/scale), -1, 1), halfway cases to even as
//     torch.round; 2 bits per element holding code+1 (0: -1, 1: 0, 2: +1;
//     3 is invalid), element k in bits 2(k%4)..2(k%4)+1 of byte k/4.
//   - Binary: scale = mean|w| (the L2-optimal scale for signs),
//     1 bit per element, set for +1 (w >= 0) and clear for -1, element k in
//     bit k%8 of byte k/8.
//
// A row of zeros has scale 0 and codes 0 (Binary: +1, times scale 0).

// IsRowFormat reports whether t is one of qinfer's per-row-scale formats.
func IsRowFormat(t backend.DType) bool {
	switch t {
	case backend.W8, backend.FP8, backend.Ternary, backend.Binary:
		return true
	}
	return false
}

// RowFormats lists the row formats, for tests and tools.
var RowFormats = []backend.DType{backend.W8, backend.FP8, backend.Ternary, backend.Binary}

// Largest magnitudes of the codes the formats scale to.
const (
	w8Max  = 127
	fp8Max = 448
)

// QuantizeRows quantizes a [rows][cols] float32 matrix (row-major, as a
// GGUF tensor with Dims[0] = cols) to row format t. It returns the packed
// rows (rows * backend.RowBytes(t, cols) bytes) and one scale per row. cols
// must be a whole number of t's blocks (4 for Ternary, 8 for Binary); NaN
// and infinite weights are rejected with the row and column named.
func QuantizeRows(t backend.DType, src []float32, rows, cols int) (data []byte, scales []float32, err error) {
	if !IsRowFormat(t) {
		return nil, nil, fmt.Errorf("quantize rows: %v is not a row format", t)
	}
	if rows <= 0 || cols <= 0 {
		return nil, nil, fmt.Errorf("quantize rows %v: shape %dx%d", t, rows, cols)
	}
	rb, err := backend.RowBytes(t, cols)
	if err != nil {
		return nil, nil, fmt.Errorf("quantize rows: %w", err)
	}
	if rows > len(src)/cols || len(src) != rows*cols {
		return nil, nil, fmt.Errorf("quantize rows %v: %dx%d needs %d values, have %d", t, rows, cols, rows*cols, len(src))
	}
	data = make([]byte, rows*rb)
	scales = make([]float32, rows)
	for r := 0; r < rows; r++ {
		x := src[r*cols : (r+1)*cols]
		for c, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, nil, fmt.Errorf("quantize rows %v: row %d column %d is %v", t, r, c, v)
			}
		}
		scales[r] = quantizeRow(t, x, data[r*rb:(r+1)*rb])
	}
	return data, scales, nil
}

// QuantizeRow quantizes one row of finite values into dst (RowBytes(t,
// len(x)) bytes) and returns its scale. It is QuantizeRows without the
// checks on shape and values, for callers that quantize row by row.
func QuantizeRow(t backend.DType, x []float32, dst []byte) (float32, error) {
	if !IsRowFormat(t) {
		return 0, fmt.Errorf("quantize row: %v is not a row format", t)
	}
	rb, err := backend.RowBytes(t, len(x))
	if err != nil {
		return 0, fmt.Errorf("quantize row: %w", err)
	}
	if len(dst) < rb {
		return 0, fmt.Errorf("quantize row %v: %d elements need %d bytes, have %d", t, len(x), rb, len(dst))
	}
	return quantizeRow(t, x, dst[:rb]), nil
}

func quantizeRow(t backend.DType, x []float32, dst []byte) float32 {
	switch t {
	case backend.W8:
		return quantW8(x, dst)
	case backend.FP8:
		return quantFP8Row(x, dst)
	case backend.Ternary:
		return quantTernary(x, dst)
	default:
		return quantBinary(x, dst)
	}
}

func absMax(x []float32) float32 {
	var m float32
	for _, v := range x {
		m = max(m, abs32(v))
	}
	return m
}

// absMean is mean|x| accumulated in float64 so that long rows lose nothing
// to summation order, rounded once to float32.
func absMean(x []float32) float32 {
	var s float64
	for _, v := range x {
		s += math.Abs(float64(v))
	}
	return float32(s / float64(len(x)))
}

func quantW8(x []float32, dst []byte) float32 {
	amax := absMax(x)
	if amax == 0 {
		clear(dst)
		return 0
	}
	id := w8Max / amax
	for i, v := range x {
		dst[i] = byte(int8(clamp(int(roundAway(scaleBy(v, id, w8Max, amax))), -w8Max, w8Max)))
	}
	return amax / w8Max
}

func quantFP8Row(x []float32, dst []byte) float32 {
	amax := absMax(x)
	if amax == 0 {
		clear(dst)
		return 0
	}
	id := fp8Max / amax
	for i, v := range x {
		dst[i] = FP32ToFP8(scaleBy(v, id, fp8Max, amax))
	}
	return amax / fp8Max
}

// scaleBy is v * id with id = m/amax; when amax is so small (subnormal)
// that id overflows to infinity it computes v*m/amax in float64 instead,
// so a row of tiny weights still maps its largest element to m.
func scaleBy(v, id, m, amax float32) float32 {
	if math.IsInf(float64(id), 0) {
		return float32(float64(v) * float64(m) / float64(amax))
	}
	return v * id
}

func quantTernary(x []float32, dst []byte) float32 {
	return quantTernaryWith(x, absMean(x), dst)
}

// quantTernaryWith writes the ternary codes of x for the scale s and
// returns s.
func quantTernaryWith(x []float32, s float32, dst []byte) float32 {
	clear(dst)
	if s == 0 {
		for i := range x {
			dst[i/4] |= 1 << (2 * (i % 4)) // code 0 is stored as 1
		}
		return 0
	}
	for i, v := range x {
		q := clamp(int(roundEven(v/s)), -1, 1)
		dst[i/4] |= byte(q+1) << (2 * (i % 4))
	}
	return s
}

func quantBinary(x []float32, dst []byte) float32 {
	clear(dst)
	for i, v := range x {
		if v >= 0 {
			dst[i/8] |= 1 << (i % 8)
		}
	}
	return absMean(x)
}

// RowCodes decodes row-format codes to their integer values: W8 the int8,
// Ternary -1/0/+1, Binary -1/+1, FP8 the value in units of 2^-9 (every
// finite E4M3 value is an integer multiple of 2^-9, the smallest
// subnormal, and the largest, 448, is 229376 units). It is the integer
// view the exact dots are built on. dst must hold n values; an invalid
// ternary code or an FP8 NaN is an error naming its position.
func RowCodes(t backend.DType, n int, row []byte, dst []int32) error {
	rb, err := backend.RowBytes(t, n)
	if err != nil {
		return fmt.Errorf("row codes: %w", err)
	}
	if !IsRowFormat(t) {
		return fmt.Errorf("row codes: %v is not a row format", t)
	}
	if len(row) < rb || len(dst) < n {
		return fmt.Errorf("row codes %v: %d elements need %d bytes and %d values, have %d and %d", t, n, rb, n, len(row), len(dst))
	}
	for i := 0; i < n; i++ {
		switch t {
		case backend.W8:
			dst[i] = int32(int8(row[i]))
		case backend.FP8:
			u, ok := fp8Units(row[i])
			if !ok {
				return fmt.Errorf("row codes FP8: element %d is NaN (code %#02x)", i, row[i])
			}
			dst[i] = u
		case backend.Ternary:
			c := row[i/4] >> (2 * (i % 4)) & 3
			if c == 3 {
				return fmt.Errorf("row codes TERNARY: element %d has the invalid code 3", i)
			}
			dst[i] = int32(c) - 1
		default:
			dst[i] = int32(row[i/8]>>(i%8)&1)*2 - 1
		}
	}
	return nil
}

// CheckRowData checks the packed rows of a row-format tensor for codes no
// quantizer writes and no kernel handles: the unused ternary code 3 and
// the FP8 NaN codes (S.1111.111; the quantizer saturates instead). W8 and
// Binary accept every byte.
func CheckRowData(t backend.DType, data []byte, rows, cols int) error {
	rb, err := backend.RowBytes(t, cols)
	if err != nil {
		return err
	}
	if n := rows * rb; len(data) > n {
		data = data[:n]
	}
	switch t {
	case backend.Ternary:
		for i, b := range data {
			// A 2-bit field holds 3 when both its bits are set.
			if m := b & (b >> 1) & 0x55; m != 0 {
				k := 0
				for m&(3<<(2*k)) == 0 {
					k++
				}
				return fmt.Errorf("TERNARY row %d element %d has the invalid code 3", i/rb, (i%rb)*4+k)
			}
		}
	case backend.FP8:
		for i, b := range data {
			if b&0x7f == 0x7f {
				return fmt.Errorf("FP8_E4M3 row %d element %d is NaN (code %#02x)", i/rb, i%rb, b)
			}
		}
	}
	return nil
}

// DequantizeRowFormat decodes a [rows][cols] row-format matrix: element =
// scale[row] * value(code), one float32 multiplication. Codes CheckRowData
// rejects are an error.
func DequantizeRowFormat(t backend.DType, data []byte, scales []float32, rows, cols int) ([]float32, error) {
	if !IsRowFormat(t) {
		return nil, fmt.Errorf("dequantize rows: %v is not a row format", t)
	}
	if rows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("dequantize rows %v: shape %dx%d", t, rows, cols)
	}
	rb, err := backend.RowBytes(t, cols)
	if err != nil {
		return nil, fmt.Errorf("dequantize rows: %w", err)
	}
	if rows > len(data)/rb || len(scales) < rows {
		return nil, fmt.Errorf("dequantize rows %v: %dx%d needs %d bytes and %d scales, have %d and %d", t, rows, cols, rows*rb, rows, len(data), len(scales))
	}
	if err := CheckRowData(t, data[:rows*rb], rows, cols); err != nil {
		return nil, fmt.Errorf("dequantize rows: %w", err)
	}
	out := make([]float32, rows*cols)
	for r := 0; r < rows; r++ {
		dequantRow(t, data[r*rb:(r+1)*rb], scales[r], out[r*cols:(r+1)*cols])
	}
	return out, nil
}

// DequantizeRow decodes one row-format row of len(dst) elements with
// scale s into dst, as DequantizeRowFormat does (codes CheckRowData
// rejects are an error).
func DequantizeRow(t backend.DType, src []byte, s float32, dst []float32) error {
	if !IsRowFormat(t) {
		return fmt.Errorf("dequantize row: %v is not a row format", t)
	}
	rb, err := backend.RowBytes(t, len(dst))
	if err != nil {
		return fmt.Errorf("dequantize row: %w", err)
	}
	if len(src) < rb {
		return fmt.Errorf("dequantize row %v: %d elements need %d bytes, have %d", t, len(dst), rb, len(src))
	}
	if err := CheckRowData(t, src[:rb], 1, len(dst)); err != nil {
		return fmt.Errorf("dequantize row: %w", err)
	}
	dequantRow(t, src, s, dst)
	return nil
}

func dequantRow(t backend.DType, row []byte, s float32, y []float32) {
	for i := range y {
		switch t {
		case backend.W8:
			y[i] = s * float32(int8(row[i]))
		case backend.FP8:
			y[i] = s * FP8ToFP32(row[i])
		case backend.Ternary:
			y[i] = s * float32(int(row[i/4]>>(2*(i%4))&3)-1)
		default:
			y[i] = s * float32(int(row[i/8]>>(i%8)&1)*2-1)
		}
	}
}

// QuantizeTokenInt8 quantizes one activation row (a token) with its own
// range, the dynamic method: scale = max|x|/127 and
// q = roundEven(clamp(x * (127/max|x|), -127, 127)), all in float32 (the
// product, then the clamp, then rounding halfway cases to even, as
// VCVTPS2DQ does). A row of zeros, or one so small that 127/max|x|
// overflows float32 (max|x| < 2^-122), gets scale 0 and zero codes; so
// does a row with NaN. It returns the scale; q must hold len(x) values.
func QuantizeTokenInt8(x []float32, q []int8) float32 {
	amax := absMax(x)
	id, ok := TokenInvScale(amax)
	if !ok {
		clear(q[:len(x)])
		return 0
	}
	quantTokenWith(x, id, q)
	return amax / w8Max
}

// TokenInvScale is the factor dynamic quantization multiplies a token by,
// 127/amax, and false when the token is to be zeroed (see
// QuantizeTokenInt8). Kernels share it so that they agree bit for bit.
func TokenInvScale(amax float32) (float32, bool) {
	id := w8Max / amax
	if !(amax > 0) || math.IsInf(float64(id), 0) {
		return 0, false
	}
	return id, true
}

// QuantizeTokenInt8Static quantizes one activation row with a fixed
// (calibrated) scale, the static method: q = roundEven(clamp(x * (1/scale),
// -127, 127)) in float32, so values beyond 127*scale saturate. scale must
// pass CheckActScale.
func QuantizeTokenInt8Static(x []float32, scale float32, q []int8) error {
	if err := CheckActScale(scale); err != nil {
		return err
	}
	quantTokenWith(x, 1/scale, q)
	return nil
}

// CheckActScale accepts a static activation scale: finite, > 0, and with a
// finite inverse (not below 2^-126 or so).
func CheckActScale(scale float32) error {
	if !(scale > 0) || math.IsInf(float64(scale), 0) || math.IsInf(float64(1/scale), 0) {
		return fmt.Errorf("static activation scale %v: want a finite scale > 0 with a finite inverse", scale)
	}
	return nil
}

// quantTokenWith is the shared rounding. The clamp comes before rounding
// and conversion so that large values saturate instead of overflowing the
// conversion; a NaN input becomes -127 (the result of MAXPS with NaN in
// its first source), matching the SIMD kernels.
func quantTokenWith(x []float32, id float32, q []int8) {
	for i, v := range x {
		p := v * id
		if !(p > -w8Max) {
			p = -w8Max
		}
		if !(p < w8Max) {
			p = w8Max
		}
		q[i] = int8(roundEven(p))
	}
}

// RowIntSum is the exact integer part of a row-format dot with int8
// activations: sum_k code(w_k) * x_k with code as in RowCodes (W8 int8,
// Ternary -1/0/+1, Binary ±1, FP8 units of 2^-9). It is accumulated in
// int64; for W8, Ternary and Binary it fits int32 for rows up to
// MaxRowCols elements, which is what the SIMD kernels rely on.
func RowIntSum(t backend.DType, n int, wrow []byte, xq []int8) (int64, error) {
	if !IsRowFormat(t) {
		return 0, fmt.Errorf("row dot: %v is not a row format", t)
	}
	rb, err := backend.RowBytes(t, n)
	if err != nil {
		return 0, fmt.Errorf("row dot: %w", err)
	}
	if len(wrow) < rb || len(xq) < n {
		return 0, fmt.Errorf("row dot %v: %d elements need %d weight bytes and %d activations, have %d and %d", t, n, rb, n, len(wrow), len(xq))
	}
	codes := make([]int32, n)
	if err := RowCodes(t, n, wrow, codes); err != nil {
		return 0, fmt.Errorf("row dot: %w", err)
	}
	var s int64
	for i, c := range codes {
		s += int64(c) * int64(xq[i])
	}
	return s, nil
}

// MaxRowCols is the longest row the int32 accumulators of the W8, Ternary
// and Binary kernels hold exactly: 131072 * 128 * 127 < 2^31.
const MaxRowCols = 1 << 17

// fp8Unit is the value of one FP8 unit, 2^-9.
const fp8Unit = 1.0 / 512

// RowScaleDot turns an exact integer sum into the dot's value, in the one
// order every backend uses: float32(isum) * (wscale * xscale), and for FP8
// then times 2^-9 (exact barring underflow). The float32 conversion rounds
// to nearest even, as CVTSI2SS does.
func RowScaleDot(t backend.DType, isum int64, wscale, xscale float32) float32 {
	v := float32(isum) * (wscale * xscale)
	if t == backend.FP8 {
		v *= fp8Unit
	}
	return v
}

// RowVecDot is the reference dot of one row-format weight row (n
// elements, scale wscale) with one int8 activation row (scale xscale):
// RowScaleDot(RowIntSum(...)). FP8 weights multiply the int8 activations
// exactly too (as integer units of 2^-9), not dequantized to float, so the
// result is the same on every backend.
func RowVecDot(t backend.DType, n int, wrow []byte, wscale float32, xq []int8, xscale float32) (float32, error) {
	s, err := RowIntSum(t, n, wrow, xq)
	if err != nil {
		return 0, err
	}
	return RowScaleDot(t, s, wscale, xscale), nil
}
