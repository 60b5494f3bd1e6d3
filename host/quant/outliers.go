package quant

import (
	"fmt"
	"math"

	"qinfer/host/backend"
)

// LLM.int8()-style outlier columns (Dettmers et al. 2022) for the row
// formats. A few input channels of a linear layer carry activations far
// larger than the rest; one such channel sets the int8 scale of every
// token it appears in and flattens all the others to a handful of codes.
// The matmul is therefore split by column: the outlier columns of W
// (backend.Weight.OutlierCols) are multiplied in float from F16 weights
// (OutlierW, rows x k), the others in int8 exactly as without a split,
// with activations quantized from the other channels only.
//
// Storage of a split row: the codes of the outlier columns are those of a
// zero weight (W8 0, FP8 0x00, TERNARY 0, BINARY +1, since a binary code
// cannot be 0), and the row scale is computed from the remaining columns
// (W8, FP8: their max|w|; TERNARY, BINARY: their mean|w|, over cols-k
// elements). The activation codes of the outlier channels are 0, so the
// weight codes there never reach a sum.
//
// The dot of weight row r with token x, the one float order every backend
// reproduces bit for bit:
//
//	q, xscale = x quantized to int8 with the outlier channels excluded
//	            (dynamic: max|x| over the other channels; static: the
//	            calibrated scale), q[c] = 0 for every outlier channel c
//	i = RowScaleDot(isum(w_r, q), wscale_r, xscale)
//	o = 0; for j = 0 .. k-1: o = o + float32(x[c_j] * float32(w16[r][j]))
//	y = i + o
//
// all in float32: each product rounded to float32 before it is added (no
// fused multiply-add), the outlier columns in increasing order, x the
// unquantized activations.

// CheckOutlierCols checks a list of outlier columns for rows of cols
// elements: strictly increasing, in [0, cols).
func CheckOutlierCols(ocols []int32, cols int) error {
	prev := int32(-1)
	for i, c := range ocols {
		if c <= prev || int(c) >= cols {
			return fmt.Errorf("outlier column %d is %d: want strictly increasing columns in [0, %d)", i, c, cols)
		}
		prev = c
	}
	return nil
}

// CheckOutliers checks the outlier columns of a [rows][cols] row-format
// tensor: the columns (CheckOutlierCols), rows*k F16 weights that are
// finite, and codes of a zero weight in the outlier columns of every row
// (any code for BINARY, which has no zero). Data must already pass
// CheckRowData.
func CheckOutliers(t backend.DType, data []byte, rows, cols int, ocols []int32, ow []uint16) error {
	if !IsRowFormat(t) {
		return fmt.Errorf("outlier columns apply to row formats (W8, FP8_E4M3, TERNARY, BINARY), not %v", t)
	}
	if err := CheckOutlierCols(ocols, cols); err != nil {
		return err
	}
	k := len(ocols)
	if len(ow) != rows*k {
		return fmt.Errorf("%d outlier columns of %d rows need %d F16 weights, have %d", k, rows, rows*k, len(ow))
	}
	for i, h := range ow {
		if h&0x7c00 == 0x7c00 {
			return fmt.Errorf("outlier weight of row %d column %d is %v", i/k, ocols[i%k], FP16ToFP32(h))
		}
	}
	rb, err := backend.RowBytes(t, cols)
	if err != nil {
		return err
	}
	if len(data) < rows*rb {
		return fmt.Errorf("%v %dx%d needs %d bytes, have %d", t, rows, cols, rows*rb, len(data))
	}
	if t == backend.Binary {
		return nil
	}
	for r := 0; r < rows; r++ {
		row := data[r*rb : (r+1)*rb]
		for _, c := range ocols {
			if !zeroCode(t, row, int(c)) {
				return fmt.Errorf("%v row %d: outlier column %d has a non-zero code", t, r, c)
			}
		}
	}
	return nil
}

