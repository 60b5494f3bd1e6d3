package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
)

// without returns the columns of a [rows][cols] matrix that are not in
// ocols, as a [rows][cols-k] matrix.
func without(x []float32, rows, cols int, ocols []int32) []float32 {
	skip := map[int]bool{}
	for _, c := range ocols {
		skip[int(c)] = true
	}
	var out []float32
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			if !skip[c] {
				out = append(out, x[r*cols+c])
			}
		}
	}
	return out
}

// TestQuantizeRowsSplit checks a split quantization against the
// unsplit quantizer run on the matrix without its outlier columns: same
// scales, same codes in the other columns; zero codes in the outlier
// columns and their weights as F16.
func TestQuantizeRowsSplit(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	const rows, cols = 9, 48
	ocols := []int32{0, 5, 6, 31, 47}
	k := len(ocols)
	x := randMatrix(rng, rows, cols)
	for r := 0; r < rows; r++ {
		for _, c := range ocols {
			x[r*cols+int(c)] *= 40 // the large weights would set the scale
		}
	}
	// The other columns, per row: what the scales and codes are made of.
	compact := without(x, rows, cols, ocols)
	for _, f := range RowFormats {
		t.Run(f.String(), func(t *testing.T) {
			data, scales, ow, err := QuantizeRowsSplit(f, x, rows, cols, ocols)
			require.NoError(t, err)
			require.Len(t, ow, rows*k)
			require.NoError(t, CheckOutliers(f, data, rows, cols, ocols, ow))
			rb, _ := backend.RowBytes(f, cols)
			codes := make([]int32, cols)
			for r := 0; r < rows; r++ {
				rest := compact[r*(cols-k) : (r+1)*(cols-k)]
				var amax, asum float64
				for _, v := range rest {
					amax = math.Max(amax, math.Abs(float64(v)))
					asum += math.Abs(float64(v))
				}
				switch f {
				case backend.W8:
					assert.Equal(t, float32(amax)/127, scales[r], "row %d", r)
				case backend.FP8:
					assert.Equal(t, float32(amax)/448, scales[r], "row %d", r)
				default:
					assert.Equal(t, float32(asum/float64(cols-k)), scales[r], "row %d", r)
				}
				require.NoError(t, RowCodes(f, cols, data[r*rb:(r+1)*rb], codes))
				i := 0
				for c := 0; c < cols; c++ {
					if j := indexOf(ocols, c); j >= 0 {
						assert.Equal(t, FP32ToFP16(x[r*cols+c]), ow[r*k+j], "row %d column %d", r, c)
						if f == backend.Binary {
							assert.Equal(t, int32(1), codes[c], "row %d column %d", r, c)
						} else {
							assert.Zero(t, codes[c], "row %d column %d", r, c)
						}
						continue
					}
					s := float64(scales[r])
					w := float64(rest[i])
					i++
					switch f {
					case backend.W8:
						require.InDelta(t, w/s, float64(codes[c]), 0.5+1e-4, "row %d column %d", r, c)
					case backend.FP8:
						// The code is the FP8 value nearest w/s (units of 2^-9).
						got := float64(codes[c]) / 512
						require.InDelta(t, w/s, got, math.Max(math.Abs(w/s)/16, 1.0/1024)*(1+1e-5), "row %d column %d", r, c)
					case backend.Ternary:
						require.Equal(t, int32(math.Max(-1, math.Min(1, math.RoundToEven(float64(float32(w)/float32(s)))))), codes[c], "row %d column %d", r, c)
					case backend.Binary:
						want := int32(1)
						if w < 0 {
							want = -1
						}
						require.Equal(t, want, codes[c], "row %d column %d", r, c)
					}
				}
			}

			// Dequantized, the outlier columns come back from F16.
			y := make([]float32, cols)
			require.NoError(t, DequantizeRowSplit(f, data[rb:2*rb], scales[1], ocols, ow[k:2*k], y))
			for j, c := range ocols {
				assert.Equal(t, FP16ToFP32(ow[k+j]), y[c])
				assert.InEpsilon(t, x[cols+int(c)], y[c], 1.0/1024)
			}
		})
	}
}

func indexOf(ocols []int32, c int) int {
	for j, v := range ocols {
		if int(v) == c {
			return j
		}
	}
	return -1
}

