package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
)

func randMatrix(rng *rand.Rand, rows, cols int) []float32 {
	x := make([]float32, rows*cols)
	for i := range x {
		// Gaussian-ish with a few outliers, as real weights.
		x[i] = float32(rng.NormFloat64() * 0.05)
		if rng.IntN(200) == 0 {
			x[i] *= 10
		}
	}
	return x
}

func TestW8ClosedForm(t *testing.T) {
	// amax 127 makes the inverse scale exactly 1, so the codes are the
	// values rounded, halfway cases away from zero.
	x := []float32{127, 0.5, -0.5, 1.5, 2.5, -2.5, 3.49, -127, 0}
	data, scales, err := QuantizeRows(backend.W8, x, 1, len(x))
	require.NoError(t, err)
	assert.Equal(t, []float32{1}, scales)
	want := []int8{127, 1, -1, 2, 3, -3, 3, -127, 0}
	for i, w := range want {
		assert.Equal(t, w, int8(data[i]), "element %d (%v)", i, x[i])
	}
}

func TestRowFormatsRoundTripBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const rows, cols = 7, 264
	x := randMatrix(rng, rows, cols)
	for _, f := range RowFormats {
		t.Run(f.String(), func(t *testing.T) {
			data, scales, err := QuantizeRows(f, x, rows, cols)
			require.NoError(t, err)
			rb, _ := backend.RowBytes(f, cols)
			require.Len(t, data, rows*rb)
			require.Len(t, scales, rows)
			y, err := DequantizeRowFormat(f, data, scales, rows, cols)
			require.NoError(t, err)
			for r := 0; r < rows; r++ {
				row := x[r*cols : (r+1)*cols]
				var amax, asum float64
				for _, v := range row {
					amax = math.Max(amax, math.Abs(float64(v)))
					asum += math.Abs(float64(v))
				}
				mean := asum / cols
				switch f {
				case backend.W8:
					assert.InDelta(t, amax/127, scales[r], amax*1e-7)
				case backend.FP8:
					assert.InDelta(t, amax/448, scales[r], amax*1e-9)
				default:
					assert.InDelta(t, mean, scales[r], mean*1e-6)
				}
				s := float64(scales[r])
				for c, v := range row {
					got, w := float64(y[r*cols+c]), float64(v)
					switch f {
					case backend.W8:
						// Half a step, plus float rounding of w*127/amax.
						require.InDelta(t, w, got, s/2*(1+1e-5), "row %d col %d", r, c)
					case backend.FP8:
						// Half an ulp of a 3-bit mantissa (2^-4 relative), or
						// half the subnormal step 2^-10 in scaled units.
						bound := math.Max(math.Abs(w)/16, s/1024) * (1 + 1e-5)
						require.InDelta(t, w, got, bound, "row %d col %d", r, c)
					case backend.Ternary:
						q := math.RoundToEven(w / s)
						q = math.Max(-1, math.Min(1, q))
						require.Equal(t, q*s, got, "row %d col %d", r, c)
					case backend.Binary:
						q := 1.0
						if w < 0 {
							q = -1
						}
						require.Equal(t, float64(float32(q*s)), got, "row %d col %d", r, c)
					}
				}
			}
		})
	}
}

func TestTernaryAndBinaryPacking(t *testing.T) {
	// mean|x| = 1: the codes are round-half-even of x, clamped.
	x := []float32{2, -2, 0.5, -0.5, 0.75, -0.25, 1.5, -0.5}
	data, scales, err := QuantizeRows(backend.Ternary, x, 1, len(x))
	require.NoError(t, err)
	require.Equal(t, []float32{1}, scales)
	codes := []int{1, -1, 0, 0, 1, 0, 1, 0} // 0.5 -> 0 (even), 1.5 -> 2 -> clamped 1
	require.Len(t, data, 2)
	for k, q := range codes {
		field := int(data[k/4]>>(2*(k%4))) & 3
		assert.Equal(t, q+1, field, "element %d", k)
	}

	xb := []float32{1, -2, 0, -0.001, 3, 4, -5, 6, -1, 1, 1, 1, 1, 1, 1, -1}
	data, scales, err = QuantizeRows(backend.Binary, xb, 1, len(xb))
	require.NoError(t, err)
	require.Len(t, data, 2)
	assert.Equal(t, byte(0b10110101), data[0])
	assert.Equal(t, byte(0b01111110), data[1])
	assert.InDelta(t, 29.001/16, scales[0], 1e-6)
}

