package cuda_test

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/cuda"
	"qinfer/host/backend"
	"qinfer/kernels/emu"
)

// miniStep is a decode step of a one-layer model: embed, norm, fused QKV
// projection, RoPE, attention, output projection, residual, gather.
type miniStep struct {
	be                    *cuda.Backend
	table, norm, wqkv, wo backend.Tensor
	x, h, qkv, att, o, g  backend.Tensor
	q, k, v               backend.Tensor
	bt                    backend.Batch
	cache                 backend.KVCache
}

const (
	miniN     = 2 // tokens per step
	miniDim   = 64
	miniHeads = 4
	miniKV    = 2
	miniHD    = 16
	miniVocab = 40
)

func newMiniStep(t *testing.T, be *cuda.Backend, rng *rand.Rand) *miniStep {
	t.Helper()
	m := &miniStep{be: be}
	up := func(w *backend.Weight) backend.Tensor {
		x, err := be.Upload(w)
		require.NoError(t, err)
		t.Cleanup(func() { _ = be.Free(x) })
		return x
	}
	act := func(name string, rows, cols int) backend.Tensor {
		x, err := be.NewActivation(name, rows, cols)
		require.NoError(t, err)
		t.Cleanup(func() { _ = be.Free(x) })
		return x
	}
	view := func(x backend.Tensor, col0, cols int) backend.Tensor {
		v, err := be.View(x, 0, miniN, col0, cols)
		require.NoError(t, err)
		return v
	}
	qd, kd := miniHeads*miniHD, miniKV*miniHD
	m.table = up(randomWeight(t, rng, backend.Q8_0, miniVocab, miniDim))
	norm := randomWeight(t, rng, backend.F32, 1, miniDim)
	m.norm = up(norm)
	m.wqkv = up(randomWeight(t, rng, backend.Q4_0, qd+2*kd, miniDim))
	m.wo = up(randomWeight(t, rng, backend.Q8_0, miniDim, qd))
	m.x, m.h = act("x", miniN, miniDim), act("h", miniN, miniDim)
	m.qkv, m.att, m.o = act("qkv", miniN, qd+2*kd), act("att", miniN, qd), act("o", miniN, miniDim)
	m.g = act("g", 1, miniDim)
	m.q, m.k, m.v = view(m.qkv, 0, qd), view(m.qkv, qd, kd), view(m.qkv, qd+kd, kd)
	var err error
	m.bt, err = be.NewBatch(miniN)
	require.NoError(t, err)
	t.Cleanup(func() { _ = be.Free(m.bt) })
	m.cache, err = be.NewKVCache(backend.KVConfig{Layers: 1, Seqs: 2, Ctx: 16, KVHeads: miniKV, HeadDim: miniHD, Type: backend.F16})
	require.NoError(t, err)
	t.Cleanup(func() { _ = be.Free(m.cache) })
	return m
}