func TestQuantizeRowsSplitEdgeRows(t *testing.T) {
	// A row that is all outliers, and one whose other columns are zero:
	// scale 0, zero codes.
	x := []float32{3, -4, 5, 6, 7, 8, 9, 10, 0, 0, 2, 0, 0, 0, 0, -3}
	for _, f := range RowFormats {
		data, scales, ow, err := QuantizeRowsSplit(f, x, 2, 8, []int32{0, 1, 2, 3, 4, 5, 6, 7})
		require.NoError(t, err, f)
		assert.Equal(t, []float32{0, 0}, scales, f)
		assert.Equal(t, FP32ToFP16(-3), ow[15], f)
		require.NoError(t, CheckOutliers(f, data, 2, 8, []int32{0, 1, 2, 3, 4, 5, 6, 7}, ow), f)

		_, scales, _, err = QuantizeRowsSplit(f, x, 2, 8, []int32{2, 7})
		require.NoError(t, err, f)
		assert.Equal(t, float32(0), scales[1], f)
		assert.Greater(t, scales[0], float32(0), f)
	}
	// No columns: exactly QuantizeRows.
	rng := rand.New(rand.NewPCG(33, 34))
	m := randMatrix(rng, 3, 16)
	d1, s1, ow, err := QuantizeRowsSplit(backend.Ternary, m, 3, 16, nil)
	require.NoError(t, err)
	assert.Nil(t, ow)
	d2, s2, err := QuantizeRows(backend.Ternary, m, 3, 16)
	require.NoError(t, err)
	assert.Equal(t, d2, d1)
	assert.Equal(t, s2, s1)
}

func TestQuantizeRowsSplitErrors(t *testing.T) {
	x := make([]float32, 16)
	_, _, _, err := QuantizeRowsSplit(backend.W8, x, 2, 8, []int32{3, 3})
	assert.ErrorContains(t, err, "outlier column 1 is 3: want strictly increasing columns in [0, 8)")
	_, _, _, err = QuantizeRowsSplit(backend.W8, x, 2, 8, []int32{8})
	assert.ErrorContains(t, err, "outlier column 0 is 8")
	_, _, _, err = QuantizeRowsSplit(backend.Q8_0, make([]float32, 32), 1, 32, []int32{1})
	assert.ErrorContains(t, err, "not a row format")
	x[9] = 70000
	_, _, _, err = QuantizeRowsSplit(backend.W8, x, 2, 8, []int32{1})
	assert.ErrorContains(t, err, "row 1 outlier column 1 is 70000, beyond the F16 range")
	x[9] = float32(math.NaN())
	_, _, _, err = QuantizeRowsSplit(backend.W8, x, 2, 8, []int32{1})
	assert.ErrorContains(t, err, "row 1 column 1 is NaN")
}

func TestCheckOutliers(t *testing.T) {
	data := []byte{0, 5, 6, 0, 7, 9}
	require.NoError(t, CheckOutliers(backend.W8, data, 2, 3, []int32{0}, []uint16{0x3c00, 0x4000}))
	assert.ErrorContains(t, CheckOutliers(backend.W8, data, 2, 3, []int32{1}, []uint16{0x3c00, 0x4000}), "W8 row 0: outlier column 1 has a non-zero code")
	assert.ErrorContains(t, CheckOutliers(backend.W8, data, 2, 3, []int32{0}, []uint16{0x3c00}), "need 2 F16 weights, have 1")
	assert.ErrorContains(t, CheckOutliers(backend.W8, data, 2, 3, []int32{0}, []uint16{0x3c00, 0x7c00}), "outlier weight of row 1 column 0 is +Inf")
	assert.ErrorContains(t, CheckOutliers(backend.W8, data, 2, 3, []int32{0}, []uint16{0x7e00, 0}), "row 0 column 0 is NaN")
	assert.ErrorContains(t, CheckOutliers(backend.F16, data, 1, 3, []int32{0}, []uint16{0}), "apply to row formats")
	// FP8: +0 and -0 are zero codes; TERNARY: the field 1.
	require.NoError(t, CheckOutliers(backend.FP8, []byte{0x80, 0x38}, 1, 2, []int32{0}, []uint16{0}))
	assert.ErrorContains(t, CheckOutliers(backend.FP8, []byte{0x80, 0x38}, 1, 2, []int32{1}, []uint16{0}), "FP8_E4M3 row 0: outlier column 1")
	require.NoError(t, CheckOutliers(backend.Ternary, []byte{0b10_01_00_10}, 1, 4, []int32{2}, []uint16{0}))
	assert.ErrorContains(t, CheckOutliers(backend.Ternary, []byte{0b10_01_00_10}, 1, 4, []int32{1}, []uint16{0}), "outlier column 1 has a non-zero code")
	// BINARY has no zero code: any bit is accepted.
	require.NoError(t, CheckOutliers(backend.Binary, []byte{0}, 1, 8, []int32{3}, []uint16{0}))
}

