package model

import (
	"bytes"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/fallback"
	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/testenv"
)

func newCPU(t *testing.T) backend.Backend {
	t.Helper()
	be, err := fallback.New(2)
	require.NoError(t, err)
	t.Cleanup(func() { _ = be.Close() })
	return be
}

// step is one forward call of the reference test: tokens of possibly
// several sequences, and the rows whose logits are checked.
type refStep struct {
	ids, seq []int32
	outputs  []int32
}

// TestForwardMatchesReference runs random F32 models (llama with GQA, tied
// embeddings and linear RoPE scaling, QKV fused without copying; Qwen2
// with biases, NEOX RoPE and unfused projections) through the CPU backend
// and compares every wanted logit with a float64 textbook forward pass.
// Two sequences share batches at different positions, batches want all,
// some or no outputs.
func TestForwardMatchesReference(t *testing.T) {
	specs := []tinySpec{
		{arch: "llama", dim: 64, layers: 2, heads: 4, kvHeads: 2, ff: 96, vocab: 61, ctxTrain: 64,
			eps: 1e-5, ropeBase: 5000, ropeFactor: 2, tied: true, seed: 1},
		{arch: "qwen2", dim: 64, layers: 2, heads: 4, kvHeads: 1, ff: 80, vocab: 53, ctxTrain: 64,
			eps: 1e-6, ropeBase: 10000, bias: true, scrambled: true, seed: 2},
	}
	steps := []refStep{
		{ids: []int32{5, 17, 3, 40, 9}, seq: []int32{0, 0, 0, 1, 1}, outputs: []int32{0, 1, 2, 3, 4}},
		{ids: []int32{11, 2}, seq: []int32{1, 0}, outputs: []int32{0, 1}},
		{ids: []int32{7, 8, 30}, seq: []int32{0, 0, 1}, outputs: nil}, // cache only
		{ids: []int32{21, 13, 1, 44}, seq: []int32{1, 0, 0, 1}, outputs: []int32{2, 3}},
	}
	for _, sp := range specs {
		t.Run(sp.arch, func(t *testing.T) {
			f, ref := buildTiny(t, sp)
			be := newCPU(t)
			m, err := Load(f, be, Options{MaxBatch: 8, Ctx: 32, Seqs: 2, KVType: backend.F32})
			require.NoError(t, err)
			defer func() { require.NoError(t, m.Close()) }()

			cfg := m.Config()
			assert.Equal(t, sp.arch == "qwen2", cfg.Neox)
			assert.Equal(t, sp.bias, cfg.QKVBias)
			assert.Equal(t, sp.tied, cfg.TiedEmbeddings)
			assert.Equal(t, sp.vocab, cfg.Vocab)
			if sp.ropeFactor != 0 {
				assert.Equal(t, 1/sp.ropeFactor, cfg.RopeScale)
			}

			logits, err := m.NewLogits()
			require.NoError(t, err)
			batch, err := be.NewBatch(8)
			require.NoError(t, err)
			seqs := []*refSeq{newRefSeq(ref), newRefSeq(ref)}
			pos := []int32{0, 0}
			worst := 0.0
			for si, st := range steps {
				in := backend.BatchInput{IDs: st.ids, Seq: st.seq, Outputs: st.outputs}
				want := make([][]float64, len(st.ids))
				for i, id := range st.ids {
					in.Pos = append(in.Pos, pos[st.seq[i]])
					pos[st.seq[i]]++
					want[i] = ref.step(seqs[st.seq[i]], id)
				}
				require.NoError(t, be.SetBatch(batch, &in))
				require.NoError(t, m.Forward(batch, logits))
				if len(st.outputs) == 0 {
					continue
				}
				got := make([]float32, logits.Rows()*logits.Cols())
				require.NoError(t, be.Read(logits, got))
				for o, row := range st.outputs {
					for v := 0; v < sp.vocab; v++ {
						g, w := float64(got[o*sp.vocab+v]), want[row][v]
						worst = math.Max(worst, math.Abs(g-w))
						// F32 weights and cache: only float32 rounding
						// separates the two (logits are O(1..10)).
						require.InDelta(t, w, g, 2e-4*math.Max(1, math.Abs(w)),
							"step %d row %d (seq %d) token %d", si, row, st.seq[row], v)
					}
				}
			}
			t.Logf("%s: max |logit - reference| = %.2e", sp.arch, worst)
		})
	}
}