// ops enqueues the step.
func (m *miniStep) ops() error {
	be := m.be
	for _, f := range []func() error{
		func() error { return be.Embed(m.x, m.table, m.bt) },
		func() error { return be.RMSNorm(m.h, m.x, m.norm, 1e-5) },
		func() error { return be.MatMul(m.qkv, m.wqkv, m.h) },
		func() error {
			return be.ApplyRoPE(m.q, m.bt, backend.RoPE{HeadDim: miniHD, Heads: miniHeads, FreqBase: 10000, FreqScale: 1})
		},
		func() error {
			return be.ApplyRoPE(m.k, m.bt, backend.RoPE{HeadDim: miniHD, Heads: miniKV, FreqBase: 10000, FreqScale: 1})
		},
		func() error { return be.Attention(m.att, m.q, m.k, m.v, m.cache, 0, m.bt, 0.25) },
		func() error { return be.MatMul(m.o, m.wo, m.att) },
		func() error { return be.Add(m.x, m.x, m.o) },
		func() error { return be.GatherOutputs(m.g, m.x, m.bt) },
	} {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// miniInputs: two sequences decoded together, positions advancing.
func miniInputs(steps int) []*backend.BatchInput {
	var ins []*backend.BatchInput
	for s := 0; s < steps; s++ {
		ins = append(ins, &backend.BatchInput{
			IDs:     []int32{int32((7*s + 3) % miniVocab), int32((11*s + 5) % miniVocab)},
			Pos:     []int32{int32(s), int32(s)},
			Seq:     []int32{0, 1},
			Outputs: []int32{int32(s % 2)},
		})
	}
	return ins
}

// TestGraphReplayMatchesEager captures a decode step once and replays it
// with new ids, positions and output rows set through the batch: every
// step's output equals the same ops run one by one, bit for bit.
func TestGraphReplayMatchesEager(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		be := d.be
		rng := rand.New(rand.NewSource(1))
		m := newMiniStep(t, be, rng)
		ins := miniInputs(6)

		var eager [][]float32
		for _, in := range ins {
			require.NoError(t, be.SetBatch(m.bt, in))
			require.NoError(t, m.ops())
			out := make([]float32, miniDim)
			require.NoError(t, be.Read(m.g, out))
			eager = append(eager, out)
		}

		// A fresh cache for the replay.
		require.NoError(t, be.Free(m.cache))
		var err error
		m.cache, err = be.NewKVCache(backend.KVConfig{Layers: 1, Seqs: 2, Ctx: 16, KVHeads: miniKV, HeadDim: miniHD, Type: backend.F16})
		require.NoError(t, err)

		require.NoError(t, be.SetBatch(m.bt, ins[0]))
		require.NoError(t, be.BeginCapture())
		require.NoError(t, m.ops())
		g, err := be.EndCapture()
		require.NoError(t, err)
		defer g.Free()
		for i, in := range ins {
			require.NoError(t, be.SetBatch(m.bt, in))
			require.NoError(t, g.Launch())
			out := make([]float32, miniDim)
			require.NoError(t, be.Read(m.g, out))
			assert.Equal(t, eager[i], out, "step %d", i)
		}
	})
}

// TestCaptureRules: what synchronises or allocates is refused during a
// capture, an op that fails makes EndCapture fail, and the backend works
// normally afterwards.
func TestCaptureRules(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		be := d.be
		rng := rand.New(rand.NewSource(2))
		m := newMiniStep(t, be, rng)
		require.NoError(t, be.SetBatch(m.bt, miniInputs(1)[0]))
		require.NoError(t, m.ops()) // sizes the scratch buffers

		require.NoError(t, be.BeginCapture())
		assert.ErrorContains(t, be.BeginCapture(), "already in progress")
		assert.ErrorContains(t, be.Write(m.x, make([]float32, miniN*miniDim)), "not allowed while a CUDA graph is being captured")
		assert.ErrorContains(t, be.Read(m.x, make([]float32, miniN*miniDim)), "being captured")
		assert.ErrorContains(t, be.SetBatch(m.bt, miniInputs(1)[0]), "being captured")
		assert.ErrorContains(t, be.Synchronize(), "being captured")
		_, err := be.NewActivation("late", 1, 1)
		assert.ErrorContains(t, err, "being captured")
		require.NoError(t, m.ops())
		// A failing op (wrong shape) poisons the capture.
		assert.Error(t, be.Add(m.x, m.x, m.g2(t)))
		_, err = be.EndCapture()
		assert.ErrorContains(t, err, "an op failed during the capture")
		_, err = be.EndCapture()
		assert.ErrorContains(t, err, "no capture in progress")

		// Business as usual afterwards.
		require.NoError(t, be.SetBatch(m.bt, miniInputs(2)[1]))
		require.NoError(t, m.ops())
		require.NoError(t, be.Synchronize())
	})
}

// g2 is a tensor of the wrong shape for Add with x.
func (m *miniStep) g2(t *testing.T) backend.Tensor {
	v, err := m.be.View(m.qkv, 0, 1, 0, 3)
	require.NoError(t, err)
	return v
}

