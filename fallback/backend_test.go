package fallback

import (
	"bufio"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

func TestInfo(t *testing.T) {
	c := newCPU(t, 3)
	info := c.Info()
	assert.Equal(t, "cpu", info.Backend)
	assert.Equal(t, 3, info.Threads)
	want := runtime.GOARCH
	if f, err := os.Open("/proc/cpuinfo"); err == nil && runtime.GOOS == "linux" {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "model name") {
				want = strings.TrimSpace(line[strings.Index(line, ":")+1:])
				break
			}
		}
		f.Close()
	}
	assert.Equal(t, want, info.Name)

	_, err := New(1 << 20)
	require.ErrorContains(t, err, "threads")
}

func TestUploadKeepsData(t *testing.T) {
	c := newCPU(t, 1)
	data := make([]byte, 2*34)
	require.NoError(t, quant.Quantize(backend.Q8_0, randVals(rand.New(rand.NewPCG(1, 1)), 64, 1), data))
	w, err := c.Upload(&backend.Weight{Name: "w", Type: backend.Q8_0, Rows: 2, Cols: 32, Data: data})
	require.NoError(t, err)
	wt := w.(*weightTensor)
	require.Same(t, &data[0], &wt.data[0], "upload must not copy the caller's data")
	assert.Equal(t, backend.Q8_0, w.DType())
	assert.Equal(t, 2, w.Rows())
	assert.Equal(t, 32, w.Cols())

	_, err = c.Upload(&backend.Weight{Name: "short", Type: backend.Q8_0, Rows: 3, Cols: 32, Data: data})
	require.ErrorContains(t, err, "short")
	_, err = c.Upload(&backend.Weight{Name: "odd", Type: backend.Q8_0, Rows: 1, Cols: 31, Data: data})
	require.ErrorContains(t, err, "odd")
	_, err = c.Upload(nil)
	require.Error(t, err)
}

func TestViewsAndIO(t *testing.T) {
	c := newCPU(t, 1)
	a := newAct(t, c, 4, 6, []float32{
		0, 1, 2, 3, 4, 5,
		10, 11, 12, 13, 14, 15,
		20, 21, 22, 23, 24, 25,
		30, 31, 32, 33, 34, 35,
	})
	v, err := c.View(a, 1, 2, 2, 3)
	require.NoError(t, err)
	require.Equal(t, []float32{12, 13, 14, 22, 23, 24}, readAll(t, c, v))
	vv, err := c.View(v, 1, 1, 1, 2) // a view of a view
	require.NoError(t, err)
	require.Equal(t, []float32{23, 24}, readAll(t, c, vv))
	require.NoError(t, c.Write(vv, []float32{-1, -2}))
	require.Equal(t, float32(-1), readAll(t, c, a)[2*6+3], "a view shares its parent's memory")

	for _, bad := range [][4]int{{3, 2, 0, 1}, {0, 1, 5, 2}, {-1, 1, 0, 1}, {0, 0, 0, 1}} {
		_, err := c.View(a, bad[0], bad[1], bad[2], bad[3])
		require.Error(t, err, "view %v", bad)
	}
	require.ErrorContains(t, c.Write(a, make([]float32, 5)), "5 values for 24")
	require.ErrorContains(t, c.Read(a, make([]float32, 25)), "25 values for 24")
	_, err = c.NewActivation("x", 0, 3)
	require.Error(t, err)
	_, err = c.NewActivation("x", 1<<40, 1<<10)
	require.Error(t, err)

	w := uploadF32(t, c, "w", 2, 3, []float32{1, 2, 3, 4, 5, 6})
	require.Equal(t, []float32{1, 2, 3, 4, 5, 6}, readAll(t, c, w))
	_, err = c.View(w, 0, 1, 0, 1)
	require.ErrorContains(t, err, "activation")
}

