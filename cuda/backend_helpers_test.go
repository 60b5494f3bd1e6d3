package cuda_test

import (
	"encoding/binary"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/cuda"
	"qinfer/fallback"
	"qinfer/host/backend"
	"qinfer/host/quant"
)

// pair runs the same op on the GPU backend under test and the CPU backend
// (qinfer/fallback), the reference.
type pair struct {
	t   *testing.T
	gpu *cuda.Backend
	cpu backend.Backend
}

func newPair(t *testing.T, d device) *pair {
	t.Helper()
	cpu, err := fallback.New(2)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cpu.Close() })
	return &pair{t: t, gpu: d.be, cpu: cpu}
}

// twin is a tensor on both backends.
type twin struct{ g, c backend.Tensor }

// act makes an activation on both backends holding vals.
func (p *pair) act(name string, rows, cols int, vals []float32) twin {
	p.t.Helper()
	g, err := p.gpu.NewActivation(name, rows, cols)
	require.NoError(p.t, err)
	c, err := p.cpu.NewActivation(name, rows, cols)
	require.NoError(p.t, err)
	p.t.Cleanup(func() { _ = p.gpu.Free(g) })
	if vals != nil {
		require.NoError(p.t, p.gpu.Write(g, vals))
		require.NoError(p.t, p.cpu.Write(c, vals))
	}
	return twin{g, c}
}

// view makes the same view on both backends.
func (p *pair) view(x twin, row0, rows, col0, cols int) twin {
	p.t.Helper()
	g, err := p.gpu.View(x.g, row0, rows, col0, cols)
	require.NoError(p.t, err)
	c, err := p.cpu.View(x.c, row0, rows, col0, cols)
	require.NoError(p.t, err)
	return twin{g, c}
}

func (p *pair) weight(w *backend.Weight) twin {
	p.t.Helper()
	g, err := p.gpu.Upload(w)
	require.NoError(p.t, err)
	p.t.Cleanup(func() { _ = p.gpu.Free(g) })
	c, err := p.cpu.Upload(w)
	require.NoError(p.t, err)
	return twin{g, c}
}

// twinBatch is a batch on both backends.
type twinBatch struct{ g, c backend.Batch }

func (p *pair) batch(in *backend.BatchInput) twinBatch {
	p.t.Helper()
	g, err := p.gpu.NewBatch(len(in.IDs) + 3)
	require.NoError(p.t, err)
	p.t.Cleanup(func() { _ = p.gpu.Free(g) })
	c, err := p.cpu.NewBatch(len(in.IDs) + 3)
	require.NoError(p.t, err)
	require.NoError(p.t, p.gpu.SetBatch(g, in))
	require.NoError(p.t, p.cpu.SetBatch(c, in))
	return twinBatch{g, c}
}

// poison fills a GPU tensor with NaN so that an element an op fails to
// write shows up (the CPU side keeps whatever it had: it is the reference).
func (p *pair) poison(x twin) {
	p.t.Helper()
	n := x.g.Rows() * x.g.Cols()
	nan := make([]float32, n)
	for i := range nan {
		nan[i] = float32(math.NaN())
	}
	require.NoError(p.t, p.gpu.Write(x.g, nan))
}

func (p *pair) read(x twin) (gv, cv []float32) {
	p.t.Helper()
	n := x.g.Rows() * x.g.Cols()
	gv, cv = make([]float32, n), make([]float32, n)
	require.NoError(p.t, p.gpu.Read(x.g, gv))
	require.NoError(p.t, p.cpu.Read(x.c, cv))
	return gv, cv
}

// randn returns n normal values times scale.
func randn(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

// randomWeight quantizes normal values with llama.cpp's reference
// quantizer (FP8, TERNARY, BINARY: quant.QuantizeRows; W8: random int8 and
// row scales).
func randomWeight(t testing.TB, rng *rand.Rand, typ backend.DType, rows, cols int) *backend.Weight {
	t.Helper()
	w := &backend.Weight{Name: typ.String(), Type: typ, Rows: rows, Cols: cols}
	switch typ {
	case backend.FP8, backend.Ternary, backend.Binary:
		var err error
		w.Data, w.RowScales, err = quant.QuantizeRows(typ, randn(rng, rows*cols, 1), rows, cols)
		require.NoError(t, err)
		return w
	case backend.W8:
		w.Data = make([]byte, rows*cols)
		for i := range w.Data {
			w.Data[i] = byte(int8(rng.Intn(255) - 127))
		}
		w.RowScales = make([]float32, rows)
		for i := range w.RowScales {
			w.RowScales[i] = float32(0.001 + 0.01*rng.Float64())
		}
		return w
	}
	rb, err := backend.RowBytes(typ, cols)
	require.NoError(t, err)
	w.Data = make([]byte, rows*rb)
	for r := 0; r < rows; r++ {
		require.NoError(t, quant.Quantize(typ, randn(rng, cols, 1), w.Data[r*rb:(r+1)*rb]))
	}
	return w
}

func f32At(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

// within asserts |got-want| <= tol element by element; it reports the
// worst element and how many failed.
func within(t *testing.T, got, want, tol []float32, what string) {
	t.Helper()
	require.Len(t, got, len(want))
	bad, worst, worstI := 0, 0.0, -1
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if !(d <= float64(tol[i])) {
			bad++
			if r := d / float64(tol[i]); worstI < 0 || r > worst || math.IsNaN(d) {
				worst, worstI = r, i
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements outside tolerance; worst [%d]: got %v want %v (tol %v)",
			what, bad, len(want), worstI, got[worstI], want[worstI], tol[worstI])
	}
}

// uniformTol is a tolerance of rel*|want| + abs per element.
func uniformTol(want []float32, rel, abs float64) []float32 {
	tol := make([]float32, len(want))
	for i, w := range want {
		tol[i] = float32(rel*math.Abs(float64(w)) + abs)
	}
	return tol
}

// maxDiff returns the largest |a-b|.
func maxDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}