// TestQuantizeTokenSplit compares split activation quantization with the
// plain quantizer run on the token without its outlier channels.
func TestQuantizeTokenSplit(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 36))
	const n = 203
	ocols := []int32{2, 3, 100, 202}
	for trial := 0; trial < 20; trial++ {
		x := randMatrix(rng, 1, n)
		for _, c := range ocols {
			x[c] = float32(rng.NormFloat64() * 60)
		}
		rest := without(x, 1, n, ocols)
		want := make([]int8, len(rest))
		ws := QuantizeTokenInt8(rest, want)

		q := make([]int8, n)
		s := QuantizeTokenInt8Split(x, ocols, q)
		require.Equal(t, ws, s)
		checkSplitCodes(t, q, want, ocols)

		const static = 0.001
		require.NoError(t, QuantizeTokenInt8Static(rest, static, want))
		require.NoError(t, QuantizeTokenInt8StaticSplit(x, static, ocols, q))
		checkSplitCodes(t, q, want, ocols)
	}
	// Only the outlier channels are non-zero: scale 0, zero codes.
	x := make([]float32, 8)
	x[3] = 100
	q := []int8{1, 1, 1, 1, 1, 1, 1, 1}
	assert.Equal(t, float32(0), QuantizeTokenInt8Split(x, []int32{3}, q))
	assert.Equal(t, make([]int8, 8), q)
	// A NaN in an outlier channel leaves the int8 part alone.
	x[3], x[5] = float32(math.NaN()), 127
	assert.Equal(t, float32(1), QuantizeTokenInt8Split(x, []int32{3}, q))
	assert.Equal(t, []int8{0, 0, 0, 0, 0, 127, 0, 0}, q)
	assert.Error(t, QuantizeTokenInt8StaticSplit(x, 0, []int32{3}, q))
}

func checkSplitCodes(t *testing.T, q, rest []int8, ocols []int32) {
	t.Helper()
	i := 0
	for c, v := range q {
		if indexOf(ocols, c) >= 0 {
			require.Zero(t, v, "outlier channel %d", c)
			continue
		}
		require.Equal(t, rest[i], v, "channel %d", c)
		i++
	}
}

// TestOutlierDotOrder pins the documented float order with sums whose
// bits depend on it: sequential float32 accumulation from 0, each product
// rounded before the addition.
func TestOutlierDotOrder(t *testing.T) {
	one := FP32ToFP16(1)
	// 1e8 + 1 rounds back to 1e8 in float32, so in order the 1 is lost.
	x := []float32{1e8, 1, -1e8}
	assert.Equal(t, float32(0), OutlierDot(x, []int32{0, 1, 2}, []uint16{one, one, one}))
	assert.Equal(t, float32(1), OutlierDot(x, []int32{0, 2, 1}, []uint16{one, one, one}))
	// (1+2^-23)*(1+2^-10) needs 34 bits: rounded to float32 it cancels the
	// previous term exactly; a fused multiply-add would leave 2^-33.
	a := float32(1 + 1.0/(1<<23))
	b := FP32ToFP16(1 + 1.0/(1<<10))
	p := a * FP16ToFP32(b)
	x = []float32{-p, a}
	assert.Equal(t, float32(0), OutlierDot(x, []int32{0, 1}, []uint16{one, b}))
	// Weights in F16: a value that is not one rounds.
	assert.Equal(t, float32(2*0.0999755859375), OutlierDot([]float32{2}, []int32{0}, []uint16{FP32ToFP16(0.1)}))
}

// TestRowSplitDot: the split dot is close to the float product of the
// stored weights (codes times scale, F16 outlier weights) with the
// unquantized token, within half an activation step per element; on a
// token with large outlier channels it is far closer than the unsplit
// dot.
func TestRowSplitDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(37, 38))
	const n = 256
	ocols := []int32{7, 64, 65, 200}
	for _, f := range RowFormats {
		w := randMatrix(rng, 1, n)
		x := randMatrix(rng, 1, n)
		for _, c := range ocols {
			x[c] = 30 * float32(1+rng.Float64())
		}
		data, scales, ow, err := QuantizeRowsSplit(f, w, 1, n, ocols)
		require.NoError(t, err)
		deq := make([]float32, n)
		require.NoError(t, DequantizeRowSplit(f, data, scales[0], ocols, ow, deq))
		xq := make([]int8, n)
		xs := QuantizeTokenInt8Split(x, ocols, xq)
		got, err := RowSplitDot(f, n, data, scales[0], xq, xs, x, ocols, ow)
		require.NoError(t, err)
		var exact, bound float64
		for i, v := range deq {
			exact += float64(v) * float64(x[i])
			if indexOf(ocols, i) < 0 {
				bound += math.Abs(float64(v)) * float64(xs) / 2
			}
		}
		require.InDelta(t, exact, float64(got), bound*(1+1e-5)+1e-5*math.Abs(exact), f)

		// Unsplit: the same weights quantized whole, the token quantized
		// with the outliers in its range.
		d2, s2, err := QuantizeRows(f, w, 1, n)
		require.NoError(t, err)
		xs2 := QuantizeTokenInt8(x, xq)
		plain, err := RowVecDot(f, n, d2, s2[0], xq, xs2)
		require.NoError(t, err)
		if f == backend.W8 || f == backend.FP8 {
			// Against the true weights, the split is the better product.
			var truth float64
			for i, v := range w {
				truth += float64(v) * float64(x[i])
			}
			assert.Less(t, math.Abs(float64(got)-truth), math.Abs(float64(plain)-truth), f)
		}
	}
	_, err := RowSplitDot(backend.W8, 4, make([]byte, 4), 1, make([]int8, 4), 1, make([]float32, 4), []int32{4}, []uint16{0})
	assert.ErrorContains(t, err, "outlier column 0 is 4")
}