func TestRowFormatsZeroRow(t *testing.T) {
	x := make([]float32, 16)
	for _, f := range RowFormats {
		data, scales, err := QuantizeRows(f, x, 1, 16)
		require.NoError(t, err, f)
		assert.Equal(t, []float32{0}, scales, f)
		y, err := DequantizeRowFormat(f, data, scales, 1, 16)
		require.NoError(t, err, f)
		assert.Equal(t, x, y, f)
	}
}

func TestRowFormatsTinyRowsKeepTheirShape(t *testing.T) {
	// Weights so small that 127/max|w| overflows float32.
	x := []float32{1e-39, -2e-39, 0, 5e-40}
	data, scales, err := QuantizeRows(backend.W8, x, 1, 4)
	require.NoError(t, err)
	assert.Equal(t, []int8{64, -127, 0, 32}, []int8{int8(data[0]), int8(data[1]), int8(data[2]), int8(data[3])})
	assert.Greater(t, scales[0], float32(0))
	data, _, err = QuantizeRows(backend.FP8, x, 1, 4)
	require.NoError(t, err)
	assert.Equal(t, float32(-448), FP8ToFP32(data[1]))
	assert.Equal(t, float32(224), FP8ToFP32(data[0]))
}

func TestRowFormatsErrors(t *testing.T) {
	x := make([]float32, 12)
	_, _, err := QuantizeRows(backend.Q8_0, x, 1, 12)
	assert.ErrorContains(t, err, "not a row format")
	_, _, err = QuantizeRows(backend.Binary, x, 1, 12)
	assert.ErrorContains(t, err, "multiple of the block size 8")
	_, _, err = QuantizeRows(backend.Ternary, x, 1, 6)
	assert.ErrorContains(t, err, "multiple of the block size 4")
	_, _, err = QuantizeRows(backend.W8, x, 2, 7)
	assert.ErrorContains(t, err, "needs 14 values, have 12")
	_, _, err = QuantizeRows(backend.W8, x, 0, 12)
	assert.Error(t, err)
	x[5] = float32(math.NaN())
	_, _, err = QuantizeRows(backend.FP8, x, 2, 6)
	assert.ErrorContains(t, err, "row 0 column 5 is NaN")
	x[5] = float32(math.Inf(-1))
	_, _, err = QuantizeRows(backend.W8, x, 2, 6)
	assert.ErrorContains(t, err, "row 0 column 5 is -Inf")

	_, err = DequantizeRowFormat(backend.W8, make([]byte, 10), []float32{1, 1}, 2, 6)
	assert.ErrorContains(t, err, "needs 12 bytes")
	_, err = DequantizeRowFormat(backend.W8, make([]byte, 12), []float32{1}, 2, 6)
	assert.ErrorContains(t, err, "2 scales")
	_, err = DequantizeRowFormat(backend.Ternary, []byte{0x55, 0x55, 0x55, 0x5d}, []float32{1, 1}, 2, 8)
	assert.ErrorContains(t, err, "TERNARY row 1 element 5 has the invalid code 3")
}

func TestCheckRowData(t *testing.T) {
	data := []byte{0x55, 0x55, 0x55, 0x55, 0x55, 0x55}
	require.NoError(t, CheckRowData(backend.Ternary, data, 3, 8))
	data[4] = 0x95 | 0x30 // element 2 of byte 4 is 3
	assert.ErrorContains(t, CheckRowData(backend.Ternary, data, 3, 8), "row 2 element 2 ")
	require.NoError(t, CheckRowData(backend.W8, []byte{0x80, 0xff}, 1, 2))
	require.NoError(t, CheckRowData(backend.Binary, []byte{0xff}, 1, 8))
	require.NoError(t, CheckRowData(backend.FP8, []byte{0x7e, 0xfe, 0x80, 0x00}, 2, 2))
	assert.ErrorContains(t, CheckRowData(backend.FP8, []byte{0x7e, 0xfe, 0x80, 0xff}, 2, 2), "FP8_E4M3 row 1 element 1 is NaN (code 0xff)")
	assert.ErrorContains(t, CheckRowData(backend.FP8, []byte{0x7f}, 1, 1), "row 0 element 0 is NaN")
	// Bytes past the tensor are not looked at.
	require.NoError(t, CheckRowData(backend.FP8, []byte{0x01, 0x7f}, 1, 1))
}