func TestShapeErrors(t *testing.T) {
	c := newCPU(t, 1)
	rng := rand.New(rand.NewPCG(2, 3))
	w := uploadF32(t, c, "w", 4, 8, randVals(rng, 32, 1))
	norm := uploadF32(t, c, "norm", 1, 8, randVals(rng, 8, 1))
	x := newAct(t, c, 3, 8, randVals(rng, 24, 1))
	y := newAct(t, c, 3, 4, nil)

	err := c.MatMul(y, w, newAct(t, c, 3, 7, nil))
	require.ErrorContains(t, err, "matmul")
	require.ErrorContains(t, err, "3x7")
	require.ErrorContains(t, c.MatMul(newAct(t, c, 2, 4, nil), w, x), "2x4")
	require.ErrorContains(t, c.MatMul(y, x, x), "weight")
	require.ErrorContains(t, c.MatMul(w, w, x), "destination")

	require.ErrorContains(t, c.RMSNorm(y, x, norm, 1e-5), "rmsnorm")
	require.ErrorContains(t, c.RMSNorm(x, x, w, 1e-5), "1x8")
	require.ErrorContains(t, c.SiLUMul(x, x, y), "silumul")
	require.ErrorContains(t, c.Add(x, x, newAct(t, c, 2, 8, nil)), "broadcast")
	require.ErrorContains(t, c.Add(y, x, x), "add")

	b := setBatch(t, c, &backend.BatchInput{IDs: []int32{1, 2, 3}, Pos: []int32{0, 1, 2}, Seq: []int32{0, 0, 0}, Outputs: []int32{2}})
	require.ErrorContains(t, c.ApplyRoPE(x, b, backend.RoPE{HeadDim: 3, Heads: 2, FreqBase: 1e4, FreqScale: 1}), "even")
	require.ErrorContains(t, c.ApplyRoPE(x, b, backend.RoPE{HeadDim: 2, Heads: 2, FreqBase: 1e4, FreqScale: 1}), "3x8")
	require.ErrorContains(t, c.ApplyRoPE(x, b, backend.RoPE{HeadDim: 4, Heads: 2, FreqBase: 1e4}), "scale")
	require.ErrorContains(t, c.Embed(newAct(t, c, 2, 8, nil), w, b), "embed")
	require.ErrorContains(t, c.GatherOutputs(newAct(t, c, 2, 8, nil), x, b), "gather")

	// Partial overlap is rejected; identical in-place operands are not.
	v1, err := c.View(x, 0, 2, 0, 8)
	require.NoError(t, err)
	v2, err := c.View(x, 1, 2, 0, 8)
	require.NoError(t, err)
	require.ErrorContains(t, c.Add(v2, v1, v1), "partially overlaps")
	require.NoError(t, c.Add(v1, v1, v1))
	row, err := c.View(x, 0, 1, 0, 8)
	require.NoError(t, err)
	require.ErrorContains(t, c.Add(x, x, row), "overlaps", "a broadcast row inside dst would be overwritten")
}

func TestBatchErrors(t *testing.T) {
	c := newCPU(t, 1)
	b, err := c.NewBatch(2)
	require.NoError(t, err)
	assert.Equal(t, 2, b.Cap())
	cases := map[string]*backend.BatchInput{
		"no tokens":         {},
		"exceed capacity":   {IDs: []int32{1, 2, 3}, Pos: []int32{0, 1, 2}, Seq: []int32{0, 0, 0}},
		"positions":         {IDs: []int32{1, 2}, Pos: []int32{0}, Seq: []int32{0, 0}},
		"negative id":       {IDs: []int32{-1}, Pos: []int32{0}, Seq: []int32{0}},
		"negative position": {IDs: []int32{1}, Pos: []int32{-3}, Seq: []int32{0}},
		"negative sequence": {IDs: []int32{1}, Pos: []int32{0}, Seq: []int32{-1}},
		"outside batch":     {IDs: []int32{1}, Pos: []int32{0}, Seq: []int32{0}, Outputs: []int32{1}},
	}
	for want, in := range cases {
		require.ErrorContains(t, c.SetBatch(b, in), want)
	}
	require.Equal(t, 0, b.Len(), "a rejected input leaves the batch unset")
	require.NoError(t, c.SetBatch(b, &backend.BatchInput{IDs: []int32{4, 5}, Pos: []int32{0, 1}, Seq: []int32{1, 1}, Outputs: []int32{1}}))
	assert.Equal(t, 2, b.Len())
	assert.Equal(t, 1, b.OutputLen())
	_, err = c.NewBatch(0)
	require.Error(t, err)

	empty, err := c.NewBatch(4)
	require.NoError(t, err)
	x := newAct(t, c, 1, 4, nil)
	require.ErrorContains(t, c.ApplyRoPE(x, empty, backend.RoPE{HeadDim: 4, Heads: 1, FreqBase: 1e4, FreqScale: 1}), "SetBatch")
}

