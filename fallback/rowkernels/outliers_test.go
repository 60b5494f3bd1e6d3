package rowkernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/fallback/kernels"
	"qinfer/host/backend"
	"qinfer/host/quant"
)

// randCols picks k distinct columns of [0, cols), sorted, sometimes the
// first and last and runs of neighbours.
func randCols(rng *rand.Rand, cols, k int) []int32 {
	k = min(k, cols)
	seen := map[int32]bool{}
	var out []int32
	add := func(c int32) {
		if !seen[c] && len(out) < k {
			seen[c] = true
			out = append(out, c)
		}
	}
	if rng.IntN(2) == 0 {
		add(0)
		add(int32(cols - 1))
	}
	for len(out) < k {
		c := int32(rng.IntN(cols))
		add(c)
		if c+1 < int32(cols) && rng.IntN(3) == 0 {
			add(c + 1)
		}
	}
	slices.Sort(out)
	return out
}

// withOutliers scales the given channels of every token up, as outlier
// channels are.
func withOutliers(rng *rand.Rand, x []float32, stride, ntok int, ocols []int32) {
	for t := 0; t < ntok; t++ {
		for _, c := range ocols {
			x[t*stride+int(c)] *= float32(20 + 40*rng.Float64())
		}
	}
}

// refSplitActs quantizes with the host/quant reference.
func refSplitActs(t testing.TB, x []float32, stride, ntok, cols int, static float32, ocols []int32) ([]int8, []float32) {
	q := make([]int8, ntok*cols)
	s := make([]float32, ntok)
	for i := 0; i < ntok; i++ {
		row := x[i*stride : i*stride+cols]
		if static != 0 {
			require.NoError(t, quant.QuantizeTokenInt8StaticSplit(row, static, ocols, q[i*cols:(i+1)*cols]))
			s[i] = static
		} else {
			s[i] = quant.QuantizeTokenInt8Split(row, ocols, q[i*cols:(i+1)*cols])
		}
	}
	return q, s
}

func TestQuantizeActsSplitMatchesReference(t *testing.T) {
	p := kernels.NewPool(3)
	defer p.Close()
	featureCases(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(41, 42))
		var a Acts
		for _, cols := range []int{1, 9, 31, 32, 33, 95, 256, 1000} {
			for _, ntok := range []int{1, 3, 17} {
				for _, static := range []float32{0, 0.02} {
					for _, k := range []int{1, 2, 7, cols} {
						ocols := randCols(rng, cols, k)
						stride := cols + rng.IntN(5)
						x := randFloats(rng, (ntok-1)*stride+cols, 1)
						withOutliers(rng, x, stride, ntok, ocols)
						require.NoError(t, QuantizeActsSplit(p, x, stride, ntok, cols, static, ocols, &a))
						q, s := refSplitActs(t, x, stride, ntok, cols, static, ocols)
						name := fmt.Sprintf("cols %d ntok %d static %v columns %v", cols, ntok, static, ocols)
						require.Equal(t, q, a.q, name)
						require.Equal(t, s, a.scales, name)
						for tok := 0; tok < ntok; tok++ {
							for j, c := range ocols {
								require.Equal(t, x[tok*stride+int(c)], a.xo[tok*len(ocols)+j], name)
							}
						}
					}
				}
			}
		}
		// A NaN in an outlier channel does not reach the int8 part; one in
		// another channel zeroes the token, as in the reference.
		x := randFloats(rng, 64, 1)
		x[10] = float32(math.NaN())
		for _, oc := range [][]int32{{10}, {11}} {
			require.NoError(t, QuantizeActsSplit(p, x, 64, 1, 64, 0, oc, &a))
			q, s := refSplitActs(t, x, 64, 1, 64, 0, oc)
			require.Equal(t, q, a.q)
			require.Equal(t, math.Float32bits(s[0]), math.Float32bits(a.scales[0]))
		}
	})
}

// splitMatrix quantizes a random rows x cols matrix to typ with outlier
// columns ocols (whose weights are made larger, as outlier rows of real
// weights tend to be).
func splitMatrix(t testing.TB, rng *rand.Rand, typ backend.DType, rows, cols int, ocols []int32, act float32) (*Matrix, *backend.Weight) {
	x := randFloats(rng, rows*cols, 0.05)
	for r := 0; r < rows; r++ {
		for _, c := range ocols {
			x[r*cols+int(c)] *= 3
		}
	}
	data, scales, ow, err := quant.QuantizeRowsSplit(typ, x, rows, cols, ocols)
	require.NoError(t, err)
	w := &backend.Weight{Name: "w", Type: typ, Rows: rows, Cols: cols, Data: data, RowScales: scales, ActScale: act, OutlierCols: ocols, OutlierW: ow}
	m, err := NewMatrix(w)
	require.NoError(t, err)
	return m, w
}

