package cuda_test

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

// Row-format weights split into LLM.int8() outlier columns
// (docs/formats.md) must give quant.RowSplitDot's bits on the device:
// activations quantized by quant.QuantizeTokenInt8Split (or ...StaticSplit
// with the weight's ActScale), the int8 part scaled by RowScaleDot, plus
// the outlier channels' float products in the reference's order. The
// references below use nothing else.

// splitCols returns k distinct columns of [0, cols), increasing.
func splitCols(rng *rand.Rand, cols, k int) []int32 {
	out := make([]int32, 0, k)
	for _, c := range rng.Perm(cols)[:k] {
		out = append(out, int32(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// splitCounts are the numbers of outlier columns tried for rows of cols:
// 1, 3 and cols/32 (the default budget), those that fit.
func splitCounts(cols int) []int {
	var ks []int
	for _, k := range []int{1, 3, cols / 32} {
		if k >= 1 && k <= cols && (len(ks) == 0 || ks[len(ks)-1] != k) {
			ks = append(ks, k)
		}
	}
	return ks
}

// splitWeight quantizes random weights over several orders of magnitude
// (as rowWeight) to typ with the columns ocols split off.
func splitWeight(t *testing.T, rng *rand.Rand, typ backend.DType, rows, cols int, ocols []int32, actScale float32) *backend.Weight {
	t.Helper()
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * math.Exp(2*rng.NormFloat64()))
	}
	data, scales, ow, err := quant.QuantizeRowsSplit(typ, v, rows, cols, ocols)
	require.NoError(t, err)
	return &backend.Weight{Name: fmt.Sprintf("%v %dx%d split %d", typ, rows, cols, len(ocols)), Type: typ, Rows: rows,
		Cols: cols, Data: data, RowScales: scales, ActScale: actScale, OutlierCols: ocols, OutlierW: ow}
}

// splitTokens returns ntok activation rows as rowTokens, with the outlier
// channels 30 to 1000 times larger than the rest; from 4 tokens on, one
// token whose other channels are all zero and one with an infinite
// outlier channel (its outputs are infinite: a single infinity, so no
// NaN).
func splitTokens(rng *rand.Rand, ntok, cols int, ocols []int32) []float32 {
	x := rowTokens(rng, ntok, cols)
	for tk := 0; tk < ntok; tk++ {
		for _, c := range ocols {
			x[tk*cols+int(c)] = float32(rng.NormFloat64() * 30 * math.Exp(1.5*math.Abs(rng.NormFloat64())))
		}
	}
	if ntok >= 4 {
		out := make([]float32, cols)
		for _, c := range ocols {
			out[c] = x[3*cols+int(c)]
		}
		copy(x[3*cols:4*cols], out)
		x[(ntok-1)*cols+int(ocols[rng.Intn(len(ocols))])] = float32(math.Inf(1))
	}
	return x
}

// splitRef is the reference product of split weight w with ntok tokens x:
// y[t][r] = RowSplitDot(row r, token t).
func splitRef(t *testing.T, w *backend.Weight, x []float32, ntok int) []float32 {
	t.Helper()
	rb, err := backend.RowBytes(w.Type, w.Cols)
	require.NoError(t, err)
	k := len(w.OutlierCols)
	y := make([]float32, ntok*w.Rows)
	q := make([]int8, w.Cols)
	for tk := 0; tk < ntok; tk++ {
		row := x[tk*w.Cols : (tk+1)*w.Cols]
		scale := w.ActScale
		if scale != 0 {
			require.NoError(t, quant.QuantizeTokenInt8StaticSplit(row, scale, w.OutlierCols, q))
		} else {
			scale = quant.QuantizeTokenInt8Split(row, w.OutlierCols, q)
		}
		for r := 0; r < w.Rows; r++ {
			y[tk*w.Rows+r], err = quant.RowSplitDot(w.Type, w.Cols, w.Data[r*rb:(r+1)*rb], w.RowScales[r], q, scale, row,
				w.OutlierCols, w.OutlierW[r*k:(r+1)*k])
			require.NoError(t, err)
		}
	}
	return y
}

// TestParityMatMulSplit: every row format split into 1, 3 and cols/32
// outlier columns, dynamic and static activations, every GEMV variant
// (1..9 tokens) and the GEMM (9..33 tokens), ragged rows (up to 37, and
// 300: more than one block of the float part) and columns (not a multiple
// of 64), strided input and output views: the device, the CPU backend and
// quant.RowSplitDot agree bit for bit.
func TestParityMatMulSplit(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		for _, typ := range rowTypes {
			for _, static := range []bool{false, true} {
				rng := rand.New(rand.NewSource(int64(typ)*10 + map[bool]int64{false: 0, true: 1}[static]))
				rows, cols := 1+rng.Intn(37), rowCols(rng, typ)
				if static && typ == backend.Binary {
					rows = 300
				}
				var actScale float32
				if static {
					actScale = 2.5 / 127 // the larger activations saturate
				}
				for _, k := range splitCounts(cols) {
					ocols := splitCols(rng, cols, k)
					w := splitWeight(t, rng, typ, rows, cols, ocols, actScale)
					p := newPair(t, d)
					wt := p.weight(w)
					for _, ntok := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 26, 33} {
						t.Run(fmt.Sprintf("%v_static=%v_%dx%d_k%d_t%d", typ, static, rows, cols, k, ntok), func(t *testing.T) {
							x := splitTokens(rng, ntok, cols, ocols)
							// Strided views: input rows of cols+3 from column 2,
							// output rows of rows+2 from column 1.
							wide := make([]float32, ntok*(cols+3))
							for tk := 0; tk < ntok; tk++ {
								copy(wide[tk*(cols+3)+2:], x[tk*cols:(tk+1)*cols])
							}
							xa := p.view(p.act("x", ntok, cols+3, wide), 0, ntok, 2, cols)
							y := p.view(p.act("y", ntok, rows+2, nil), 0, ntok, 1, rows)
							p.poison(y)
							require.NoError(t, p.gpu.MatMul(y.g, wt.g, xa.g))
							require.NoError(t, p.cpu.MatMul(y.c, wt.c, xa.c))
							gv, cv := p.read(y)
							want := splitRef(t, w, x, ntok)
							requireSameBits(t, want, cv, rows, "cpu vs reference")
							requireSameBits(t, want, gv, rows, "gpu vs reference")
						})
					}
				}
			}
		}
	})
}