// TestReplayErrorsAreReported: a replayed graph skips the host's checks,
// so kernels check ids and positions themselves; an input they cannot
// honour is reported by the next Synchronize (never a silent garbage
// result), and the backend recovers.
func TestReplayErrorsAreReported(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		be := d.be
		rng := rand.New(rand.NewSource(3))
		m := newMiniStep(t, be, rng)
		ins := miniInputs(2)
		require.NoError(t, be.SetBatch(m.bt, ins[0]))
		require.NoError(t, m.ops())
		require.NoError(t, be.BeginCapture())
		require.NoError(t, m.ops())
		g, err := be.EndCapture()
		require.NoError(t, err)
		defer g.Free()

		bad := *ins[1]
		bad.IDs = []int32{3, miniVocab + 5}
		require.NoError(t, be.SetBatch(m.bt, &bad))
		require.NoError(t, g.Launch())
		assert.EqualError(t, be.Synchronize(), "cuda: embed: token 1 id 45 outside the table of 40 rows")

		bad = *ins[1]
		bad.Pos = []int32{16, 1}
		require.NoError(t, be.SetBatch(m.bt, &bad))
		require.NoError(t, g.Launch())
		out := make([]float32, miniDim)
		assert.EqualError(t, be.Read(m.g, out), "read activation g (1x64): cuda: attention: token 0 position 16 outside context of 16")

		require.NoError(t, be.SetBatch(m.bt, ins[1]))
		require.NoError(t, g.Launch())
		require.NoError(t, be.Read(m.g, out))
	})
}

func TestStatusWordIsReportedOnce(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		require.NoError(t, d.be.StatusForTest([4]int32{2, 5, 300, 256}))
		assert.EqualError(t, d.be.Synchronize(), "cuda: attention: token 5 position 300 outside context of 256")
		assert.NoError(t, d.be.Synchronize())
	})
}

// TestKernelsIndependentOfThreadOrder runs a decode step and GEMMs of
// each format on the emulator with a block's threads resumed in lock
// step, in reverse, and depth-first (a warp that passes a barrier runs
// ahead): a kernel that reads shared memory another thread writes without
// a barrier in between would change its result.
func TestKernelsIndependentOfThreadOrder(t *testing.T) {
	for _, ed := range emuDevices {
		t.Run(ed.name, func(t *testing.T) {
			if !emu.Available {
				t.Skip("the kernel emulator needs cgo on Linux")
			}
			be, _ := newEmuBackend(t, ed.gpu)
			defer be.Close()
			run := func() []float32 {
				rng := rand.New(rand.NewSource(5))
				m := newMiniStep(t, be, rng)
				var out []float32
				for _, in := range miniInputs(3) {
					require.NoError(t, be.SetBatch(m.bt, in))
					require.NoError(t, m.ops())
					g := make([]float32, miniDim)
					require.NoError(t, be.Read(m.g, g))
					out = append(out, g...)
				}
				matmul := func(hw *backend.Weight) {
					w, err := be.Upload(hw)
					require.NoError(t, err)
					x, _ := be.NewActivation("x", 20, 256)
					y, _ := be.NewActivation("y", 20, 70)
					require.NoError(t, be.Write(x, randn(rng, 20*256, 1)))
					require.NoError(t, be.MatMul(y, w, x))
					v := make([]float32, 20*70)
					require.NoError(t, be.Read(y, v))
					out = append(out, v...)
					require.NoError(t, be.Free(w))
					require.NoError(t, be.Free(x))
					require.NoError(t, be.Free(y))
				}
				for _, typ := range []backend.DType{backend.Q8_0, backend.Q4_0, backend.Q4_K, backend.Q5_K, backend.Q6_K, backend.W8, backend.F16,
					backend.FP8, backend.Ternary, backend.Binary} {
					matmul(randomWeight(t, rng, typ, 70, 256))
				}
				// A split weight: its float part stages the activations of
				// the outlier channels in shared memory, 64 at a time.
				matmul(splitWeight(t, rng, backend.W8, 70, 256, splitCols(rng, 256, 150), 0))
				return out
			}
			forward := run()
			defer emu.SetOrder(emu.Forward)
			for _, o := range []emu.Order{emu.Reverse, emu.DepthFirst} {
				emu.SetOrder(o)
				assert.Equal(t, forward, run(), "order %d", o)
			}
		})
	}
}