// checkSplitMatMul runs MatMul on a split weight and compares every
// output bit for bit with quant.RowSplitDot.
func checkSplitMatMul(t *testing.T, p *kernels.Pool, m *Matrix, w *backend.Weight, x []float32, stride, ntok int) {
	t.Helper()
	var a Acts
	require.NoError(t, QuantizeActsSplit(p, x, stride, ntok, w.Cols, m.ActScale(), m.OutlierCols(), &a))
	ldd := w.Rows + 2
	dst := make([]float32, (ntok-1)*ldd+w.Rows+1)
	const canary = float32(-12345)
	for i := range dst {
		dst[i] = canary
	}
	require.NoError(t, MatMul(p, m, &a, dst, ldd))
	q, s := refSplitActs(t, x, stride, ntok, w.Cols, w.ActScale, w.OutlierCols)
	rb, _ := backend.RowBytes(w.Type, w.Cols)
	k := len(w.OutlierCols)
	for tok := 0; tok < ntok; tok++ {
		xr := x[tok*stride : tok*stride+w.Cols]
		for r := 0; r < w.Rows; r++ {
			want, err := quant.RowSplitDot(w.Type, w.Cols, w.Data[r*rb:(r+1)*rb], w.RowScales[r], q[tok*w.Cols:(tok+1)*w.Cols], s[tok],
				xr, w.OutlierCols, w.OutlierW[r*k:(r+1)*k])
			require.NoError(t, err)
			got := dst[tok*ldd+r]
			if math.Float32bits(want) != math.Float32bits(got) {
				require.Failf(t, "output differs", "%v %dx%d with %d outlier columns, token %d row %d: got %v want %v", w.Type, w.Rows, w.Cols, k, tok, r, got, want)
			}
		}
		for r := w.Rows; r < ldd && tok*ldd+r < len(dst); r++ {
			require.Equal(t, canary, dst[tok*ldd+r], "padding after token %d row %d was written", tok, r)
		}
	}
}

// TestMatMulSplitMatchesReference covers every row format on every
// kernel path (feature switches; 1 to 7 tokens on the 4-row kernels, 8
// and more on the 16-token tiles), ragged shapes, 1 to 33 tokens, static
// and dynamic scales.
func TestMatMulSplitMatchesReference(t *testing.T) {
	p := kernels.NewPool(3)
	defer p.Close()
	featureCases(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(43, 44))
		for _, typ := range quant.RowFormats {
			colsList := []int{8, 72, 136}
			if typ == backend.W8 || typ == backend.FP8 {
				colsList = append(colsList, 37, 101)
			}
			for _, cols := range colsList {
				for _, rows := range []int{1, 5, 16, 35} {
					for _, ntok := range []int{1, 2, 3, 7, 8, 17, 33} {
						var act float32
						if rng.IntN(3) == 0 {
							act = 0.01
						}
						ocols := randCols(rng, cols, 1+rng.IntN(6))
						m, w := splitMatrix(t, rng, typ, rows, cols, ocols, act)
						stride := cols + rng.IntN(3)
						x := randFloats(rng, (ntok-1)*stride+cols, 0.3)
						withOutliers(rng, x, stride, ntok, ocols)
						name := fmt.Sprintf("%v/%dx%d/%d/k%d/act=%v", typ, rows, cols, ntok, len(ocols), act)
						t.Run(name, func(t *testing.T) { checkSplitMatMul(t, p, m, w, x, stride, ntok) })
					}
				}
			}
		}
	})
}

// TestMatMulSplitParallel splits the work over all threads (run with
// -race): 203 rows in groups, 9 and 40 tokens.
func TestMatMulSplitParallel(t *testing.T) {
	p := kernels.NewPool(4)
	defer p.Close()
	rng := rand.New(rand.NewPCG(45, 46))
	for _, typ := range quant.RowFormats {
		for _, ntok := range []int{9, 40} {
			ocols := randCols(rng, 256, 12)
			m, w := splitMatrix(t, rng, typ, 203, 256, ocols, 0)
			x := randFloats(rng, ntok*256, 1)
			withOutliers(rng, x, 256, ntok, ocols)
			checkSplitMatMul(t, p, m, w, x, 256, ntok)
		}
	}
}

