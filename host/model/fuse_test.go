package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/qformat"
	"qinfer/host/quant"
)

// TestLinearFusesSplitWeights fuses row-format projections split
// LLM.int8()-style (the copy path a device backend takes) and checks that
// the fused product equals, bit for bit, the parts multiplied one by one,
// and that parts with different outlier columns are not fused. A fused
// weight once dropped its parts' outlier columns.
func TestLinearFusesSplitWeights(t *testing.T) {
	be := newCPU(t)
	rng := rand.New(rand.NewPCG(11, 3))
	const cols, ntok = 96, 3
	rows := []int{40, 24, 24}
	names := []string{"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"}
	for _, tc := range []struct {
		name      string
		ocols     [][]int32
		wantFused bool
	}{
		{"same columns", [][]int32{{3, 17, 50}, {3, 17, 50}, {3, 17, 50}}, true},
		{"different columns", [][]int32{{3, 17, 50}, {3, 18, 50}, {3, 17, 50}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := gguf.NewBuilder()
			for i, name := range names {
				wf := make([]float32, rows[i]*cols)
				for j := range wf {
					wf[j] = float32(rng.NormFloat64())
				}
				for _, c := range tc.ocols[i] {
					for r := 0; r < rows[i]; r++ {
						wf[r*cols+int(c)] *= 20
					}
				}
				data, scales, ow, err := quant.QuantizeRowsSplit(backend.W8, wf, rows[i], cols, tc.ocols[i])
				require.NoError(t, err)
				require.NoError(t, qformat.PutWeight(b, &backend.Weight{Name: name, Type: backend.W8, Rows: rows[i], Cols: cols,
					Data: data, RowScales: scales, OutlierCols: tc.ocols[i], OutlierW: ow}))
			}
			f := parseBuilder(t, b)

			fused := &uploader{f: f, be: be, fuseByCopy: true}
			defer func() { require.NoError(t, fused.free()) }()
			lf, err := fused.linear(names, rows, cols)
			require.NoError(t, err)
			require.Equal(t, tc.wantFused, lf.fused != nil)

			apart := &uploader{f: f, be: be}
			defer func() { require.NoError(t, apart.free()) }()
			lp, err := apart.linear(names, rows, cols)
			require.NoError(t, err)
			require.Nil(t, lp.fused, "the parts are not adjacent in the file")

			x := make([]float32, ntok*cols)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			// The outlier channels of the input are large, as calibration
			// found them.
			for tok := 0; tok < ntok; tok++ {
				for _, c := range tc.ocols[0] {
					x[tok*cols+int(c)] *= 30
				}
			}
			got := project(t, be, lf, x, ntok, cols, rows)
			want := project(t, be, lp, x, ntok, cols, rows)
			for i := range want {
				require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "output %d: %g fused, %g apart", i, got[i], want[i])
			}
		})
	}
}

// project runs x (ntok x cols) through l into an ntok x sum(rows) output.
func project(t *testing.T, be backend.Backend, l *linear, x []float32, ntok, cols int, rows []int) []float32 {
	t.Helper()
	total := 0
	for _, r := range rows {
		total += r
	}
	xt, err := be.NewActivation("x", ntok, cols)
	require.NoError(t, err)
	defer be.Free(xt)
	require.NoError(t, be.Write(xt, x))
	out, err := be.NewActivation("out", ntok, total)
	require.NoError(t, err)
	defer be.Free(out)
	var views []backend.Tensor
	off := 0
	for _, r := range rows {
		v, err := be.View(out, 0, ntok, off, r)
		require.NoError(t, err)
		views = append(views, v)
		off += r
	}
	require.NoError(t, l.forward(be, xt, out, views...))
	res := make([]float32, ntok*total)
	require.NoError(t, be.Read(out, res))
	return res
}
