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

// TestMatMulRowFormats checks the row formats (W8, FP8, Ternary, Binary)
// bit for bit against quant.RowVecDot on the reference's per-token int8
// activations, with strided input and output views, odd shapes, dynamic
// and static activation scales; and, within the activation quantization
// error, against the float64 product of the dequantized weights with the
// unquantized input.
func TestMatMulRowFormats(t *testing.T) {
	cases := []struct {
		rows, cols, ntok int
		act              float32
	}{
		{5, 40, 3, 0}, {13, 72, 1, 0}, {7, 200, 6, 0}, {9, 1000, 2, 0},
		{5, 40, 3, 0.02}, {6, 136, 5, 0.005}, {21, 64, 20, 0}, {18, 96, 9, 0.01},
	}
	c := newCPU(t, 2)
	for _, wt := range quant.RowFormats {
		for _, tc := range cases {
			cols := tc.cols
			if wt == backend.W8 || wt == backend.FP8 {
				cols++ // any length for the byte formats
			}
			name := fmt.Sprintf("%v/%dx%d/%d/act=%v", wt, tc.rows, cols, tc.ntok, tc.act)
			t.Run(name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(wt), uint64(cols)))
				rows, ntok := tc.rows, tc.ntok
				wvals := randVals(rng, rows*cols, 1)
				wdata, scales, err := quant.QuantizeRows(wt, wvals, rows, cols)
				require.NoError(t, err)
				w, err := c.Upload(&backend.Weight{Name: "w", Type: wt, Rows: rows, Cols: cols, Data: wdata, RowScales: scales, ActScale: tc.act})
				require.NoError(t, err)

				xvals := randVals(rng, ntok*cols, 2)
				x := newStrided(t, c, rng, ntok, cols, xvals)
				dst := newStrided(t, c, rng, ntok, rows, nil)
				require.NoError(t, c.MatMul(dst.view, w, x.view))
				got := readAll(t, c, dst.view)
				dst.checkGuard(t, c)
				x.checkGuard(t, c)

				wdeq, err := quant.DequantizeRowFormat(wt, wdata, scales, rows, cols)
				require.NoError(t, err)
				rb, _ := backend.RowBytes(wt, cols)
				xq := make([]int8, cols)
				for tok := 0; tok < ntok; tok++ {
					xrow := xvals[tok*cols : (tok+1)*cols]
					xs := tc.act
					if xs > 0 {
						require.NoError(t, quant.QuantizeTokenInt8Static(xrow, xs, xq))
					} else {
						xs = quant.QuantizeTokenInt8(xrow, xq)
					}
					for r := 0; r < rows; r++ {
						want, err := quant.RowVecDot(wt, cols, wdata[r*rb:(r+1)*rb], scales[r], xq, xs)
						require.NoError(t, err)
						g := got[tok*rows+r]
						require.Equalf(t, math.Float32bits(want), math.Float32bits(g),
							"token %d row %d: backend %v, reference %v", tok, r, g, want)

						// Half an activation step per element, plus what a
						// static scale clips.
						var exact, bound float64
						for k := 0; k < cols; k++ {
							wv, xv := float64(wdeq[r*cols+k]), float64(xrow[k])
							exact += wv * xv
							bound += math.Abs(wv) * float64(xs) / 2
							if lim := 127 * float64(xs); math.Abs(xv) > lim {
								bound += math.Abs(wv) * (math.Abs(xv) - lim)
							}
						}
						require.InDeltaf(t, exact, g, bound*(1+1e-5)+1e-4, "token %d row %d: far from the product of the data", tok, r)
					}
				}
			})
		}
	}
}

// TestRowFormatReadAndEmbed: Read and Embed dequantize row-format rows as
// quant.DequantizeRowFormat does.
func TestRowFormatReadAndEmbed(t *testing.T) {
	c := newCPU(t, 1)
	rng := rand.New(rand.NewPCG(21, 22))
	const rows, cols = 6, 48
	for _, wt := range quant.RowFormats {
		wvals := randVals(rng, rows*cols, 1)
		data, scales, err := quant.QuantizeRows(wt, wvals, rows, cols)
		require.NoError(t, err)
		w, err := c.Upload(&backend.Weight{Name: "table", Type: wt, Rows: rows, Cols: cols, Data: data, RowScales: scales})
		require.NoError(t, err)
		want, err := quant.DequantizeRowFormat(wt, data, scales, rows, cols)
		require.NoError(t, err)
		got := make([]float32, rows*cols)
		require.NoError(t, c.Read(w, got))
		assert.Equal(t, want, got, wt)

		b, err := c.NewBatch(3)
		require.NoError(t, err)
		require.NoError(t, c.SetBatch(b, &backend.BatchInput{IDs: []int32{4, 0, 4}, Pos: []int32{0, 1, 2}, Seq: []int32{0, 0, 0}}))
		d := newAct(t, c, 3, cols, nil)
		require.NoError(t, c.Embed(d, w, b))
		emb := readAll(t, c, d)
		assert.Equal(t, want[4*cols:5*cols], emb[:cols], wt)
		assert.Equal(t, want[:cols], emb[cols:2*cols], wt)
	}
}

func TestRowFormatUploadErrors(t *testing.T) {
	c := newCPU(t, 1)
	_, err := c.Upload(&backend.Weight{Name: "tern", Type: backend.Ternary, Rows: 1, Cols: 8, Data: []byte{0x55, 0x57}, RowScales: []float32{1}})
	assert.ErrorContains(t, err, "weight tern: TERNARY row 0 element 4 has the invalid code 3")
	_, err = c.Upload(&backend.Weight{Name: "w8", Type: backend.W8, Rows: 1, Cols: 8, Data: make([]byte, 8), RowScales: []float32{1}, ActScale: float32(math.Inf(1))})
	assert.ErrorContains(t, err, "weight w8: static activation scale +Inf")
	_, err = c.Upload(&backend.Weight{Name: "bin", Type: backend.Binary, Rows: 2, Cols: 8, Data: make([]byte, 2), RowScales: []float32{1}})
	assert.ErrorContains(t, err, "needs 2 row scales")
}