func TestForwardRejectsBadBatches(t *testing.T) {
	f, _ := buildTiny(t, tinySpec{arch: "llama", dim: 32, layers: 1, heads: 2, kvHeads: 2, ff: 32,
		vocab: 20, ctxTrain: 16, eps: 1e-5, ropeBase: 10000, seed: 3})
	be := newCPU(t)
	m, err := Load(f, be, Options{MaxBatch: 4, Ctx: 8, Seqs: 1, KVType: backend.F16})
	require.NoError(t, err)
	defer m.Close()
	logits, err := m.NewLogits()
	require.NoError(t, err)
	assert.Equal(t, 4, logits.Rows())
	assert.Equal(t, 20, logits.Cols())

	big, err := be.NewBatch(6)
	require.NoError(t, err)
	require.NoError(t, be.SetBatch(big, &backend.BatchInput{
		IDs: []int32{1, 2, 3, 4, 5}, Pos: []int32{0, 1, 2, 3, 4}, Seq: []int32{0, 0, 0, 0, 0}, Outputs: []int32{4}}))
	err = m.Forward(big, logits)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "batch of 5 tokens")

	small, err := be.NewActivation("small", 1, 20)
	require.NoError(t, err)
	b, err := be.NewBatch(4)
	require.NoError(t, err)
	require.NoError(t, be.SetBatch(b, &backend.BatchInput{
		IDs: []int32{1, 2}, Pos: []int32{0, 1}, Seq: []int32{0, 0}, Outputs: []int32{0, 1}}))
	err = m.Forward(b, small)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "logits buffer")
}

