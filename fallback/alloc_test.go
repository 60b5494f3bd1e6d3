package fallback

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

// TestSteadyStateAllocations runs a decode-like step (every op, single
// and multi-threaded paths) repeatedly: after the first call has grown the
// scratch buffers, a step must not allocate.
func TestSteadyStateAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	rng := rand.New(rand.NewPCG(8, 9))
	c := newCPU(t, 2)
	const dim, heads, kvHeads, hd, ffn, vocab, ntok = 256, 8, 2, 32, 512, 64, 4
	quantW := func(rows, cols int) backend.Tensor {
		rb := cols / 32 * 34
		data := make([]byte, rows*rb)
		for r := 0; r < rows; r++ {
			require.NoError(t, quant.Quantize(backend.Q8_0, randVals(rng, cols, 1), data[r*rb:(r+1)*rb]))
		}
		w, err := c.Upload(&backend.Weight{Name: "w", Type: backend.Q8_0, Rows: rows, Cols: cols, Data: data})
		require.NoError(t, err)
		return w
	}
	emb := quantW(vocab, dim)
	wq, wk := quantW(heads*hd, dim), quantW(kvHeads*hd, dim)
	wup, wdown := quantW(ffn, dim), quantW(dim, ffn)
	norm := uploadF32(t, c, "norm", 1, dim, randVals(rng, dim, 1))
	kvc, err := c.NewKVCache(backend.KVConfig{Layers: 1, Seqs: 2, Ctx: 64, KVHeads: kvHeads, HeadDim: hd, Type: backend.F16})
	require.NoError(t, err)
	b, err := c.NewBatch(ntok)
	require.NoError(t, err)

	x, h := newAct(t, c, ntok, dim, nil), newAct(t, c, ntok, dim, nil)
	q, k, v := newAct(t, c, ntok, heads*hd, nil), newAct(t, c, ntok, kvHeads*hd, nil), newAct(t, c, ntok, kvHeads*hd, nil)
	att := newAct(t, c, ntok, heads*hd, nil)
	up, gate := newAct(t, c, ntok, ffn, nil), newAct(t, c, ntok, ffn, nil)
	out := newAct(t, c, 2, dim, nil)
	rope := backend.RoPE{HeadDim: hd, Heads: heads, FreqBase: 1e4, FreqScale: 1}
	ropeK := backend.RoPE{HeadDim: hd, Heads: kvHeads, FreqBase: 1e4, FreqScale: 1}

	// Large enough for the elementwise ops and RoPE to use the pool.
	const bigRows, bigCols = 64, 1024
	big, bigRow := newAct(t, c, bigRows, bigCols, randVals(rng, bigRows*bigCols, 1)), newAct(t, c, 1, bigCols, nil)
	bigIn := &backend.BatchInput{IDs: make([]int32, bigRows), Pos: make([]int32, bigRows), Seq: make([]int32, bigRows)}
	bigB := setBatch(t, c, bigIn)
	bigRope := backend.RoPE{HeadDim: 64, Heads: bigCols / 64, FreqBase: 1e4, FreqScale: 1}

	in := &backend.BatchInput{IDs: make([]int32, ntok), Pos: make([]int32, ntok), Seq: make([]int32, ntok), Outputs: []int32{1, 3}}
	step := 0
	run := func() {
		for i := range in.IDs {
			in.IDs[i] = int32((step + i) % vocab)
			in.Pos[i] = int32(step % 60)
			in.Seq[i] = int32(i % 2)
		}
		step++
		require.NoError(t, c.SetBatch(b, in))
		require.NoError(t, c.Embed(x, emb, b))
		require.NoError(t, c.RMSNorm(h, x, norm, 1e-5))
		require.NoError(t, c.MatMul(q, wq, h))
		require.NoError(t, c.MatMul(k, wk, h))
		require.NoError(t, c.MatMul(v, wk, h))
		require.NoError(t, c.ApplyRoPE(q, b, rope))
		require.NoError(t, c.ApplyRoPE(k, b, ropeK))
		require.NoError(t, c.Attention(att, q, k, v, kvc, 0, b, 0.125))
		require.NoError(t, c.MatMul(up, wup, h))
		require.NoError(t, c.MatMul(gate, wup, h))
		require.NoError(t, c.SiLUMul(gate, gate, up))
		require.NoError(t, c.MatMul(h, wdown, gate))
		require.NoError(t, c.Add(x, x, h))
		require.NoError(t, c.GatherOutputs(out, x, b))
		require.NoError(t, c.Softmax(out))

		require.NoError(t, c.ApplyRoPE(big, bigB, bigRope))
		require.NoError(t, c.Add(big, big, bigRow))
		require.NoError(t, c.SiLUMul(big, big, big))
		require.NoError(t, c.Softmax(big))
	}
	run()
	c.SetProfiling(true)
	run()
	require.Zero(t, testing.AllocsPerRun(5, run), "allocations per step with profiling on")
	c.SetProfiling(false)
	require.Zero(t, testing.AllocsPerRun(5, run), "allocations per step")
}
