package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/quant"
)

func init() {
	register(&command{
		name:  "synth",
		usage: "[--dim N --layers N --heads N --kv-heads N --ffn N --vocab N --type T --seed S] OUT.gguf",
		short: "write a seeded random-weight llama GGUF of any shape and type (benchmarks, tests)",
		run:   runSynth,
	})
}

// synthSpec is the shape of a synthetic llama model.
type synthSpec struct {
	Dim, Layers, Heads, KVHeads, FFN, Vocab, Ctx int
	Type                                         backend.DType
	Seed                                         uint64
}

func runSynth(env *cliEnv, args []string) error {
	c := commands["synth"]
	fs := newFlagSet(env, c)
	var s synthSpec
	var typ string
	fs.IntVar(&s.Dim, "dim", 1024, "embedding width")
	fs.IntVar(&s.Layers, "layers", 8, "transformer blocks")
	fs.IntVar(&s.Heads, "heads", 16, "attention heads")
	fs.IntVar(&s.KVHeads, "kv-heads", 0, "key/value heads (grouped-query attention); 0 means --heads")
	fs.IntVar(&s.FFN, "ffn", 2816, "feed-forward width")
	fs.IntVar(&s.Vocab, "vocab", 32000, "vocabulary size (>= 259: 3 special tokens and 256 byte tokens)")
	fs.IntVar(&s.Ctx, "ctx", 2048, "context length recorded in the file")
	fs.StringVar(&typ, "type", "Q8_0", "weight type of the matrices: F32, F16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K")
	fs.Uint64Var(&s.Seed, "seed", 1, "random seed")
	return withCommon(env, fs, args, func(pos []string) error {
		if len(pos) != 1 {
			return usagef("want one output file, got %d arguments", len(pos))
		}
		t, err := backend.ParseDType(typ)
		if err != nil {
			return usagef("--type: %v", err)
		}
		s.Type = t
		if s.KVHeads == 0 {
			s.KVHeads = s.Heads
		}
		b, err := synthModel(s)
		if err != nil {
			return err
		}
		if err := b.WriteFile(pos[0]); err != nil {
			return fmt.Errorf("write %s: %w", pos[0], err)
		}
		env.log.Info("wrote synthetic model", "file", pos[0], "params", synthParams(s), "type", s.Type)
		return nil
	})
}

func (s synthSpec) validate() error {
	switch {
	case s.Dim <= 0 || s.Layers <= 0 || s.Heads <= 0 || s.KVHeads <= 0 || s.FFN <= 0:
		return usagef("dim, layers, heads, kv-heads and ffn must be positive")
	case s.Dim%s.Heads != 0:
		return usagef("dim %d is not a multiple of heads %d", s.Dim, s.Heads)
	case s.Heads%s.KVHeads != 0:
		return usagef("heads %d is not a multiple of kv-heads %d", s.Heads, s.KVHeads)
	case (s.Dim/s.Heads)%2 != 0:
		return usagef("head dimension %d must be even for RoPE", s.Dim/s.Heads)
	case s.Vocab < 259:
		return usagef("vocab %d < 259 (3 special and 256 byte tokens)", s.Vocab)
	case s.Ctx <= 0:
		return usagef("ctx must be positive")
	}
	return nil
}

func synthParams(s synthSpec) int64 {
	hd := s.Dim / s.Heads
	kv := int64(hd * s.KVHeads)
	d := int64(s.Dim)
	perLayer := d*d*2 + 2*d*kv + 3*d*int64(s.FFN) + 2*d
	return int64(s.Layers)*perLayer + 2*int64(s.Vocab)*d + d
}

