package quantize

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/qformat"
)

// typesOf returns the type Quantize would give each tensor, keyed by name.
func typesOf(t *testing.T, s synthSpec, typ string, keep ...string) map[string]backend.DType {
	t.Helper()
	opt := Options{Type: mustType(t, typ)}
	for _, k := range keep {
		r, err := ParseKeep(k)
		require.NoError(t, err)
		opt.Keep = append(opt.Keep, r)
	}
	plans, err := assignTypes(synthFile(t, s), opt)
	require.NoError(t, err)
	got := map[string]backend.DType{}
	for _, p := range plans {
		got[p.name()] = p.to
	}
	return got
}

// fileTypesOf quantizes for real and reads each tensor's type back as
// qinfer reads it (row formats through their metadata).
func fileTypesOf(t *testing.T, s synthSpec, typ string) map[string]backend.DType {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.gguf")
	_, err := Quantize(synthFile(t, s), out, Options{Type: mustType(t, typ)}, nil)
	require.NoError(t, err)
	f := openGGUF(t, out)
	got := map[string]backend.DType{}
	for _, ti := range f.Tensors {
		if qformat.IsCompanionTensor(f, ti.Name) {
			continue
		}
		tt, err := qformat.TensorType(f, ti.Name)
		require.NoError(t, err)
		got[ti.Name] = tt
	}
	return got
}

// moreBits16 are the layers of a 16-layer model that llama.cpp's
// use_more_bits picks (i < 16/8, i >= 7*16/8, or (i - 16/8) % 3 == 2),
// worked out by hand.
var moreBits16 = map[int]bool{0: true, 1: true, 4: true, 7: true, 10: true, 13: true, 14: true, 15: true}

// TestTypeChoiceMatchesLlamaRules checks llama-quantize's per-tensor
// choices, written out by hand from src/llama-quant.cpp, on a 16-layer
// model whose rows are whole K-quant blocks.
func TestTypeChoiceMatchesLlamaRules(t *testing.T) {
	s := synthSpec{layers: 16, dim: 256, kvDim: 32, ffn: 256, vocab: 256}
	type rule func(layer int, kind string) backend.DType
	cases := []struct {
		typ       string
		out, embd backend.DType
		layer     rule
	}{
		{"Q4_K_M", backend.Q6_K, backend.Q4_K, func(l int, k string) backend.DType {
			if (k == "attn_v" || k == "ffn_down") && moreBits16[l] {
				return backend.Q6_K
			}
			return backend.Q4_K
		}},
		{"Q4_K_S", backend.Q6_K, backend.Q4_K, func(l int, k string) backend.DType {
			if (k == "attn_v" && l < 4) || (k == "ffn_down" && l < 2) {
				return backend.Q5_K
			}
			return backend.Q4_K
		}},
		{"Q5_K_M", backend.Q6_K, backend.Q5_K, func(l int, k string) backend.DType {
			if (k == "attn_v" || k == "ffn_down") && moreBits16[l] {
				return backend.Q6_K
			}
			return backend.Q5_K
		}},
		{"Q5_K_S", backend.Q6_K, backend.Q5_K, func(int, string) backend.DType { return backend.Q5_K }},
		{"Q6_K", backend.Q6_K, backend.Q6_K, func(int, string) backend.DType { return backend.Q6_K }},
		{"Q8_0", backend.Q8_0, backend.Q8_0, func(int, string) backend.DType { return backend.Q8_0 }},
		// Q4_0 and Q5_1 files get a Q6_K classifier when its rows allow.
		{"Q4_0", backend.Q6_K, backend.Q4_0, func(int, string) backend.DType { return backend.Q4_0 }},
		{"Q5_1", backend.Q6_K, backend.Q5_1, func(int, string) backend.DType { return backend.Q5_1 }},
		{"F16", backend.F16, backend.F16, func(int, string) backend.DType { return backend.F16 }},
		// qinfer's rules for its row formats.
		{"W8", backend.W8, backend.Q8_0, func(int, string) backend.DType { return backend.W8 }},
		{"TERNARY", backend.Q8_0, backend.Q8_0, func(int, string) backend.DType { return backend.Ternary }},
		{"BINARY", backend.Q8_0, backend.Q8_0, func(int, string) backend.DType { return backend.Binary }},
		{"FP8", backend.FP8, backend.Q8_0, func(int, string) backend.DType { return backend.FP8 }},
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			got := typesOf(t, s, c.typ)
			assert.Equal(t, c.out, got["output.weight"], "output.weight")
			assert.Equal(t, c.embd, got["token_embd.weight"], "token_embd.weight")
			assert.Equal(t, backend.F32, got["output_norm.weight"])
			for l := 0; l < s.layers; l++ {
				for _, k := range []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"} {
					name := fmt.Sprintf("blk.%d.%s.weight", l, k)
					assert.Equal(t, c.layer(l, k), got[name], name)
				}
				assert.Equal(t, backend.F32, got[fmt.Sprintf("blk.%d.attn_norm.weight", l)])
			}
		})
	}
}