func TestFreeAndClose(t *testing.T) {
	c, err := New(2)
	require.NoError(t, err)
	w := uploadF32(t, c, "w", 2, 4, make([]float32, 8))
	x := newAct(t, c, 1, 4, nil)
	y := newAct(t, c, 1, 2, nil)
	require.NoError(t, c.MatMul(y, w, x))
	require.NoError(t, c.Free(w))
	require.Nil(t, w.(*weightTensor).data, "free drops the reference to the weight's data")
	require.ErrorContains(t, c.MatMul(y, w, x), "freed")
	require.ErrorContains(t, c.Free(w), "already freed")
	require.NoError(t, c.Free(x))
	require.ErrorContains(t, c.Read(x, make([]float32, 4)), "freed")
	require.Error(t, c.Free(nil))
	require.Error(t, c.Free(42))

	require.NoError(t, c.Close())
	require.ErrorContains(t, c.Softmax(y), "closed")
	require.ErrorContains(t, c.Synchronize(), "closed")
	require.Error(t, c.Close())
}

func TestProfiling(t *testing.T) {
	c := newCPU(t, 2)
	rng := rand.New(rand.NewPCG(4, 5))
	const rows, cols, ntok = 6, 64, 3
	data := make([]byte, rows*2*34)
	for r := 0; r < rows; r++ {
		require.NoError(t, quant.Quantize(backend.Q8_0, randVals(rng, cols, 1), data[r*68:(r+1)*68]))
	}
	w, err := c.Upload(&backend.Weight{Name: "w", Type: backend.Q8_0, Rows: rows, Cols: cols, Data: data})
	require.NoError(t, err)
	x := newAct(t, c, ntok, cols, randVals(rng, ntok*cols, 1))
	y := newAct(t, c, ntok, rows, nil)

	require.NoError(t, c.MatMul(y, w, x))
	require.Empty(t, c.Profile(), "profiling is off by default")

	c.SetProfiling(true)
	for i := 0; i < 2; i++ {
		require.NoError(t, c.MatMul(y, w, x))
	}
	require.NoError(t, c.Add(y, y, y))
	require.Error(t, c.Add(x, y, y)) // failures are not counted
	prof := c.Profile()
	require.Len(t, prof, 2)
	mm, add := prof[0], prof[1]
	assert.Equal(t, "MatMul", mm.Op)
	assert.Equal(t, 2, mm.Calls)
	assert.Equal(t, int64(2*2*rows*cols*ntok), mm.Ops)
	assert.Equal(t, int64(2*(len(data)+4*ntok*(cols+rows))), mm.Bytes)
	assert.Positive(t, mm.Total)
	assert.Equal(t, "Add", add.Op)
	assert.Equal(t, 1, add.Calls)
	assert.Equal(t, int64(ntok*rows), add.Ops)

	c.SetProfiling(true)
	require.Empty(t, c.Profile(), "SetProfiling clears the counters")
	c.SetProfiling(false)
	require.NoError(t, c.MatMul(y, w, x))
	require.Empty(t, c.Profile())
}

// TestConcurrentCallers issues ops from several goroutines; the backend
// serializes them (run with -race).
func TestConcurrentCallers(t *testing.T) {
	c := newCPU(t, 2)
	rng := rand.New(rand.NewPCG(6, 7))
	const cols = 64
	w := uploadF32(t, c, "w", 8, cols, randVals(rng, 8*cols, 1))
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		xv := randVals(rng, 2*cols, 1)
		x := newAct(t, c, 2, cols, xv)
		y := newAct(t, c, 2, 8, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				assert.NoError(t, c.MatMul(y, w, x))
				assert.NoError(t, c.Softmax(y))
			}
		}()
	}
	wg.Wait()
}