// TestParitySplitNaN: a NaN in an outlier channel leaves the token's
// int8 scale alone (dynamic) and makes its outputs NaN, on both backends
// as in the reference. NaNs are compared as NaN, not by bits: the GPU
// produces its canonical NaN where x86 keeps the input's.
func TestParitySplitNaN(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewSource(77))
		const rows, cols, ntok = 19, 136, 5
		ocols := splitCols(rng, cols, 70) // more than one of the float part's chunks of 64
		w := splitWeight(t, rng, backend.W8, rows, cols, ocols, 0)
		p := newPair(t, d)
		wt := p.weight(w)
		x := splitTokens(rng, ntok, cols, ocols)
		x[cols+int(ocols[2])] = float32(math.NaN())
		xa := p.act("x", ntok, cols, x)
		y := p.act("y", ntok, rows, nil)
		require.NoError(t, p.gpu.MatMul(y.g, wt.g, xa.g))
		require.NoError(t, p.cpu.MatMul(y.c, wt.c, xa.c))
		gv, cv := p.read(y)
		want := splitRef(t, w, x, ntok)
		for i := range want {
			tk, r := i/rows, i%rows
			if tk == 1 {
				require.True(t, math.IsNaN(float64(want[i])), "reference token 1 row %d: %v", r, want[i])
				assert.True(t, math.IsNaN(float64(gv[i])), "gpu token 1 row %d: %v", r, gv[i])
				assert.True(t, math.IsNaN(float64(cv[i])), "cpu token 1 row %d: %v", r, cv[i])
				continue
			}
			require.Equal(t, math.Float32bits(want[i]), math.Float32bits(gv[i]), "gpu token %d row %d", tk, r)
			require.Equal(t, math.Float32bits(want[i]), math.Float32bits(cv[i]), "cpu token %d row %d", tk, r)
		}
	})
}

