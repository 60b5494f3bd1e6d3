package tokenizer

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/gguf"
)

func TestUnknownModelAndPreType(t *testing.T) {
	_, err := NewVocab("bert", "")
	require.Error(t, err)
	for _, s := range []string{`"bert"`, `"llama"`, `"gpt2"`, "tokenizer.ggml.model"} {
		assert.Contains(t, err.Error(), s)
	}

	_, err = New(&Vocab{Model: "t5", Tokens: []string{"a"}})
	require.ErrorContains(t, err, `"t5"`)

	_, err = NewVocab(ModelBPE, "made-up")
	require.Error(t, err)
	for _, s := range []string{`"made-up"`, "tokenizer.ggml.pre", "llama3", "qwen2", "gpt-2", "deepseek-llm", "falcon", "starcoder", "smollm", "default"} {
		assert.Contains(t, err.Error(), s)
	}
	_, err = New(&Vocab{Model: ModelBPE, Pre: "made-up", Tokens: []string{"a"}, BOS: NoToken, EOS: NoToken, EOT: NoToken, EOM: NoToken, UNK: NoToken, PAD: NoToken})
	require.ErrorContains(t, err, `"made-up"`)
}

func TestNewVocabDefaults(t *testing.T) {
	v, err := NewVocab(ModelSPM, "whatever")
	require.NoError(t, err)
	assert.Equal(t, []int32{1, 2, 0, NoToken, NoToken, NoToken}, []int32{v.BOS, v.EOS, v.UNK, v.PAD, v.EOT, v.EOM})
	assert.True(t, v.AddBOS)
	assert.True(t, v.AddSpacePrefix)
	assert.False(t, v.AddEOS)

	for _, c := range []struct {
		pre    string
		bos    int32
		addBOS bool
	}{{"gpt-2", 11, false}, {"", 11, false}, {"llama-bpe", 11, true}, {"tekken", 11, true}, {"qwen2", 11, false}, {"chatglm-bpe", NoToken, false}} {
		v, err := NewVocab(ModelBPE, c.pre)
		require.NoError(t, err, c.pre)
		assert.Equal(t, c.bos, v.BOS, c.pre)
		assert.Equal(t, int32(11), v.EOS, c.pre)
		assert.Equal(t, c.addBOS, v.AddBOS, c.pre)
		assert.False(t, v.AddSpacePrefix, c.pre)
		assert.Equal(t, NoToken, v.UNK, c.pre)
	}
}

func TestMalformedVocab(t *testing.T) {
	base := func() *Vocab {
		v, err := NewVocab(ModelSPM, "")
		require.NoError(t, err)
		v.Tokens = []string{"<unk>", "<s>", "</s>", "a"}
		return v
	}
	_, err := New(nil)
	assert.Error(t, err)

	v := base()
	v.Tokens = nil
	_, err = New(v)
	assert.ErrorContains(t, err, "empty")

	v = base()
	v.Tokens[3] = "<s>"
	_, err = New(v)
	assert.ErrorContains(t, err, `duplicate token "<s>" has ids 1 and 3`)

	v = base()
	v.Scores = []float32{0, 0}
	_, err = New(v)
	assert.ErrorContains(t, err, "2 scores")

	v = base()
	v.Types = []int32{1}
	_, err = New(v)
	assert.ErrorContains(t, err, "1 token types")

	v = base()
	v.EOS = 4
	_, err = New(v)
	assert.ErrorContains(t, err, "EOS token id 4")

	v = base()
	v.BOS = NoToken
	_, err = New(v)
	assert.ErrorContains(t, err, "no BOS")

	v.AddBOS = false
	tok, err := New(v)
	require.NoError(t, err)
	_, err = tok.Encode("a", true, false)
	assert.ErrorContains(t, err, "BOS")

	// Empty entries get llama.cpp's placeholder instead of colliding.
	v = base()
	v.Tokens = append(v.Tokens, "", "")
	tok, err = New(v)
	require.NoError(t, err)
	assert.Equal(t, "[EMPTY_5]", tok.TokenText(5))
}

// ggufFile writes metadata into an in-memory GGUF file and parses it.
func ggufFile(t *testing.T, kv map[string]gguf.Value) *gguf.File {
	t.Helper()
	b := gguf.NewBuilder()
	for k, v := range kv {
		b.Set(k, v)
	}
	var buf bytes.Buffer
	_, err := b.WriteTo(&buf)
	require.NoError(t, err)
	f, err := gguf.Parse(buf.Bytes())
	require.NoError(t, err)
	return f
}