func TestQuantizeTokenInt8(t *testing.T) {
	// amax 127: inverse scale exactly 1, halfway cases go to even.
	x := []float32{127, 0.5, 1.5, 2.5, -0.5, -1.5, -126.6, 3.5}
	q := make([]int8, len(x))
	s := QuantizeTokenInt8(x, q)
	assert.Equal(t, float32(1), s)
	assert.Equal(t, []int8{127, 0, 2, 2, 0, -2, -127, 4}, q)

	// Static: scale 0.5 (inverse 2, exact), saturation beyond 63.5.
	x = []float32{100, -100, 0.25, 0.75, 1.25, -63.25, 63.75, 63.5}
	require.NoError(t, QuantizeTokenInt8Static(x, 0.5, q))
	assert.Equal(t, []int8{127, -127, 0, 2, 2, -126, 127, 127}, q)
	assert.Error(t, QuantizeTokenInt8Static(x, 0, q))
	assert.Error(t, QuantizeTokenInt8Static(x, float32(math.Inf(1)), q))
	assert.Error(t, QuantizeTokenInt8Static(x, float32(math.NaN()), q))
	assert.Error(t, QuantizeTokenInt8Static(x, 1e-45, q))

	// Zero, NaN and vanishing rows quantize to zero with scale 0.
	for _, z := range [][]float32{{0, 0, 0}, {1, float32(math.NaN()), 2}, {1e-40, -1e-41, 0}} {
		q := []int8{5, 5, 5}
		assert.Equal(t, float32(0), QuantizeTokenInt8(z, q), "%v", z)
		assert.Equal(t, []int8{0, 0, 0}, q, "%v", z)
	}

	// Random rows: the error is at most half a step and the largest
	// element maps to ±127.
	rng := rand.New(rand.NewPCG(3, 4))
	x = randMatrix(rng, 1, 999)
	q = make([]int8, len(x))
	s = QuantizeTokenInt8(x, q)
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	assert.Equal(t, amax/127, s)
	hit := false
	for i, v := range x {
		require.InDelta(t, v, float32(q[i])*s, float64(s)/2*(1+1e-5), "element %d", i)
		hit = hit || (q[i] == 127 || q[i] == -127) && float32(math.Abs(float64(v))) == amax
	}
	assert.True(t, hit, "the largest element maps to ±127")
}

func TestRowVecDotExactAgainstDequantized(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 296
	w := randMatrix(rng, 1, n)
	x := randMatrix(rng, 1, n)
	xq := make([]int8, n)
	xs := QuantizeTokenInt8(x, xq)
	for _, f := range RowFormats {
		data, scales, err := QuantizeRows(f, w, 1, n)
		require.NoError(t, err)
		// Independent integer path: dequantize with scale 1 (W8, ternary,
		// binary give the codes, FP8 the values, times 512 the units).
		codes, err := DequantizeRowFormat(f, data, []float32{1}, 1, n)
		require.NoError(t, err)
		var want int64
		unit := 1.0
		if f == backend.FP8 {
			unit = 512
		}
		for i, c := range codes {
			want += int64(float64(c)*unit) * int64(xq[i])
		}
		got, err := RowIntSum(f, n, data, xq)
		require.NoError(t, err)
		assert.Equal(t, want, got, f)

		dot, err := RowVecDot(f, n, data, scales[0], xq, xs)
		require.NoError(t, err)
		var fdot float64
		deq, _ := DequantizeRowFormat(f, data, scales, 1, n)
		for i, v := range deq {
			fdot += float64(v) * float64(xq[i]) * float64(xs)
		}
		assert.InEpsilon(t, fdot, dot, 1e-5, f)
	}
	_, err := RowVecDot(backend.Q8_0, 32, make([]byte, 34), 1, make([]int8, 32), 1)
	assert.Error(t, err)
	_, err = RowIntSum(backend.W8, 8, make([]byte, 7), make([]int8, 8))
	assert.ErrorContains(t, err, "need 8 weight bytes")
}

func TestRowCodes(t *testing.T) {
	dst := make([]int32, 8)
	require.NoError(t, RowCodes(backend.W8, 3, []byte{0x80, 0x7f, 0xff}, dst))
	assert.Equal(t, []int32{-128, 127, -1}, dst[:3])
	require.NoError(t, RowCodes(backend.Binary, 8, []byte{0b00000101}, dst))
	assert.Equal(t, []int32{1, -1, 1, -1, -1, -1, -1, -1}, dst)
	require.NoError(t, RowCodes(backend.FP8, 3, []byte{0x38, 0xfe, 0x01}, dst))
	assert.Equal(t, []int32{512, -229376, 1}, dst[:3])
	assert.ErrorContains(t, RowCodes(backend.FP8, 1, []byte{0xff}, dst), "NaN")
	assert.ErrorContains(t, RowCodes(backend.Ternary, 4, []byte{0x35}, dst), "element 2 has the invalid code 3")
}