// zeroCode reports whether element k of a packed row has the value 0.
func zeroCode(t backend.DType, row []byte, k int) bool {
	switch t {
	case backend.W8:
		return row[k] == 0
	case backend.FP8:
		return row[k]&0x7f == 0 // +0 or -0
	case backend.Ternary:
		return row[k/4]>>(2*(k%4))&3 == 1
	}
	return true
}

// QuantizeRowsSplit quantizes a [rows][cols] matrix to row format t with
// the columns ocols (CheckOutlierCols) split off: packed rows and scales
// as QuantizeRows returns them for the other columns (the outlier columns
// hold the code of a zero weight and do not count towards the scale), and
// the outlier columns' weights as F16 (round to nearest even), rows x k.
// Without columns it is QuantizeRows. NaN and infinite weights, and
// outlier weights beyond F16's range (65504), are errors naming the row
// and column.
func QuantizeRowsSplit(t backend.DType, src []float32, rows, cols int, ocols []int32) (data []byte, scales []float32, ow []uint16, err error) {
	if len(ocols) == 0 {
		data, scales, err = QuantizeRows(t, src, rows, cols)
		return data, scales, nil, err
	}
	if !IsRowFormat(t) {
		return nil, nil, nil, fmt.Errorf("quantize rows: %v is not a row format", t)
	}
	if rows <= 0 || cols <= 0 {
		return nil, nil, nil, fmt.Errorf("quantize rows %v: shape %dx%d", t, rows, cols)
	}
	rb, err := backend.RowBytes(t, cols)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("quantize rows: %w", err)
	}
	if rows > len(src)/cols || len(src) != rows*cols {
		return nil, nil, nil, fmt.Errorf("quantize rows %v: %dx%d needs %d values, have %d", t, rows, cols, rows*cols, len(src))
	}
	if err := CheckOutlierCols(ocols, cols); err != nil {
		return nil, nil, nil, fmt.Errorf("quantize rows %v: %w", t, err)
	}
	k := len(ocols)
	data = make([]byte, rows*rb)
	scales = make([]float32, rows)
	ow = make([]uint16, rows*k)
	z := make([]float32, cols)
	for r := 0; r < rows; r++ {
		x := src[r*cols : (r+1)*cols]
		for c, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, nil, nil, fmt.Errorf("quantize rows %v: row %d column %d is %v", t, r, c, v)
			}
		}
		copy(z, x)
		for j, c := range ocols {
			h := FP32ToFP16(x[c])
			if h&0x7c00 == 0x7c00 {
				return nil, nil, nil, fmt.Errorf("quantize rows %v: row %d outlier column %d is %v, beyond the F16 range (65504) of outlier weights", t, r, c, x[c])
			}
			ow[r*k+j] = h
			z[c] = 0
		}
		scales[r] = quantizeSplitRow(t, z, cols-k, data[r*rb:(r+1)*rb])
	}
	return data, scales, ow, nil
}

// quantizeSplitRow quantizes a row whose outlier columns were zeroed; n
// is the number of the other columns. A zero contributes nothing to
// max|w| or to the sum of |w|, and quantizes to the zero code (BINARY: +1),
// so only the mean of the absmean formats needs n instead of len(z).
func quantizeSplitRow(t backend.DType, z []float32, n int, dst []byte) float32 {
	switch t {
	case backend.Ternary:
		return quantTernaryWith(z, meanOver(z, n), dst)
	case backend.Binary:
		quantBinary(z, dst)
		return meanOver(z, n)
	}
	return quantizeRow(t, z, dst)
}

// meanOver is sum|x| / n, accumulated in float64 as absMean, 0 when n is.
func meanOver(x []float32, n int) float32 {
	if n == 0 {
		return 0
	}
	var s float64
	for _, v := range x {
		s += math.Abs(float64(v))
	}
	return float32(s / float64(n))
}

