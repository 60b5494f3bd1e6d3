// Command convert writes the default model as GGUF with qinfer's own
// writer and quantizer: the float32 weights train.py saved, llama
// metadata, and the vocabulary prep learned (copied from its
// vocabulary-only GGUF file, so the model tokenizes exactly as the
// training data was tokenized).
//
// Matrices whose rows are a whole number of 32-element blocks are stored
// as Q8_0, other matrices as F16, vectors (the norms) as F32.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"strings"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/quant"
)

// config is what train.py writes to config.json.
type config struct {
	Vocab    int     `json:"vocab"`
	Dim      int     `json:"dim"`
	Layers   int     `json:"layers"`
	Heads    int     `json:"heads"`
	KVHeads  int     `json:"kv_heads"`
	HeadDim  int     `json:"head_dim"`
	FFN      int     `json:"ffn"`
	Ctx      int     `json:"ctx"`
	NormEps  float32 `json:"norm_eps"`
	RopeBase float32 `json:"rope_base"`
	Params   int     `json:"params"`
	Steps    int     `json:"steps"`
	Tensors  []struct {
		Name   string `json:"name"`
		Shape  []int  `json:"shape"` // PyTorch order: [rows (outputs), cols (inputs)]
		Offset int64  `json:"offset"`
	} `json:"tensors"`
}

func main() {
	cfgPath := flag.String("config", "", "train.py's config.json (required)")
	weights := flag.String("weights", "", "train.py's weights.bin (required)")
	vocab := flag.String("vocab", "", "prep's vocab.gguf (required)")
	out := flag.String("out", "", "GGUF file to write (required)")
	name := flag.String("name", "qinfer-default", "general.name of the model")
	flag.Parse()
	if *cfgPath == "" || *weights == "" || *vocab == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*cfgPath, *weights, *vocab, *out, *name); err != nil {
		log.Fatalf("convert: %v", err)
	}
}

func run(cfgPath, weightsPath, vocabPath, out, name string) error {
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	var cfg config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("%s: %w", cfgPath, err)
	}
	if cfg.Dim <= 0 || cfg.Heads <= 0 || cfg.KVHeads <= 0 || cfg.HeadDim*cfg.Heads != cfg.Dim {
		return fmt.Errorf("%s: inconsistent shape: dim %d, %d heads of %d, %d kv heads", cfgPath, cfg.Dim, cfg.Heads, cfg.HeadDim, cfg.KVHeads)
	}
	data, err := os.ReadFile(weightsPath)
	if err != nil {
		return err
	}

	vf, err := gguf.Open(vocabPath)
	if err != nil {
		return err
	}
	defer vf.Close()
	b := gguf.NewBuilder()
	b.Set("general.architecture", gguf.Str("llama"))
	b.Set("general.name", gguf.Str(name))
	b.Set("general.description", gguf.Str("qinfer's embedded default model: a small llama trained on the Go standard library sources by tools/train"))
	b.Set("general.file_type", gguf.U32(7)) // LLAMA_FTYPE_MOSTLY_Q8_0
	b.Set("llama.context_length", gguf.U32(uint32(cfg.Ctx)))
	b.Set("llama.embedding_length", gguf.U32(uint32(cfg.Dim)))
	b.Set("llama.block_count", gguf.U32(uint32(cfg.Layers)))
	b.Set("llama.feed_forward_length", gguf.U32(uint32(cfg.FFN)))
	b.Set("llama.rope.dimension_count", gguf.U32(uint32(cfg.HeadDim)))
	b.Set("llama.attention.head_count", gguf.U32(uint32(cfg.Heads)))
	b.Set("llama.attention.head_count_kv", gguf.U32(uint32(cfg.KVHeads)))
	b.Set("llama.attention.layer_norm_rms_epsilon", gguf.F32(cfg.NormEps))
	b.Set("llama.rope.freq_base", gguf.F32(cfg.RopeBase))
	b.Set("llama.vocab_size", gguf.U32(uint32(cfg.Vocab)))
	ntok := 0
	for _, kv := range vf.KVs {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			b.Set(kv.Key, kv.Value)
		}
		if kv.Key == "tokenizer.ggml.tokens" {
			ntok = kv.Value.Len()
		}
	}
	if ntok != cfg.Vocab {
		return fmt.Errorf("%s has %d tokens, the model %d", vocabPath, ntok, cfg.Vocab)
	}

	var nQ8, nF16, nF32 int
	for _, t := range cfg.Tensors {
		typ, dims, enc, err := encode(t.Name, t.Shape, data, t.Offset)
		if err != nil {
			return err
		}
		if err := b.AddTensor(t.Name, typ, dims, enc); err != nil {
			return err
		}
		switch typ {
		case backend.Q8_0:
			nQ8++
		case backend.F16:
			nF16++
		default:
			nF32++
		}
	}
	if err := b.WriteFile(out); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	log.Printf("wrote %s: %d bytes; %d tensors Q8_0, %d F16, %d F32; %d parameters, %d layers, dim %d, vocab %d",
		out, st.Size(), nQ8, nF16, nF32, cfg.Params, cfg.Layers, cfg.Dim, cfg.Vocab)
	return nil
}

// encode reads one float32 tensor from weights and encodes it in its
// storage type. GGUF dims are ggml's ne: the row length comes first, the
// reverse of PyTorch's shape.
func encode(name string, shape []int, weights []byte, off int64) (backend.DType, []uint64, []byte, error) {
	n := 1
	for _, d := range shape {
		if d <= 0 {
			return 0, nil, nil, fmt.Errorf("tensor %s: shape %v", name, shape)
		}
		n *= d
	}
	if off < 0 || off+int64(n)*4 > int64(len(weights)) {
		return 0, nil, nil, fmt.Errorf("tensor %s: %d floats at byte %d overrun the %d-byte weights file", name, n, off, len(weights))
	}
	src := make([]float32, n)
	for i := range src {
		src[i] = math.Float32frombits(binary.LittleEndian.Uint32(weights[off+int64(i)*4:]))
		if v := float64(src[i]); math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, nil, nil, fmt.Errorf("tensor %s: element %d is %v", name, i, v)
		}
	}
	dims := make([]uint64, len(shape))
	for i, d := range shape {
		dims[len(shape)-1-i] = uint64(d)
	}
	typ := backend.F32
	if len(shape) == 2 {
		typ = backend.F16
		if shape[1]%32 == 0 {
			typ = backend.Q8_0
		}
	}
	tr, err := backend.TraitsOf(typ)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	enc := make([]byte, n/tr.BlockSize*tr.TypeSize)
	if err := quant.Quantize(typ, src, enc); err != nil {
		return 0, nil, nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	return typ, dims, enc, nil
}
