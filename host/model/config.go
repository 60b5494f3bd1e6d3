package model

import (
	"fmt"
	"math"

	"qinfer/host/gguf"
)

// Config is the shape and hyperparameters of a decoder-only transformer,
// read from GGUF metadata under the architecture's key prefix.
type Config struct {
	Arch     string
	Dim      int // embedding length
	Layers   int
	Heads    int
	KVHeads  int
	HeadDim  int
	FFN      int // feed-forward hidden size
	Vocab    int
	CtxTrain int // context length the model was trained with
	NormEps  float32
	// RopeBase is the frequency base; RopeScale multiplies positions
	// (linear scaling, 1/factor).
	RopeBase  float32
	RopeScale float32
	// AttnScale multiplies q·k; 1/sqrt(HeadDim) unless the file says
	// otherwise ({arch}.attention.scale).
	AttnScale      float32
	Neox           bool // RoPE rotates (i, i+d/2) pairs instead of (2i, 2i+1)
	TiedEmbeddings bool // no output.weight: logits use token_embd.weight
	QKVBias        bool
}

// QDim is the width of the query projection, KVDim that of the key and of
// the value projection.
func (c Config) QDim() int  { return c.Heads * c.HeadDim }
func (c Config) KVDim() int { return c.KVHeads * c.HeadDim }

// archTraits are the facts about an architecture that the file does not
// state: llama.cpp hard-codes them per architecture.
type archTraits struct {
	neox    bool
	qkvBias bool
}

var traitsByArch = map[string]archTraits{
	// llama.cpp's converters permute Q and K rows of HF llama checkpoints
	// so that the adjacent-pair ("normal") RoPE applies; llama2.c exports
	// are already in that order.
	"llama": {neox: false},
	"qwen2": {neox: true, qkvBias: true},
}

// ConfigFromGGUF reads the hyperparameters of f's architecture. Keys that
// llama.cpp treats as optional get llama.cpp's defaults.
func ConfigFromGGUF(f *gguf.File) (Config, error) {
	arch := f.Architecture()
	tr, ok := traitsByArch[arch]
	if !ok {
		return Config{}, unsupportedArch(arch)
	}
	r := keyReader{f: f, prefix: arch + "."}
	c := Config{Arch: arch, Neox: tr.neox, QKVBias: tr.qkvBias}

	c.Dim = r.int("embedding_length", 0, true)
	c.Layers = r.int("block_count", 0, true)
	c.Heads = r.int("attention.head_count", 0, true)
	c.KVHeads = r.int("attention.head_count_kv", c.Heads, false)
	c.FFN = r.int("feed_forward_length", 0, true)
	c.CtxTrain = r.int("context_length", 0, true)
	c.NormEps = r.float("attention.layer_norm_rms_epsilon", 0, true)
	c.RopeBase = r.float("rope.freq_base", 10000, false)
	if r.err != nil {
		return Config{}, r.err
	}
	if n := r.int("expert_count", 0, false); n > 0 {
		return Config{}, fmt.Errorf("%s: mixture of experts (%d experts) is not supported", arch, n)
	}
	if c.Dim <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.FFN <= 0 {
		return Config{}, fmt.Errorf("%s: invalid shape: embedding %d, %d layers, %d heads, %d kv heads, ffn %d",
			arch, c.Dim, c.Layers, c.Heads, c.KVHeads, c.FFN)
	}
	if c.Heads%c.KVHeads != 0 {
		return Config{}, fmt.Errorf("%s: %d attention heads are not a multiple of %d kv heads", arch, c.Heads, c.KVHeads)
	}
	c.HeadDim = c.Dim / c.Heads
	c.HeadDim = r.int("attention.key_length", c.HeadDim, false)
	if vl := r.int("attention.value_length", c.HeadDim, false); vl != c.HeadDim {
		return Config{}, fmt.Errorf("%s: value head size %d differs from key head size %d", arch, vl, c.HeadDim)
	}
	if c.HeadDim <= 0 || c.HeadDim%2 != 0 {
		return Config{}, fmt.Errorf("%s: head size %d is not a positive even number", arch, c.HeadDim)
	}
	// The backend rotates whole heads; partial rotary embeddings (GPT-NeoX
	// style rotary_pct) would need a rotation width in backend.RoPE.
	if nRot := r.int("rope.dimension_count", c.HeadDim, false); nRot != c.HeadDim {
		return Config{}, fmt.Errorf("%s: rope.dimension_count %d differs from head size %d (partial rotary embeddings are not supported)", arch, nRot, c.HeadDim)
	}

	scale, err := ropeScale(f, arch)
	if err != nil {
		return Config{}, err
	}
	c.RopeScale = scale
	c.AttnScale = r.float("attention.scale", 0, false)
	if c.AttnScale == 0 {
		c.AttnScale = float32(1 / math.Sqrt(float64(c.HeadDim)))
	}
	if r.err != nil {
		return Config{}, r.err
	}

	_, hasOutput := f.Tensor("output.weight")
	c.TiedEmbeddings = !hasOutput
	c.Vocab, err = vocabSize(f, arch)
	if err != nil {
		return Config{}, err
	}
	return c, nil
}