// TestTypeChoiceFallbacks covers rows that are not whole blocks of the
// chosen type: llama.cpp falls back Q4_K -> Q5_0, Q5_K -> Q5_1,
// Q6_K -> Q8_0 (the reason tiny-Q4_0.gguf has a Q8_0 output.weight).
func TestTypeChoiceFallbacks(t *testing.T) {
	s := synthSpec{layers: 2, dim: 64, kvDim: 32, ffn: 192, vocab: 300}
	got := typesOf(t, s, "Q4_K_M")
	assert.Equal(t, backend.Q8_0, got["output.weight"])
	assert.Equal(t, backend.Q5_0, got["token_embd.weight"])
	assert.Equal(t, backend.Q5_0, got["blk.0.attn_q.weight"])
	// With 2 layers use_more_bits picks layer 1 only (1 >= 7*2/8): its
	// attn_v and ffn_down get Q6_K from the mix, then Q8_0.
	assert.Equal(t, backend.Q5_0, got["blk.0.attn_v.weight"])
	assert.Equal(t, backend.Q8_0, got["blk.1.attn_v.weight"])
	assert.Equal(t, backend.Q8_0, got["blk.1.ffn_down.weight"])

	got = typesOf(t, s, "Q5_K_S")
	assert.Equal(t, backend.Q5_1, got["blk.1.ffn_up.weight"])
	assert.Equal(t, backend.Q8_0, got["output.weight"])

	got = typesOf(t, s, "Q4_0")
	assert.Equal(t, backend.Q8_0, got["output.weight"], "64 is not a multiple of 256: Q6_K falls back to Q8_0")
}

// TestTiedEmbeddings: without output.weight the embeddings double as the
// classifier and get its type.
func TestTiedEmbeddings(t *testing.T) {
	s := synthSpec{layers: 2, dim: 256, kvDim: 256, ffn: 256, vocab: 300, tied: true}
	assert.Equal(t, backend.Q6_K, typesOf(t, s, "Q4_0")["token_embd.weight"])
	assert.Equal(t, backend.W8, typesOf(t, s, "W8")["token_embd.weight"])
	assert.Equal(t, backend.Q8_0, typesOf(t, s, "TERNARY")["token_embd.weight"])
}

// TestKeepRules: the last matching rule wins, over llama.cpp's choice.
func TestKeepRules(t *testing.T) {
	s := synthSpec{layers: 2, dim: 256, kvDim: 256, ffn: 256, vocab: 300}
	got := typesOf(t, s, "Q4_0", "blk.*.ffn_down.weight=Q6_K", "blk.1.*=Q8_0", "output.weight=W8")
	assert.Equal(t, backend.Q6_K, got["blk.0.ffn_down.weight"])
	assert.Equal(t, backend.Q8_0, got["blk.1.ffn_down.weight"])
	assert.Equal(t, backend.Q8_0, got["blk.1.attn_q.weight"])
	assert.Equal(t, backend.Q4_0, got["blk.0.attn_q.weight"])
	assert.Equal(t, backend.W8, got["output.weight"])
	assert.Equal(t, backend.F32, got["blk.1.attn_norm.weight"], "a rule does not touch what is never quantized")
}

// TestWrittenTypes checks that the written file holds the chosen types,
// row formats included, and nothing else.
func TestWrittenTypes(t *testing.T) {
	s := synthSpec{layers: 2, dim: 64, kvDim: 32, ffn: 128, vocab: 256}
	for _, typ := range []string{"Q4_K_M", "W8", "TERNARY"} {
		want := typesOf(t, s, typ)
		got := fileTypesOf(t, s, typ)
		assert.Equal(t, want, got, typ)
	}
}

func TestLlamaOrder(t *testing.T) {
	names := []string{"blk.10.ffn_up.weight", "token_embd.weight", "blk.2.attn_q.weight", "blk.2.attn_k.weight", "output.weight", "output_norm.weight", "blk.0.ffn_down.weight"}
	llamaOrder(names)
	assert.Equal(t, []string{"output.weight", "output_norm.weight", "token_embd.weight", "blk.0.ffn_down.weight", "blk.2.attn_k.weight", "blk.2.attn_q.weight", "blk.10.ffn_up.weight"}, names)
	assert.Equal(t, 12, tensorLayer("blk.12.attn_q.weight"))
	assert.Equal(t, -1, tensorLayer("blkx.1"))
	assert.Equal(t, 1, nDims([]uint64{64, 1}))
	assert.Equal(t, 2, nDims([]uint64{64, 3, 1}))
}

func TestParseNames(t *testing.T) {
	for in, want := range map[string]string{"q4_k": "Q4_K_M", "Q5_K": "Q5_K_M", "fp8": "FP8_E4M3", "ternary": "TERNARY", "f16": "F16"} {
		ft, err := ParseFileType(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, ft.Name)
	}
	_, err := ParseFileType("Q3_K_M")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown quantization type "Q3_K_M"`)
	assert.True(t, strings.Contains(err.Error(), "Q4_K_M"), "lists the known types")
}
