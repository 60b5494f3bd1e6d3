package rowkernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/fallback/kernels"
	"qinfer/host/backend"
	"qinfer/host/quant"
)

func randFloats(rng *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * scale)
		if rng.IntN(97) == 0 {
			x[i] *= 20 // outliers, as real activations have
		}
	}
	return x
}

// refActs quantizes with the host/quant reference.
func refActs(t testing.TB, x []float32, stride, ntok, cols int, static float32) ([]int8, []float32) {
	q := make([]int8, ntok*cols)
	s := make([]float32, ntok)
	for i := 0; i < ntok; i++ {
		row := x[i*stride : i*stride+cols]
		if static != 0 {
			require.NoError(t, quant.QuantizeTokenInt8Static(row, static, q[i*cols:(i+1)*cols]))
			s[i] = static
		} else {
			s[i] = quant.QuantizeTokenInt8(row, q[i*cols:(i+1)*cols])
		}
	}
	return q, s
}

func TestQuantizeActsMatchesReference(t *testing.T) {
	p := kernels.NewPool(3)
	defer p.Close()
	featureCases(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		var a Acts
		for _, cols := range []int{1, 7, 8, 31, 32, 33, 95, 256, 1000} {
			for _, ntok := range []int{1, 2, 5} {
				for _, static := range []float32{0, 0.02, 0.5} {
					stride := cols + rng.IntN(5)
					x := randFloats(rng, (ntok-1)*stride+cols, 1)
					require.NoError(t, QuantizeActs(p, x, stride, ntok, cols, static, &a))
					q, s := refActs(t, x, stride, ntok, cols, static)
					require.Equal(t, q, a.q, "cols %d ntok %d static %v", cols, ntok, static)
					require.Equal(t, s, a.scales, "cols %d ntok %d static %v", cols, ntok, static)
					assert.Equal(t, ntok, a.Tokens())
					assert.Equal(t, cols, a.Cols())
					assert.Equal(t, q[:cols], a.Row(0))
					assert.Equal(t, s[ntok-1], a.Scale(ntok-1))
				}
			}
		}
		// Special rows: zeros, a NaN, infinities, halfway cases (amax 127
		// makes the inverse scale 1), a vanishing row.
		nan, inf := float32(math.NaN()), float32(math.Inf(1))
		rows := [][]float32{
			make([]float32, 40),
			append([]float32{1, nan}, make([]float32, 38)...),
			append([]float32{1, -inf}, make([]float32, 38)...),
			append([]float32{127, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5}, randFloats(rng, 32, 10)...),
			append([]float32{1e-39, -2e-39}, make([]float32, 38)...),
		}
		for i, row := range rows {
			for _, static := range []float32{0, 0.25} {
				require.NoError(t, QuantizeActs(p, row, 40, 1, 40, static, &a))
				q, s := refActs(t, row, 40, 1, 40, static)
				require.Equal(t, q, a.q, "special row %d static %v", i, static)
				require.Equal(t, math.Float32bits(s[0]), math.Float32bits(a.scales[0]), "special row %d static %v", i, static)
			}
		}
	})
}

// testMatrix quantizes a random rows x cols matrix to typ.
func testMatrix(t testing.TB, rng *rand.Rand, typ backend.DType, rows, cols int, act float32) (*Matrix, *backend.Weight) {
	x := randFloats(rng, rows*cols, 0.05)
	data, scales, err := quant.QuantizeRows(typ, x, rows, cols)
	require.NoError(t, err)
	w := &backend.Weight{Name: "w", Type: typ, Rows: rows, Cols: cols, Data: data, RowScales: scales, ActScale: act}
	m, err := NewMatrix(w)
	require.NoError(t, err)
	return m, w
}

