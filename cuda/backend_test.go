package cuda_test

import (
	"errors"
	"math/rand"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/cuda"
	"qinfer/cuda/cudatest"
	"qinfer/host/backend"
)

func TestDeviceInfo(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		info := d.be.Info()
		assert.Equal(t, "cuda", info.Backend)
		assert.Contains(t, info.Name, d.be.Properties().Name)
		assert.Contains(t, info.Name, d.be.Arch().Name)
		assert.Positive(t, info.Memory)
		want := "compute_80"
		if d.be.Properties().Major < 8 {
			want = "compute_61"
		}
		assert.Equal(t, want, d.be.Arch().Name)
	})
}

// TestOutOfMemory: a device too small for a weight says how much was
// needed and how much is free; errors.Is(err, cuda.ErrOutOfMemory) holds.
func TestOutOfMemory(t *testing.T) {
	gpu := cudatest.H100()
	gpu.Memory = 4 << 20
	be, fake := newEmuBackend(t, gpu)
	defer be.Close()
	w := &backend.Weight{Name: "tok_embd", Type: backend.F32, Rows: 1024, Cols: 1024, Data: make([]byte, 4<<20)}
	_, err := be.Upload(w)
	require.Error(t, err)
	assert.True(t, errors.Is(err, cuda.ErrOutOfMemory), err.Error())
	assert.Contains(t, err.Error(), "upload weight tok_embd (F32 1024x1024)")
	assert.Contains(t, err.Error(), "needs 4.0 MiB of device memory")
	assert.Regexp(t, `[0-9.]+ [KM]iB free of 4.0 MiB`, err.Error())

	_, err = be.NewActivation("logits", 512, 32000)
	require.Error(t, err)
	assert.True(t, errors.Is(err, cuda.ErrOutOfMemory), err.Error())
	assert.Contains(t, err.Error(), "activation logits")
	assert.Contains(t, err.Error(), "needs 62.5 MiB")

	_, err = be.NewKVCache(backend.KVConfig{Layers: 32, Seqs: 1, Ctx: 4096, KVHeads: 8, HeadDim: 128, Type: backend.F16})
	require.Error(t, err)
	assert.True(t, errors.Is(err, cuda.ErrOutOfMemory))
	assert.Contains(t, err.Error(), "KV cache (32 layers, 1 sequences of 4096 positions, F16): needs 512.0 MiB")

	// The failed attempts leaked nothing.
	before := fake.Allocated(0)
	x, err := be.NewActivation("small", 2, 2)
	require.NoError(t, err)
	require.NoError(t, be.Free(x))
	assert.Equal(t, before, fake.Allocated(0))
}

// TestCloseReleasesEverything: Close frees every allocation, module,
// stream, event and graph the backend made, and the backend refuses work
// afterwards.
func TestCloseReleasesEverything(t *testing.T) {
	be, fake := newEmuBackend(t, cudatest.H100())
	rng := rand.New(rand.NewSource(1))
	m := newMiniStep(t, be, rng)
	require.NoError(t, be.SetBatch(m.bt, miniInputs(1)[0]))
	be.SetProfiling(true)
	require.NoError(t, m.ops())
	require.NoError(t, be.BeginCapture())
	require.NoError(t, m.ops())
	_, err := be.EndCapture()
	require.NoError(t, err)
	assert.Positive(t, be.Allocated())
	require.NoError(t, be.Close())
	assert.Zero(t, fake.Allocated(0))
	for what, n := range fake.Live() {
		assert.Zero(t, n, "%s left after Close", what)
	}
	_, err = be.NewActivation("x", 1, 1)
	assert.ErrorContains(t, err, "closed")
	assert.ErrorContains(t, be.Synchronize(), "closed")
	assert.NoError(t, be.Close(), "a second Close does nothing")
}

// TestFreeRules: freed tensors are refused, double frees are errors, and
// views die with their activation.
func TestFreeRules(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		be := d.be
		before := be.Allocated()
		x, err := be.NewActivation("x", 4, 8)
		require.NoError(t, err)
		v, err := be.View(x, 1, 2, 0, 8)
		require.NoError(t, err)
		require.NoError(t, be.Free(v))
		assert.ErrorContains(t, be.Free(v), "already freed")
		require.NoError(t, be.Write(x, make([]float32, 32)))
		v2, err := be.View(x, 0, 1, 0, 8)
		require.NoError(t, err)
		require.NoError(t, be.Free(x))
		assert.ErrorContains(t, be.Write(v2, make([]float32, 8)), "was freed")
		assert.ErrorContains(t, be.Softmax(x), "was freed")
		assert.Equal(t, before, be.Allocated())
		assert.ErrorContains(t, be.Free(42), "int is not a CUDA backend object")
		assert.ErrorContains(t, be.Free(nil), "nil")
	})
}

// TestProfiling: with profiling on, each op is timed with events and its
// bytes and operations counted; SetProfiling clears the counters.
func TestProfiling(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		be := d.be
		rng := rand.New(rand.NewSource(4))
		w, err := be.Upload(randomWeight(t, rng, backend.Q8_0, 64, 128))
		require.NoError(t, err)
		defer be.Free(w)
		x, _ := be.NewActivation("x", 3, 128)
		y, _ := be.NewActivation("y", 3, 64)
		defer be.Free(x)
		defer be.Free(y)
		be.SetProfiling(true)
		for i := 0; i < 2; i++ {
			require.NoError(t, be.MatMul(y, w, x))
		}
		require.NoError(t, be.Softmax(y))
		prof := be.Profile()
		byOp := map[string]backend.OpTiming{}
		for _, p := range prof {
			byOp[p.Op] = p
		}
		require.Contains(t, byOp, "matmul")
		assert.Equal(t, 2, byOp["matmul"].Calls)
		assert.Equal(t, int64(2*2*64*128*3), byOp["matmul"].Ops)
		assert.Positive(t, byOp["matmul"].Bytes)
		assert.Equal(t, 1, byOp["softmax"].Calls)
		be.SetProfiling(false)
		assert.Empty(t, be.Profile())
		require.NoError(t, be.MatMul(y, w, x))
		assert.Empty(t, be.Profile(), "nothing is timed when off")
	})
}

// TestNewBackendErrors: a device too old for the kernels and a failing
// driver are reported with the reason.
func TestNewBackendErrors(t *testing.T) {
	_, err := cuda.NewBackend(0, cudatest.New(cudatest.GTX980()))
	assert.ErrorContains(t, err, "compute capability 5.2 < 6.1")

	fake := cudatest.New(cudatest.H100())
	_, err = cuda.NewBackend(0, fake)
	assert.ErrorContains(t, err, "kernel qi_", "the plain fake has none of the kernels")

	_, err = cuda.NewBackend(3, cudatest.New(cudatest.H100()))
	assert.ErrorContains(t, err, "device 3")

	fake = cudatest.New(cudatest.H100())
	fake.Fail("cuModuleLoadData", cuda.CodeInvalidPTX)
	_, err = cuda.NewBackend(0, fake)
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "load kernel module quantize.compute_80.ptx"), err.Error())
	assert.Contains(t, err.Error(), "CUDA_ERROR_INVALID_PTX")
	for what, n := range fake.Live() {
		assert.Zero(t, n, "%s left after a failed NewBackend", what)
	}
}