func spmMetadata() map[string]gguf.Value {
	return map[string]gguf.Value{
		"tokenizer.ggml.model":      gguf.Str("llama"),
		"tokenizer.ggml.tokens":     gguf.StrArray([]string{"<unk>", "<s>", "</s>", "▁", "a", "▁a"}),
		"tokenizer.ggml.scores":     gguf.F32Array([]float32{0, 0, 0, -2, -3, -1}),
		"tokenizer.ggml.token_type": gguf.I32Array([]int32{2, 3, 3, 1, 1, 1}),
	}
}

func TestVocabFromGGUF(t *testing.T) {
	kv := spmMetadata()
	v, err := VocabFromGGUF(ggufFile(t, kv))
	require.NoError(t, err)
	assert.Equal(t, ModelSPM, v.Model)
	assert.Len(t, v.Tokens, 6)
	assert.Equal(t, []int32{1, 2, 0, NoToken, NoToken, NoToken}, []int32{v.BOS, v.EOS, v.UNK, v.PAD, v.EOT, v.EOM},
		"absent ids take llama.cpp's defaults")
	assert.True(t, v.AddBOS)

	kv["tokenizer.ggml.add_bos_token"] = gguf.Bool(false)
	kv["tokenizer.ggml.add_space_prefix"] = gguf.Bool(false)
	kv["tokenizer.ggml.eos_token_id"] = gguf.U32(4)
	kv["tokenizer.ggml.bos_token_id"] = gguf.I32(-1)       // "none" in some converters: default kept
	kv["tokenizer.ggml.padding_token_id"] = gguf.U32(1000) // out of range: default kept
	kv["general.name"] = gguf.Str("Phi-3")
	v, err = VocabFromGGUF(ggufFile(t, kv))
	require.NoError(t, err)
	assert.False(t, v.AddBOS)
	assert.False(t, v.AddSpacePrefix)
	assert.Equal(t, int32(4), v.EOS)
	assert.Equal(t, int32(1), v.BOS)
	assert.Equal(t, NoToken, v.PAD)
	assert.Equal(t, "Phi-3", v.Name)

	tok, err := FromGGUF(ggufFile(t, kv))
	require.NoError(t, err)
	assert.False(t, tok.AddBOS())
	ids, err := tok.Encode("a", false, false)
	require.NoError(t, err)
	assert.Equal(t, []int32{4}, ids, "no space prefix")
	assert.True(t, tok.IsEOG(4))
}

func TestVocabFromGGUFErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(map[string]gguf.Value)
		want   string
	}{
		{"no model", func(kv map[string]gguf.Value) { delete(kv, "tokenizer.ggml.model") }, "tokenizer.ggml.model is missing"},
		{"unknown model", func(kv map[string]gguf.Value) { kv["tokenizer.ggml.model"] = gguf.Str("rwkv") }, `"rwkv"`},
		{"no tokens", func(kv map[string]gguf.Value) { delete(kv, "tokenizer.ggml.tokens") }, "tokenizer.ggml.tokens is missing"},
		{"mistyped tokens", func(kv map[string]gguf.Value) { kv["tokenizer.ggml.tokens"] = gguf.U32(3) }, "tokenizer.ggml.tokens is u32"},
		{"mistyped scores", func(kv map[string]gguf.Value) { kv["tokenizer.ggml.scores"] = gguf.Str("x") }, "tokenizer.ggml.scores"},
		{"mistyped types", func(kv map[string]gguf.Value) { kv["tokenizer.ggml.token_type"] = gguf.F32Array([]float32{1}) }, "tokenizer.ggml.token_type"},
		{"mistyped flag", func(kv map[string]gguf.Value) { kv["tokenizer.ggml.add_bos_token"] = gguf.U8(1) }, "tokenizer.ggml.add_bos_token is u8"},
		{"mistyped id", func(kv map[string]gguf.Value) { kv["tokenizer.ggml.eos_token_id"] = gguf.Str("2") }, "tokenizer.ggml.eos_token_id"},
		{"bpe without merges", func(kv map[string]gguf.Value) { kv["tokenizer.ggml.model"] = gguf.Str("gpt2") }, "tokenizer.ggml.merges is missing"},
		{"unknown pre", func(kv map[string]gguf.Value) {
			kv["tokenizer.ggml.model"] = gguf.Str("gpt2")
			kv["tokenizer.ggml.pre"] = gguf.Str("nonesuch")
		}, `"nonesuch"`},
	} {
		kv := spmMetadata()
		c.change(kv)
		_, err := FromGGUF(ggufFile(t, kv))
		assert.ErrorContains(t, err, c.want, c.name)
	}
}