// checkMatMul runs MatMul and compares every output bit for bit with
// quant.RowVecDot on the reference activations.
func checkMatMul(t *testing.T, p *kernels.Pool, m *Matrix, w *backend.Weight, x []float32, stride, ntok int) {
	t.Helper()
	var a Acts
	require.NoError(t, QuantizeActs(p, x, stride, ntok, w.Cols, m.ActScale(), &a))
	ldd := w.Rows + 3
	dst := make([]float32, (ntok-1)*ldd+w.Rows+1)
	const canary = float32(-12345)
	for i := range dst {
		dst[i] = canary
	}
	require.NoError(t, MatMul(p, m, &a, dst, ldd))
	q, s := refActs(t, x, stride, ntok, w.Cols, w.ActScale)
	rb, _ := backend.RowBytes(w.Type, w.Cols)
	for tok := 0; tok < ntok; tok++ {
		for r := 0; r < w.Rows; r++ {
			want, err := quant.RowVecDot(w.Type, w.Cols, w.Data[r*rb:(r+1)*rb], w.RowScales[r], q[tok*w.Cols:(tok+1)*w.Cols], s[tok])
			require.NoError(t, err)
			got := dst[tok*ldd+r]
			if math.Float32bits(want) != math.Float32bits(got) {
				require.Failf(t, "output differs", "%v %dx%d token %d row %d: got %v want %v", w.Type, w.Rows, w.Cols, tok, r, got, want)
			}
		}
		for r := w.Rows; r < ldd && tok*ldd+r < len(dst); r++ {
			require.Equal(t, canary, dst[tok*ldd+r], "padding after token %d row %d was written", tok, r)
		}
	}
}

func TestMatMulMatchesReference(t *testing.T) {
	p := kernels.NewPool(3)
	defer p.Close()
	featureCases(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for _, typ := range quant.RowFormats {
			colsList := []int{8, 24, 64, 72, 136, 1000}
			if typ == backend.W8 || typ == backend.FP8 {
				colsList = append(colsList, 37, 101) // rows not a multiple of 4 bytes
			}
			for _, cols := range colsList {
				for _, rows := range []int{1, 3, 4, 5, 13, 16, 35} {
					// 1 to 7 tokens run the 4-row kernels, 8 and more the
					// 16-token tiles (padded when partial).
					for _, ntok := range []int{1, 2, 3, 5, 8, 17} {
						name := fmt.Sprintf("%v/%dx%d/%d", typ, rows, cols, ntok)
						var act float32
						if rng.IntN(3) == 0 {
							act = 0.01 // static: some values saturate
						}
						m, w := testMatrix(t, rng, typ, rows, cols, act)
						stride := cols + rng.IntN(3)
						x := randFloats(rng, (ntok-1)*stride+cols, 0.3)
						t.Run(name, func(t *testing.T) { checkMatMul(t, p, m, w, x, stride, ntok) })
					}
				}
			}
		}
	})
}

// TestMatMulExtremeCodes fills W8 rows with -128 and ±127 (a file may hold
// -128 though the quantizer never writes it) against saturated
// activations: the largest sums the int32 kernels see.
func TestMatMulExtremeCodes(t *testing.T) {
	p := kernels.NewPool(2)
	defer p.Close()
	featureCases(t, func(t *testing.T) {
		const rows, cols = 6, 4160
		data := make([]byte, rows*cols)
		for r := 0; r < rows; r++ {
			for k := 0; k < cols; k++ {
				switch r % 3 {
				case 0:
					data[r*cols+k] = 0x80 // -128
				case 1:
					data[r*cols+k] = 0x7f
				default:
					data[r*cols+k] = byte(int8(-127 + 254*(k%2)))
				}
			}
		}
		scales := []float32{1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3}
		w := &backend.Weight{Name: "extreme", Type: backend.W8, Rows: rows, Cols: cols, Data: data, RowScales: scales}
		m, err := NewMatrix(w)
		require.NoError(t, err)
		x := make([]float32, 3*cols)
		for i := range x {
			x[i] = -1
			if i >= cols && i%5 == 0 {
				x[i] = 1
			}
		}
		checkMatMul(t, p, m, w, x, cols, 3)
	})
}

func TestMatMulStaticScaleUsed(t *testing.T) {
	p := kernels.NewPool(1)
	defer p.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	// Weights and inputs of ones: dynamic quantization is exact (q = 127,
	// scale 1/127), a static scale of 0.5 makes every input code 2.
	data, scales, err := quant.QuantizeRows(backend.W8, ones(64), 1, 64)
	require.NoError(t, err)
	for _, c := range []struct {
		act  float32
		want float32
	}{{0, 64}, {0.5, 64 * 127 * (1.0 / 127) * 2 * 0.5}} {
		m, err := NewMatrix(&backend.Weight{Name: "w", Type: backend.W8, Rows: 1, Cols: 64, Data: data, RowScales: scales, ActScale: c.act})
		require.NoError(t, err)
		var a Acts
		require.NoError(t, QuantizeActs(p, ones(64), 64, 1, 64, m.ActScale(), &a))
		dst := make([]float32, 1)
		require.NoError(t, MatMul(p, m, &a, dst, 1))
		assert.InEpsilon(t, c.want, dst[0], 1e-6, "act scale %v", c.act)
	}
	_ = rng
}