// DequantizeRowSplit decodes one split row-format row of len(dst)
// elements with scale s: the other columns as DequantizeRow, the outlier
// columns ocols from their F16 weights w16 (one per column).
func DequantizeRowSplit(t backend.DType, src []byte, s float32, ocols []int32, w16 []uint16, dst []float32) error {
	if len(w16) < len(ocols) {
		return fmt.Errorf("dequantize row %v: %d outlier columns, %d weights", t, len(ocols), len(w16))
	}
	if err := CheckOutlierCols(ocols, len(dst)); err != nil {
		return fmt.Errorf("dequantize row %v: %w", t, err)
	}
	if err := DequantizeRow(t, src, s, dst); err != nil {
		return err
	}
	for j, c := range ocols {
		dst[c] = FP16ToFP32(w16[j])
	}
	return nil
}

// absMaxExcept is max|x| over the elements not in ocols (sorted), NaN if
// any of them is.
func absMaxExcept(x []float32, ocols []int32) float32 {
	var m float32
	j := 0
	for i, v := range x {
		if j < len(ocols) && int(ocols[j]) == i {
			j++
			continue
		}
		m = max(m, abs32(v))
	}
	return m
}

// QuantizeTokenInt8Split is QuantizeTokenInt8 with the outlier channels
// ocols (sorted, in range) left out: the scale comes from max|x| over the
// other channels, and the codes of the outlier channels are 0. A token
// whose other channels are all zero (or NaN) quantizes to zeros with
// scale 0; its outlier channels still count through OutlierDot.
func QuantizeTokenInt8Split(x []float32, ocols []int32, q []int8) float32 {
	amax := absMaxExcept(x, ocols)
	id, ok := TokenInvScale(amax)
	if !ok {
		clear(q[:len(x)])
		return 0
	}
	quantTokenWith(x, id, q)
	for _, c := range ocols {
		q[c] = 0
	}
	return amax / w8Max
}

// QuantizeTokenInt8StaticSplit is QuantizeTokenInt8Static with the codes
// of the outlier channels ocols set to 0. The static scale should have
// been calibrated without those channels too.
func QuantizeTokenInt8StaticSplit(x []float32, scale float32, ocols []int32, q []int8) error {
	if err := QuantizeTokenInt8Static(x, scale, q); err != nil {
		return err
	}
	for _, c := range ocols {
		q[c] = 0
	}
	return nil
}

// OutlierDot is the float part of a split dot: the sum over j of
// x[ocols[j]] * w16[j] (F16 weights widened exactly), accumulated in
// float32 from 0 in increasing j, each product rounded to float32 before
// it is added. The explicit conversion keeps the compiler from fusing the
// multiply and add (Go may fuse them otherwise, e.g. with GOAMD64=v3 or on
// arm64), which would change the bits.
func OutlierDot(x []float32, ocols []int32, w16 []uint16) float32 {
	var o float32
	for j, c := range ocols {
		o += float32(x[c] * FP16ToFP32(w16[j]))
	}
	return o
}

// RowSplitDot is the reference dot of a split row-format weight row (n
// elements, scale wscale, outlier columns ocols with F16 weights w16) with
// one token: its int8 codes xq and scale xscale from
// QuantizeTokenInt8Split or QuantizeTokenInt8StaticSplit, and its
// unquantized values x. The int8 part RowScaleDot, then plus OutlierDot
// in float32.
func RowSplitDot(t backend.DType, n int, wrow []byte, wscale float32, xq []int8, xscale float32, x []float32, ocols []int32, w16 []uint16) (float32, error) {
	if len(x) < n || len(w16) < len(ocols) {
		return 0, fmt.Errorf("row dot %v: %d elements and %d outlier columns need %d activations and %d weights, have %d and %d", t, n, len(ocols), n, len(ocols), len(x), len(w16))
	}
	if err := CheckOutlierCols(ocols, n); err != nil {
		return 0, fmt.Errorf("row dot %v: %w", t, err)
	}
	i, err := RowVecDot(t, n, wrow, wscale, xq, xscale)
	if err != nil {
		return 0, err
	}
	return float32(i) + OutlierDot(x, ocols, w16), nil
}