// TestParitySplitEmbedAndRead: Read and Embed of split weights give
// quant.DequantizeRowSplit's rows (the outlier columns from their F16
// weights), as the CPU backend does: whole weights, a run of rows that
// starts past row 0 (Read's chunks of huge weights), and rows by token id
// into a strided view.
func TestParitySplitEmbedAndRead(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		for _, typ := range rowTypes {
			t.Run(typ.String(), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(typ) + 3))
				const rows = 37
				cols := rowCols(rng, typ)
				for _, k := range splitCounts(cols) {
					ocols := splitCols(rng, cols, k)
					w := splitWeight(t, rng, typ, rows, cols, ocols, 0)
					rb, err := backend.RowBytes(typ, cols)
					require.NoError(t, err)
					want := make([]float32, rows*cols)
					for r := 0; r < rows; r++ {
						require.NoError(t, quant.DequantizeRowSplit(typ, w.Data[r*rb:(r+1)*rb], w.RowScales[r], ocols,
							w.OutlierW[r*k:(r+1)*k], want[r*cols:(r+1)*cols]))
					}
					p := newPair(t, d)
					wt := p.weight(w)
					got, cpu := make([]float32, rows*cols), make([]float32, rows*cols)
					require.NoError(t, p.gpu.Read(wt.g, got))
					require.NoError(t, p.cpu.Read(wt.c, cpu))
					at := func(i int) string { return fmt.Sprintf("k %d: row %d column %d", k, i/cols, i%cols) }
					requireSameBitsAt(t, want, cpu, "cpu read", at)
					requireSameBitsAt(t, want, got, "gpu read", at)
					part, err := d.be.DequantRowsForTest(wt.g, 5, 7)
					require.NoError(t, err)
					requireSameBitsAt(t, want[5*cols:12*cols], part, "gpu rows 5..11",
						func(i int) string { return fmt.Sprintf("k %d: row %d column %d", k, 5+i/cols, i%cols) })

					ids := []int32{36, 0, 3, 3, 17, 35}
					bt := p.batch(&backend.BatchInput{IDs: ids, Pos: make([]int32, len(ids)), Seq: make([]int32, len(ids))})
					y := p.view(p.act("emb", len(ids), cols+3, nil), 0, len(ids), 2, cols)
					p.poison(y)
					require.NoError(t, p.gpu.Embed(y.g, wt.g, bt.g))
					require.NoError(t, p.cpu.Embed(y.c, wt.c, bt.c))
					gv, cv := p.read(y)
					var wantE []float32
					for _, id := range ids {
						wantE = append(wantE, want[int(id)*cols:int(id+1)*cols]...)
					}
					eat := func(i int) string { return fmt.Sprintf("k %d: token %d column %d", k, i/cols, i%cols) }
					requireSameBitsAt(t, wantE, cv, "cpu embed", eat)
					requireSameBitsAt(t, wantE, gv, "gpu embed", eat)
				}
			})
		}
	})
}

// TestSplitGraphReplay: a split weight's MatMul (quantization with the
// column mask, product, float part) captured in a graph and replayed on
// new inputs gives the reference's bits, as run eagerly.
func TestSplitGraphReplay(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewSource(12))
		const rows, cols, ntok = 45, 192, 3
		ocols := splitCols(rng, cols, 6)
		w := splitWeight(t, rng, backend.Ternary, rows, cols, ocols, 0)
		be := d.be
		wt, err := be.Upload(w)
		require.NoError(t, err)
		defer be.Free(wt)
		x, err := be.NewActivation("x", ntok, cols)
		require.NoError(t, err)
		defer be.Free(x)
		y, err := be.NewActivation("y", ntok, rows)
		require.NoError(t, err)
		defer be.Free(y)
		// Once eagerly, so the activation scratch exists before the capture.
		require.NoError(t, be.Write(x, splitTokens(rng, ntok, cols, ocols)))
		require.NoError(t, be.MatMul(y, wt, x))
		require.NoError(t, be.BeginCapture())
		require.NoError(t, be.MatMul(y, wt, x))
		g, err := be.EndCapture()
		require.NoError(t, err)
		defer g.Free()
		for step := 0; step < 3; step++ {
			xv := splitTokens(rng, ntok, cols, ocols)
			require.NoError(t, be.Write(x, xv))
			require.NoError(t, g.Launch())
			got := make([]float32, ntok*rows)
			require.NoError(t, be.Read(y, got))
			requireSameBits(t, splitRef(t, w, xv, ntok), got, rows, fmt.Sprintf("replay %d", step))
		}
	})
}

// TestSplitUploadRejected: both backends refuse a split weight whose
// outlier columns hold a non-zero code, or whose F16 weights are not
// finite, with the weight named.
func TestSplitUploadRejected(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewSource(13))
		p := newPair(t, d)
		w := splitWeight(t, rng, backend.FP8, 4, 64, []int32{5, 60}, 0)
		w.Data[64+60] = 0x38 // 1.0 in row 1's outlier column 60
		_, err := p.gpu.Upload(w)
		assert.ErrorContains(t, err, "upload weight FP8_E4M3 4x64 split 2: FP8_E4M3 row 1: outlier column 60 has a non-zero code")
		_, err = p.cpu.Upload(w)
		assert.ErrorContains(t, err, "outlier column 60 has a non-zero code")

		w = splitWeight(t, rng, backend.Binary, 4, 64, []int32{5, 60}, 0)
		w.OutlierW[3] = 0xfe00 // NaN
		_, err = p.gpu.Upload(w)
		assert.ErrorContains(t, err, "upload weight BINARY 4x64 split 2: outlier weight of row 1 column 60 is NaN")
		_, err = p.cpu.Upload(w)
		assert.ErrorContains(t, err, "outlier weight of row 1 column 60 is NaN")
	})
}