// synthModel builds the GGUF: llama metadata, a byte-fallback
// SentencePiece vocabulary, and N(0, 1/sqrt(fan-in)) weights so that
// activations keep their scale through the layers.
func synthModel(s synthSpec) (*gguf.Builder, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(s.Seed, 0x9e3779b97f4a7c15))
	hd := s.Dim / s.Heads
	b := gguf.NewBuilder()
	b.Set("general.architecture", gguf.Str("llama"))
	b.Set("general.name", gguf.Str(fmt.Sprintf("qinfer-synth-%dx%d-%v", s.Dim, s.Layers, s.Type)))
	b.Set("llama.context_length", gguf.U32(uint32(s.Ctx)))
	b.Set("llama.embedding_length", gguf.U32(uint32(s.Dim)))
	b.Set("llama.block_count", gguf.U32(uint32(s.Layers)))
	b.Set("llama.feed_forward_length", gguf.U32(uint32(s.FFN)))
	b.Set("llama.rope.dimension_count", gguf.U32(uint32(hd)))
	b.Set("llama.attention.head_count", gguf.U32(uint32(s.Heads)))
	b.Set("llama.attention.head_count_kv", gguf.U32(uint32(s.KVHeads)))
	b.Set("llama.attention.layer_norm_rms_epsilon", gguf.F32(1e-5))
	b.Set("llama.rope.freq_base", gguf.F32(10000))
	tokens, scores, types := synthVocab(s.Vocab)
	b.Set("tokenizer.ggml.model", gguf.Str("llama"))
	b.Set("tokenizer.ggml.tokens", gguf.StrArray(tokens))
	b.Set("tokenizer.ggml.scores", gguf.F32Array(scores))
	b.Set("tokenizer.ggml.token_type", gguf.I32Array(types))
	b.Set("tokenizer.ggml.unknown_token_id", gguf.U32(0))
	b.Set("tokenizer.ggml.bos_token_id", gguf.U32(1))
	b.Set("tokenizer.ggml.eos_token_id", gguf.U32(2))

	add := func(st synthTensor) error {
		name, t, rows, cols := st.name, st.t, st.rows, st.cols
		if t != backend.F32 {
			if _, err := backend.RowBytes(t, cols); err != nil {
				return fmt.Errorf("tensor %s: %w", name, err)
			}
		}
		f := make([]float32, rows*cols)
		for i := range f {
			f[i] = float32(st.offset + st.scale*rng.NormFloat64())
		}
		data, err := encodeTensor(t, f)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		dims := []uint64{uint64(cols)}
		if rows > 1 {
			dims = append(dims, uint64(rows))
		}
		return b.AddTensor(name, t, dims, data)
	}
	kvDim := hd * s.KVHeads
	norm := func(name string) synthTensor { return synthTensor{name, backend.F32, 1, s.Dim, 0.05, 1} }
	steps := []synthTensor{{"token_embd.weight", s.Type, s.Vocab, s.Dim, 1, 0}}
	for l := 0; l < s.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		steps = append(steps, norm(p+"attn_norm.weight"))
		for _, m := range []struct {
			n          string
			rows, cols int
		}{{"attn_q", s.Dim, s.Dim}, {"attn_k", kvDim, s.Dim}, {"attn_v", kvDim, s.Dim}, {"attn_output", s.Dim, s.Dim},
			{"ffn_gate", s.FFN, s.Dim}, {"ffn_up", s.FFN, s.Dim}, {"ffn_down", s.Dim, s.FFN}} {
			steps = append(steps, synthTensor{p + m.n + ".weight", s.Type, m.rows, m.cols, 1 / math.Sqrt(float64(m.cols)), 0})
			if m.n == "attn_output" {
				steps = append(steps, norm(p+"ffn_norm.weight"))
			}
		}
	}
	steps = append(steps, norm("output_norm.weight"),
		synthTensor{"output.weight", s.Type, s.Vocab, s.Dim, 1 / math.Sqrt(float64(s.Dim)), 0})
	for _, st := range steps {
		if err := add(st); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// synthTensor is one tensor to generate: N(offset, scale²) values.
type synthTensor struct {
	name          string
	t             backend.DType
	rows, cols    int
	scale, offset float64
}

// encodeTensor turns float data into the bytes of type t.
func encodeTensor(t backend.DType, f []float32) ([]byte, error) {
	if t == backend.F32 {
		out := make([]byte, 4*len(f))
		for i, v := range f {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
		return out, nil
	}
	tr, err := backend.TraitsOf(t)
	if err != nil {
		return nil, err
	}
	if len(f)%tr.BlockSize != 0 {
		return nil, fmt.Errorf("%d elements not a multiple of %v's block size %d", len(f), t, tr.BlockSize)
	}
	out := make([]byte, len(f)/tr.BlockSize*tr.TypeSize)
	if err := quant.Quantize(t, f, out); err != nil {
		return nil, err
	}
	return out, nil
}

// synthVocab is a SentencePiece-style vocabulary: <unk>, <s>, </s>, the
// 256 byte-fallback tokens, then filler pieces, so any text tokenizes.
func synthVocab(n int) ([]string, []float32, []int32) {
	const (
		normal  = 1
		unknown = 2
		control = 3
		byteTok = 6
	)
	tokens := make([]string, 0, n)
	scores := make([]float32, 0, n)
	types := make([]int32, 0, n)
	tokens = append(tokens, "<unk>", "<s>", "</s>")
	scores = append(scores, 0, 0, 0)
	types = append(types, unknown, control, control)
	for i := 0; i < 256; i++ {
		tokens = append(tokens, fmt.Sprintf("<0x%02X>", i))
		scores = append(scores, 0)
		types = append(types, byteTok)
	}
	for i := len(tokens); i < n; i++ {
		tokens = append(tokens, fmt.Sprintf("\u2581t%d", i))
		scores = append(scores, float32(-i))
		types = append(types, normal)
	}
	return tokens, scores, types
}