// ropeScale returns the position multiplier. llama.cpp defaults the
// scaling type to linear and reads the factor from rope.scaling.factor, or
// from the older rope.scale_linear.
func ropeScale(f *gguf.File, arch string) (float32, error) {
	typ := "linear"
	if s, ok := f.String(arch + ".rope.scaling.type"); ok {
		typ = s
	}
	factor := 0.0
	if v, ok := f.Float(arch + ".rope.scaling.factor"); ok {
		factor = v
	} else if v, ok := f.Float(arch + ".rope.scale_linear"); ok {
		factor = v
	}
	switch typ {
	case "none":
		return 1, nil
	case "linear":
		if factor == 0 {
			return 1, nil
		}
		if factor < 0 || math.IsNaN(factor) || math.IsInf(factor, 0) {
			return 0, fmt.Errorf("%s: invalid rope scaling factor %v", arch, factor)
		}
		return float32(1 / factor), nil
	default:
		return 0, fmt.Errorf("%s: rope scaling type %q is not supported (supported: none, linear)", arch, typ)
	}
}

// vocabSize follows llama.cpp: {arch}.vocab_size, else the token list;
// files without a tokenizer fall back to the output (or embedding) rows.
func vocabSize(f *gguf.File, arch string) (int, error) {
	if n, ok := f.Uint(arch + ".vocab_size"); ok && n > 0 {
		return int(n), nil
	}
	if v, ok := f.Get("tokenizer.ggml.tokens"); ok && v.Len() > 0 {
		return v.Len(), nil
	}
	for _, name := range []string{"output.weight", "token_embd.weight"} {
		if ti, ok := f.Tensor(name); ok && len(ti.Dims) == 2 {
			return int(ti.Dims[1]), nil
		}
	}
	return 0, fmt.Errorf("%s: cannot tell the vocabulary size (no %s.vocab_size, token list or token_embd.weight)", arch, arch)
}

// keyReader reads {prefix}{key} values and remembers the first error, so
// that a config reads as a list of keys.
type keyReader struct {
	f      *gguf.File
	prefix string
	err    error
}

func (r *keyReader) int(key string, def int, required bool) int {
	full := r.prefix + key
	if _, ok := r.f.Get(full); !ok {
		if required && r.err == nil {
			r.err = fmt.Errorf("missing metadata key %s", full)
		}
		return def
	}
	v, ok := r.f.Uint(full)
	if !ok || v > math.MaxInt32 {
		if r.err == nil {
			r.err = fmt.Errorf("metadata key %s: want a non-negative integer below 2^31", full)
		}
		return def
	}
	return int(v)
}

func (r *keyReader) float(key string, def float32, required bool) float32 {
	full := r.prefix + key
	if _, ok := r.f.Get(full); !ok {
		if required && r.err == nil {
			r.err = fmt.Errorf("missing metadata key %s", full)
		}
		return def
	}
	v, ok := r.f.Float(full)
	if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
		if r.err == nil {
			r.err = fmt.Errorf("metadata key %s: want a finite number", full)
		}
		return def
	}
	return float32(v)
}
