package fallback

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
)

func newCPU(t *testing.T, threads int) *CPU {
	t.Helper()
	c, err := New(threads)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// randVals returns n values uniform in ±scale, none zero.
func randVals(rng *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		for v[i] == 0 {
			v[i] = (rng.Float32()*2 - 1) * scale
		}
	}
	return v
}

// newAct makes a rows x cols activation holding data.
func newAct(t *testing.T, c *CPU, rows, cols int, data []float32) backend.Tensor {
	t.Helper()
	a, err := c.NewActivation("test", rows, cols)
	require.NoError(t, err)
	if data != nil {
		require.NoError(t, c.Write(a, data))
	}
	return a
}

// stridedView is a rows x cols view at (1, 3) of a larger parent filled
// with random guard values, so that a test can check the op touched
// nothing outside the view.
type stridedView struct {
	parent backend.Tensor
	view   backend.Tensor
	guard  []float32
	rows   int
	cols   int
}

func newStrided(t *testing.T, c *CPU, rng *rand.Rand, rows, cols int, data []float32) *stridedView {
	t.Helper()
	pr, pc := rows+2, cols+5
	guard := randVals(rng, pr*pc, 100)
	parent := newAct(t, c, pr, pc, guard)
	view, err := c.View(parent, 1, rows, 3, cols)
	require.NoError(t, err)
	if data != nil {
		require.NoError(t, c.Write(view, data))
	}
	return &stridedView{parent: parent, view: view, guard: guard, rows: rows, cols: cols}
}

// checkGuard asserts that every parent element outside the view kept its
// guard value.
func (s *stridedView) checkGuard(t *testing.T, c *CPU) {
	t.Helper()
	pc := s.cols + 5
	got := make([]float32, len(s.guard))
	require.NoError(t, c.Read(s.parent, got))
	for i := range got {
		r, col := i/pc, i%pc
		inside := r >= 1 && r < 1+s.rows && col >= 3 && col < 3+s.cols
		if !inside {
			require.Equalf(t, s.guard[i], got[i], "element (%d,%d) outside the view changed", r, col)
		}
	}
}

func readAll(t *testing.T, c *CPU, x backend.Tensor) []float32 {
	t.Helper()
	out := make([]float32, x.Rows()*x.Cols())
	require.NoError(t, c.Read(x, out))
	return out
}

// requireClose asserts |got-want| <= atol + rtol*|want| elementwise.
func requireClose(t *testing.T, want []float64, got []float32, atol, rtol float64, what string) {
	t.Helper()
	require.Len(t, got, len(want), what)
	for i := range want {
		d := math.Abs(float64(got[i]) - want[i])
		require.LessOrEqualf(t, d, atol+rtol*math.Abs(want[i]), "%s: element %d: got %v, want %v", what, i, got[i], want[i])
	}
}

func uploadF32(t *testing.T, c *CPU, name string, rows, cols int, vals []float32) backend.Tensor {
	t.Helper()
	data := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	w, err := c.Upload(&backend.Weight{Name: name, Type: backend.F32, Rows: rows, Cols: cols, Data: data})
	require.NoError(t, err)
	return w
}

func setBatch(t *testing.T, c *CPU, in *backend.BatchInput) backend.Batch {
	t.Helper()
	b, err := c.NewBatch(len(in.IDs) + 2)
	require.NoError(t, err)
	require.NoError(t, c.SetBatch(b, in))
	return b
}
