package quantize

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/quant"
)

// synthSpec shapes a small random llama model for tests that need no
// tokenizer (type choice, errors).
type synthSpec struct {
	layers, dim, kvDim, ffn, vocab int
	tied                           bool
}

// synthFile builds an F32 llama GGUF in memory with seeded N(0, 0.02)
// weights, tensors in llama2.c-converter order (not llama.cpp's, so that
// the writer's reordering is exercised).
func synthFile(t *testing.T, s synthSpec) *gguf.File {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, uint64(s.layers*1000+s.dim)))
	b := gguf.NewBuilder()
	b.Set("general.architecture", gguf.Str("llama"))
	b.Set("general.name", gguf.Str("synthetic"))
	b.Set("llama.context_length", gguf.U32(128))
	b.Set("llama.embedding_length", gguf.U32(uint32(s.dim)))
	b.Set("llama.feed_forward_length", gguf.U32(uint32(s.ffn)))
	b.Set("llama.attention.head_count", gguf.U32(uint32(s.dim/32)))
	b.Set("llama.attention.head_count_kv", gguf.U32(uint32(s.kvDim/32)))
	b.Set("llama.block_count", gguf.U32(uint32(s.layers)))
	b.Set("llama.attention.layer_norm_rms_epsilon", gguf.F32(1e-5))
	add := func(name string, dims ...int) {
		n := 1
		d := make([]uint64, len(dims))
		for i, v := range dims {
			n *= v
			d[i] = uint64(v)
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 0.02)
		}
		if len(dims) == 1 {
			for i := range x {
				x[i] = 1 + x[i]
			}
		}
		raw := make([]byte, 4*n)
		require.NoError(t, quant.Quantize(backend.F32, x, raw))
		require.NoError(t, b.AddTensor(name, backend.F32, d, raw))
	}
	add("token_embd.weight", s.dim, s.vocab)
	add("output_norm.weight", s.dim)
	if !s.tied {
		add("output.weight", s.dim, s.vocab)
	}
	for l := 0; l < s.layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_q.weight", s.dim, s.dim)
		add(p+"attn_k.weight", s.dim, s.kvDim)
		add(p+"attn_v.weight", s.dim, s.kvDim)
		add(p+"attn_output.weight", s.dim, s.dim)
		add(p+"attn_norm.weight", s.dim)
		add(p+"ffn_gate.weight", s.dim, s.ffn)
		add(p+"ffn_down.weight", s.ffn, s.dim)
		add(p+"ffn_up.weight", s.dim, s.ffn)
		add(p+"ffn_norm.weight", s.dim)
	}
	var buf bytes.Buffer
	_, err := b.WriteTo(&buf)
	require.NoError(t, err)
	f, err := gguf.Parse(buf.Bytes())
	require.NoError(t, err)
	return f
}
