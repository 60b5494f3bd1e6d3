package fallback

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

// splitWeight quantizes random weights to wt with outlier columns ocols.
func splitWeight(t *testing.T, rng *rand.Rand, wt backend.DType, rows, cols int, ocols []int32, act float32) *backend.Weight {
	t.Helper()
	vals := randVals(rng, rows*cols, 1)
	data, scales, ow, err := quant.QuantizeRowsSplit(wt, vals, rows, cols, ocols)
	require.NoError(t, err)
	return &backend.Weight{Name: "split", Type: wt, Rows: rows, Cols: cols, Data: data, RowScales: scales, ActScale: act, OutlierCols: ocols, OutlierW: ow}
}

// TestMatMulSplitRowFormats checks split row-format weights (LLM.int8()
// outlier columns) through the backend bit for bit against
// quant.RowSplitDot on the reference's activations: strided input and
// output views, ragged shapes, 1 to 33 tokens, dynamic and static scales,
// two threads (run with -race for the parallel path).
func TestMatMulSplitRowFormats(t *testing.T) {
	cases := []struct {
		rows, cols, ntok int
		act              float32
	}{
		{5, 40, 1, 0}, {13, 72, 3, 0}, {7, 200, 8, 0}, {9, 1000, 2, 0.05},
		{21, 64, 33, 0}, {18, 96, 17, 0.02}, {40, 136, 5, 0},
	}
	c := newCPU(t, 2)
	for _, wt := range quant.RowFormats {
		for ci, tc := range cases {
			cols := tc.cols
			if wt == backend.W8 || wt == backend.FP8 {
				cols++
			}
			t.Run(fmt.Sprintf("%v/%dx%d/%d/act=%v", wt, tc.rows, cols, tc.ntok, tc.act), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(wt), uint64(ci)))
				ocols := []int32{0, int32(cols / 3), int32(cols/3 + 1), int32(cols - 1)}
				w := splitWeight(t, rng, wt, tc.rows, cols, ocols, tc.act)
				ut, err := c.Upload(w)
				require.NoError(t, err)
				defer c.Free(ut)

				xvals := randVals(rng, tc.ntok*cols, 2)
				for tok := 0; tok < tc.ntok; tok++ {
					for _, oc := range ocols {
						xvals[tok*cols+int(oc)] *= 40
					}
				}
				x := newStrided(t, c, rng, tc.ntok, cols, xvals)
				dst := newStrided(t, c, rng, tc.ntok, tc.rows, nil)
				require.NoError(t, c.MatMul(dst.view, ut, x.view))
				got := readAll(t, c, dst.view)
				dst.checkGuard(t, c)
				x.checkGuard(t, c)

				rb, _ := backend.RowBytes(wt, cols)
				k := len(ocols)
				xq := make([]int8, cols)
				for tok := 0; tok < tc.ntok; tok++ {
					xrow := xvals[tok*cols : (tok+1)*cols]
					xs := tc.act
					if xs > 0 {
						require.NoError(t, quant.QuantizeTokenInt8StaticSplit(xrow, xs, ocols, xq))
					} else {
						xs = quant.QuantizeTokenInt8Split(xrow, ocols, xq)
					}
					for r := 0; r < tc.rows; r++ {
						want, err := quant.RowSplitDot(wt, cols, w.Data[r*rb:(r+1)*rb], w.RowScales[r], xq, xs, xrow, ocols, w.OutlierW[r*k:(r+1)*k])
						require.NoError(t, err)
						g := got[tok*tc.rows+r]
						require.Equalf(t, math.Float32bits(want), math.Float32bits(g), "token %d row %d: backend %v, reference %v", tok, r, g, want)
					}
				}

				// Read dequantizes the outlier columns from their F16 weights.
				all := readAll(t, c, ut)
				want := make([]float32, cols)
				for r := 0; r < tc.rows; r++ {
					require.NoError(t, quant.DequantizeRowSplit(wt, w.Data[r*rb:(r+1)*rb], w.RowScales[r], ocols, w.OutlierW[r*k:(r+1)*k], want))
					require.Equal(t, want, all[r*cols:(r+1)*cols], "row %d", r)
				}
			})
		}
	}
}

// TestSplitMatMulSteadyState: a split matmul allocates nothing once its
// buffers have grown.
func TestSplitMatMulSteadyState(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	c := newCPU(t, 2)
	rng := rand.New(rand.NewPCG(61, 62))
	w := splitWeight(t, rng, backend.W8, 300, 256, []int32{3, 100, 101}, 0)
	ut, err := c.Upload(w)
	require.NoError(t, err)
	for _, ntok := range []int{1, 4, 24} {
		x := newAct(t, c, ntok, 256, randVals(rng, ntok*256, 1))
		d := newAct(t, c, ntok, 300, nil)
		step := func() { require.NoError(t, c.MatMul(d, ut, x)) }
		step()
		assert.Zero(t, testing.AllocsPerRun(10, step), "%d tokens", ntok)
	}
}

func TestSplitUploadErrors(t *testing.T) {
	c := newCPU(t, 1)
	rng := rand.New(rand.NewPCG(63, 64))
	w := splitWeight(t, rng, backend.W8, 3, 16, []int32{2, 7}, 0)
	bad := *w
	bad.OutlierCols = []int32{7, 2}
	_, err := c.Upload(&bad)
	assert.ErrorContains(t, err, "weight split: outlier column 1 is 2")
	bad = *w
	bad.OutlierCols = []int32{2, 8}
	_, err = c.Upload(&bad)
	assert.ErrorContains(t, err, "weight split: W8 row 0: outlier column 8 has a non-zero code")
	bad = *w
	bad.OutlierW = w.OutlierW[:5]
	_, err = c.Upload(&bad)
	assert.ErrorContains(t, err, "need 6 F16 weights, have 5")
	q8 := &backend.Weight{Name: "q", Type: backend.Q8_0, Rows: 1, Cols: 32, Data: make([]byte, 34), OutlierCols: []int32{1}, OutlierW: []uint16{0}}
	_, err = c.Upload(q8)
	assert.ErrorContains(t, err, "weight q: outlier columns apply to row formats")
}