func TestUnknownArchitecture(t *testing.T) {
	b := gguf.NewBuilder()
	b.Set("general.architecture", gguf.Str("gpt-neox"))
	f := parseBuilder(t, b)
	_, err := Load(f, newCPU(t), DefaultOptions())
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"gpt-neox"`)
	assert.Contains(t, err.Error(), "llama, qwen2")
	_, err = ConfigFromGGUF(f)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "gpt-neox")

	f = parseBuilder(t, gguf.NewBuilder())
	_, err = Load(f, newCPU(t), DefaultOptions())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "general.architecture")
	assert.Equal(t, []string{"llama", "qwen2"}, Supported())
}

func parseBuilder(t *testing.T, b *gguf.Builder) *gguf.File {
	t.Helper()
	var buf bytes.Buffer
	_, err := b.WriteTo(&buf)
	require.NoError(t, err)
	f, err := gguf.Parse(buf.Bytes())
	require.NoError(t, err)
	return f
}

// llamaKeys is a valid llama header without tensors.
func llamaKeys() *gguf.Builder {
	b := gguf.NewBuilder()
	b.Set("general.architecture", gguf.Str("llama"))
	b.Set("llama.embedding_length", gguf.U32(256))
	b.Set("llama.block_count", gguf.U32(4))
	b.Set("llama.attention.head_count", gguf.U32(8))
	b.Set("llama.feed_forward_length", gguf.U32(640))
	b.Set("llama.context_length", gguf.U32(2048))
	b.Set("llama.attention.layer_norm_rms_epsilon", gguf.F32(1e-6))
	b.Set("tokenizer.ggml.tokens", gguf.StrArray([]string{"a", "b", "c"}))
	return b
}

func TestConfigKeys(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		c, err := ConfigFromGGUF(parseBuilder(t, llamaKeys()))
		require.NoError(t, err)
		assert.Equal(t, Config{Arch: "llama", Dim: 256, Layers: 4, Heads: 8, KVHeads: 8, HeadDim: 32, FFN: 640,
			Vocab: 3, CtxTrain: 2048, NormEps: 1e-6, RopeBase: 10000, RopeScale: 1,
			AttnScale: float32(1 / math.Sqrt(32)), TiedEmbeddings: true}, c)
		assert.Equal(t, 256, c.QDim())
		assert.Equal(t, 256, c.KVDim())
	})
	t.Run("gqa and linear scaling", func(t *testing.T) {
		b := llamaKeys()
		b.Set("llama.attention.head_count_kv", gguf.U32(2))
		b.Set("llama.rope.freq_base", gguf.F32(500000))
		b.Set("llama.rope.scaling.type", gguf.Str("linear"))
		b.Set("llama.rope.scaling.factor", gguf.F32(4))
		c, err := ConfigFromGGUF(parseBuilder(t, b))
		require.NoError(t, err)
		assert.Equal(t, 2, c.KVHeads)
		assert.Equal(t, 64, c.KVDim())
		assert.Equal(t, float32(500000), c.RopeBase)
		assert.Equal(t, float32(0.25), c.RopeScale)
	})
	t.Run("old scale_linear key", func(t *testing.T) {
		b := llamaKeys()
		b.Set("llama.rope.scale_linear", gguf.F32(8))
		c, err := ConfigFromGGUF(parseBuilder(t, b))
		require.NoError(t, err)
		assert.Equal(t, float32(0.125), c.RopeScale)
	})
	t.Run("vocab from output tensor", func(t *testing.T) {
		b := llamaKeys()
		b.Delete("tokenizer.ggml.tokens")
		require.NoError(t, b.AddTensor("output.weight", backend.F32, []uint64{256, 7}, make([]byte, 256*7*4)))
		c, err := ConfigFromGGUF(parseBuilder(t, b))
		require.NoError(t, err)
		assert.Equal(t, 7, c.Vocab)
		assert.False(t, c.TiedEmbeddings)
	})
	t.Run("qwen2 traits", func(t *testing.T) {
		b := gguf.NewBuilder()
		b.Set("general.architecture", gguf.Str("qwen2"))
		for k, v := range map[string]uint32{"embedding_length": 128, "block_count": 2, "attention.head_count": 4,
			"attention.head_count_kv": 2, "feed_forward_length": 256, "context_length": 4096, "vocab_size": 100} {
			b.Set("qwen2."+k, gguf.U32(v))
		}
		b.Set("qwen2.attention.layer_norm_rms_epsilon", gguf.F32(1e-6))
		b.Set("qwen2.rope.freq_base", gguf.F32(1e6))
		c, err := ConfigFromGGUF(parseBuilder(t, b))
		require.NoError(t, err)
		assert.True(t, c.Neox)
		assert.True(t, c.QKVBias)
		assert.Equal(t, 100, c.Vocab)
		assert.Equal(t, float32(1e6), c.RopeBase)
	})
	for name, edit := range map[string]struct {
		edit func(b *gguf.Builder)
		want string
	}{
		"missing head count": {func(b *gguf.Builder) { b.Delete("llama.attention.head_count") }, "llama.attention.head_count"},
		"yarn":               {func(b *gguf.Builder) { b.Set("llama.rope.scaling.type", gguf.Str("yarn")) }, `"yarn"`},
		"bad kv heads":       {func(b *gguf.Builder) { b.Set("llama.attention.head_count_kv", gguf.U32(3)) }, "not a multiple"},
		"partial rope":       {func(b *gguf.Builder) { b.Set("llama.rope.dimension_count", gguf.U32(16)) }, "rope.dimension_count"},
		"string dim":         {func(b *gguf.Builder) { b.Set("llama.embedding_length", gguf.Str("x")) }, "llama.embedding_length"},
		"experts":            {func(b *gguf.Builder) { b.Set("llama.expert_count", gguf.U32(8)) }, "experts"},
		"no vocab":           {func(b *gguf.Builder) { b.Delete("tokenizer.ggml.tokens") }, "vocabulary size"},
	} {
		t.Run(name, func(t *testing.T) {
			b := llamaKeys()
			edit.edit(b)
			_, err := ConfigFromGGUF(parseBuilder(t, b))
			require.Error(t, err)
			assert.Contains(t, err.Error(), edit.want)
		})
	}
}

func TestLoadNamesBadTensors(t *testing.T) {
	spec := tinySpec{arch: "llama", dim: 32, layers: 1, heads: 2, kvHeads: 2, ff: 32,
		vocab: 20, ctxTrain: 16, eps: 1e-5, ropeBase: 10000, seed: 4}
	f, _ := buildTiny(t, spec)
	b := gguf.FromFile(f)
	require.True(t, b.DeleteTensor("blk.0.ffn_up.weight"))
	_, err := Load(parseBuilder(t, b), newCPU(t), DefaultOptions())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "blk.0.ffn_up.weight")

	b = gguf.FromFile(f)
	require.NoError(t, b.ReplaceTensor("blk.0.attn_k.weight", backend.F32, []uint64{32, 16}, make([]byte, 32*16*4)))
	_, err = Load(parseBuilder(t, b), newCPU(t), DefaultOptions())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "blk.0.attn_k.weight")

	b = gguf.FromFile(f)
	require.NoError(t, b.AddTensor("rope_freqs.weight", backend.F32, []uint64{8}, make([]byte, 32)))
	_, err = Load(parseBuilder(t, b), newCPU(t), DefaultOptions())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rope_freqs.weight")

	_, err = Load(f, newCPU(t), Options{KVType: backend.Q8_0})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "KV cache type")
}

// TestTestdataConfigs checks the llama.cpp files' shapes against the
// table in the test data README.
func TestTestdataConfigs(t *testing.T) {
	for name, want := range map[string][5]int{
		"tiny-f32.gguf":  {64, 2, 4, 4, 192},
		"tiny-F16.gguf":  {64, 2, 4, 4, 192},
		"tiny-Q8_0.gguf": {64, 2, 4, 4, 192},
		"tiny-Q4_0.gguf": {64, 2, 4, 4, 192},
		"gqa-Q8_0.gguf":  {128, 3, 8, 2, 320},
		"gqa-Q4_0.gguf":  {128, 3, 8, 2, 320},
	} {
		f, err := gguf.Open(testenv.Path(t, "llamacpp", name))
		require.NoError(t, err)
		c, err := ConfigFromGGUF(f)
		require.NoError(t, err, name)
		assert.Equal(t, want, [5]int{c.Dim, c.Layers, c.Heads, c.KVHeads, c.FFN}, name)
		assert.Equal(t, 32000, c.Vocab, name)
		assert.Equal(t, c.Dim/c.Heads, c.HeadDim, name)
		assert.False(t, c.Neox, name)
		assert.False(t, c.TiedEmbeddings, name)
		require.NoError(t, f.Close())
	}
}