// TestMatMulSplitReducesError: on tokens with large outlier channels the
// split product is closer to the float product of the original weights
// than the unsplit one, by a wide margin.
func TestMatMulSplitReducesError(t *testing.T) {
	p := kernels.NewPool(2)
	defer p.Close()
	rng := rand.New(rand.NewPCG(47, 48))
	const rows, cols, ntok = 32, 256, 6
	// Gaussian weights, and Gaussian tokens whose only large values are
	// the outlier channels: the error is then mostly the activations'.
	wf := make([]float32, rows*cols)
	for i := range wf {
		wf[i] = float32(rng.NormFloat64() * 0.05)
	}
	x := make([]float32, ntok*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	ocols := []int32{17, 130}
	withOutliers(rng, x, cols, ntok, ocols)
	run := func(split []int32) (sqErr float64) {
		data, scales, ow, err := quant.QuantizeRowsSplit(backend.W8, wf, rows, cols, split)
		require.NoError(t, err)
		m, err := NewMatrix(&backend.Weight{Name: "w", Type: backend.W8, Rows: rows, Cols: cols, Data: data, RowScales: scales, OutlierCols: split, OutlierW: ow})
		require.NoError(t, err)
		var a Acts
		require.NoError(t, QuantizeActsSplit(p, x, cols, ntok, cols, 0, m.OutlierCols(), &a))
		dst := make([]float32, ntok*rows)
		require.NoError(t, MatMul(p, m, &a, dst, rows))
		for tok := 0; tok < ntok; tok++ {
			for r := 0; r < rows; r++ {
				var exact float64
				for k := 0; k < cols; k++ {
					exact += float64(wf[r*cols+k]) * float64(x[tok*cols+k])
				}
				d := float64(dst[tok*rows+r]) - exact
				sqErr += d * d
			}
		}
		return sqErr
	}
	plain, split := run(nil), run(ocols)
	t.Logf("squared error: unsplit %.4g, split %.4g", plain, split)
	assert.Less(t, split, plain/10)
}

// TestSplitSteadyStateAllocations: once the buffers have grown, a
// quantize + matmul step allocates nothing, on every kernel path.
func TestSplitSteadyStateAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	p := kernels.NewPool(2)
	defer p.Close()
	featureCases(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(49, 50))
		for _, typ := range quant.RowFormats {
			for _, ntok := range []int{1, 5, 20} {
				for _, split := range []bool{false, true} {
					var ocols []int32
					if split {
						ocols = randCols(rng, 512, 9)
					}
					m, _ := splitMatrix(t, rng, typ, 96, 512, ocols, 0)
					x := randFloats(rng, ntok*512, 1)
					var a Acts
					dst := make([]float32, ntok*96)
					step := func() {
						require.NoError(t, QuantizeActsSplit(p, x, 512, ntok, 512, 0, m.OutlierCols(), &a))
						require.NoError(t, MatMul(p, m, &a, dst, 96))
					}
					step()
					assert.Zero(t, testing.AllocsPerRun(10, step), "%v ntok %d split %v", typ, ntok, split)
				}
			}
		}
	})
}

func TestSplitErrors(t *testing.T) {
	p := kernels.NewPool(1)
	defer p.Close()
	rng := rand.New(rand.NewPCG(51, 52))
	m, w := splitMatrix(t, rng, backend.W8, 4, 16, []int32{3, 8}, 0)
	var a Acts
	x := randFloats(rng, 16, 1)
	require.NoError(t, QuantizeActs(p, x, 16, 1, 16, 0, &a))
	assert.ErrorContains(t, MatMul(p, m, &a, make([]float32, 4), 4), "activations quantized without the weight's 2 outlier columns (0 given)")
	require.NoError(t, QuantizeActsSplit(p, x, 16, 1, 16, 0, []int32{3, 9}, &a))
	assert.ErrorContains(t, MatMul(p, m, &a, make([]float32, 4), 4), "outlier columns")
	assert.ErrorContains(t, QuantizeActsSplit(p, x, 16, 1, 16, 0, []int32{9, 3}, &a), "outlier column 1 is 3")

	bad := *w
	bad.OutlierCols = []int32{3, 9}
	_, err := NewMatrix(&bad)
	assert.ErrorContains(t, err, "weight w: W8 row 0: outlier column 9 has a non-zero code")
	bad = *w
	bad.OutlierW = append([]uint16(nil), w.OutlierW...)
	bad.OutlierW[5] = 0x7e00
	_, err = NewMatrix(&bad)
	assert.ErrorContains(t, err, "weight w: outlier weight of row 2 column 8 is NaN")
	bad = *w
	bad.OutlierW = bad.OutlierW[:6]
	_, err = NewMatrix(&bad)
	assert.ErrorContains(t, err, "need 8 F16 weights, have 6")
}