func ones(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = 1
	}
	return x
}

// TestMatMulParallel runs large enough shapes that the work is split over
// all threads (run with -race).
func TestMatMulParallel(t *testing.T) {
	p := kernels.NewPool(4)
	defer p.Close()
	rng := rand.New(rand.NewPCG(7, 8))
	for _, typ := range quant.RowFormats {
		m, w := testMatrix(t, rng, typ, 203, 256, 0)
		x := randFloats(rng, 9*256, 1)
		checkMatMul(t, p, m, w, x, 256, 9)
	}
}

func TestErrors(t *testing.T) {
	p := kernels.NewPool(1)
	defer p.Close()
	_, err := NewMatrix(&backend.Weight{Name: "q", Type: backend.Q8_0, Rows: 1, Cols: 32, Data: make([]byte, 34)})
	assert.ErrorContains(t, err, "weight q: Q8_0 is not a row format")
	_, err = NewMatrix(&backend.Weight{Name: "t", Type: backend.Ternary, Rows: 1, Cols: 4, Data: []byte{0xc0}, RowScales: []float32{1}})
	assert.ErrorContains(t, err, "weight t: TERNARY row 0 element 3 has the invalid code 3")
	_, err = NewMatrix(&backend.Weight{Name: "f", Type: backend.FP8, Rows: 1, Cols: 2, Data: []byte{0x38, 0xff}, RowScales: []float32{1}})
	assert.ErrorContains(t, err, "weight f: FP8_E4M3 row 0 element 1 is NaN")
	_, err = NewMatrix(&backend.Weight{Name: "s", Type: backend.W8, Rows: 2, Cols: 4, Data: make([]byte, 8), RowScales: []float32{1}})
	assert.ErrorContains(t, err, "needs 2 row scales")
	_, err = NewMatrix(&backend.Weight{Name: "a", Type: backend.W8, Rows: 1, Cols: 4, Data: make([]byte, 4), RowScales: []float32{1}, ActScale: -1})
	assert.ErrorContains(t, err, "weight a: static activation scale -1")
	big := quant.MaxRowCols + 8
	_, err = NewMatrix(&backend.Weight{Name: "b", Type: backend.Binary, Rows: 1, Cols: big, Data: make([]byte, big/8), RowScales: []float32{1}})
	assert.ErrorContains(t, err, "at most 131072")

	var a Acts
	assert.ErrorContains(t, QuantizeActs(p, make([]float32, 10), 5, 2, 6, 0, &a), "stride 5")
	assert.ErrorContains(t, QuantizeActs(p, make([]float32, 10), 6, 2, 6, 0, &a), "need 12 floats, have 10")
	assert.ErrorContains(t, QuantizeActs(p, make([]float32, 12), 6, 2, 6, float32(math.NaN()), &a), "static activation scale NaN")

	rng := rand.New(rand.NewPCG(9, 10))
	m, _ := testMatrix(t, rng, backend.W8, 4, 16, 0)
	require.NoError(t, QuantizeActs(p, make([]float32, 34), 17, 2, 17, 0, &a))
	assert.ErrorContains(t, MatMul(p, m, &a, make([]float32, 8), 4), "2 activation rows of 17")
	require.NoError(t, QuantizeActs(p, make([]float32, 32), 16, 2, 16, 0, &a))
	assert.ErrorContains(t, MatMul(p, m, &a, make([]float32, 8), 3), "output stride 3 below 4 rows")
	assert.ErrorContains(t, MatMul(p, m, &a, make([]float32, 7), 4), "need 8 floats, have 7")
	assert.Error(t, MatMul(nil, m, &a, make([]float32, 8), 4))
}

func TestFP8Digits(t *testing.T) {
	for c, u := range quant.FP8Units {
		d := fp8Digits[c]
		require.Equal(t, int64(u), int64(d[0])+256*int64(d[1])+65536*int64(d[2]), "code %#02x", c)
	}
	// The extremes use all three digits.
	assert.NotZero(t, fp8Digits[0x7e][2])
	assert.NotZero(t, fp8Digits[0xfe][2])
}
