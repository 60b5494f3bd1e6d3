package model

import (
	"fmt"

	"qinfer/host/backend"
	"qinfer/host/gguf"
)

// Llama is the llama family as llama.cpp's "llama" architecture runs it:
// Llama 2 and 3, TinyLlama, Mistral, SmolLM. Pre-norm blocks with RMSNorm,
// grouped-query attention with adjacent-pair RoPE, SwiGLU feed-forward,
// and an output classifier that may be tied to the token embeddings.
type Llama struct {
	*decoder
	tokEmbd backend.Tensor // [Vocab][Dim]
	outNorm backend.Tensor
	output  backend.Tensor // [Vocab][Dim]; tokEmbd when tied
	layers  []llamaLayer
}

type llamaLayer struct {
	attnNorm backend.Tensor
	qkv      *linear // [Q|K|V] rows
	wo       backend.Tensor
	ffnNorm  backend.Tensor
	gateUp   *linear // [gate|up] rows
	down     backend.Tensor
}

func init() { register("llama", loadLlama) }

func loadLlama(f *gguf.File, be backend.Backend, cfg Config, opt Options) (Model, error) {
	up := newUploader(f, be)
	m, err := buildLlama(up, cfg, opt)
	if err != nil {
		_ = up.free()
		return nil, err
	}
	return m, nil
}

func buildLlama(up *uploader, cfg Config, opt Options) (*Llama, error) {
	// llama.cpp 3.1+ files carry rope_freqs.weight (per-dimension RoPE
	// factors); backend.RoPE has no such input yet, and ignoring it would
	// silently change the model.
	if _, ok := up.f.Tensor("rope_freqs.weight"); ok {
		return nil, fmt.Errorf("tensor rope_freqs.weight (Llama 3.1 RoPE frequency factors) is not supported yet")
	}
	d, err := newDecoder(up, cfg, opt)
	if err != nil {
		return nil, err
	}
	m := &Llama{decoder: d}
	if m.tokEmbd, m.outNorm, m.output, err = loadEnds(up, cfg); err != nil {
		return nil, err
	}
	m.layers = make([]llamaLayer, cfg.Layers)
	for i := range m.layers {
		if err := loadLlamaLayer(up, cfg, i, &m.layers[i]); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// loadEnds uploads the token embeddings, the final norm and the output
// classifier (token_embd.weight again when the file has no output.weight).
func loadEnds(up *uploader, cfg Config) (tokEmbd, outNorm, output backend.Tensor, err error) {
	if tokEmbd, err = up.matrix("token_embd.weight", cfg.Vocab, cfg.Dim); err != nil {
		return
	}
	if outNorm, err = up.norm("output_norm.weight", cfg.Dim); err != nil {
		return
	}
	if cfg.TiedEmbeddings {
		return tokEmbd, outNorm, tokEmbd, nil
	}
	output, err = up.matrix("output.weight", cfg.Vocab, cfg.Dim)
	return
}

func loadLlamaLayer(up *uploader, cfg Config, i int, l *llamaLayer) error {
	p := fmt.Sprintf("blk.%d.", i)
	var err error
	if l.attnNorm, err = up.norm(p+"attn_norm.weight", cfg.Dim); err != nil {
		return err
	}
	l.qkv, err = up.linear(
		[]string{p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"},
		[]int{cfg.QDim(), cfg.KVDim(), cfg.KVDim()}, cfg.Dim)
	if err != nil {
		return err
	}
	if l.wo, err = up.matrix(p+"attn_output.weight", cfg.Dim, cfg.QDim()); err != nil {
		return err
	}
	if l.ffnNorm, err = up.norm(p+"ffn_norm.weight", cfg.Dim); err != nil {
		return err
	}
	l.gateUp, err = up.linear([]string{p + "ffn_gate.weight", p + "ffn_up.weight"}, []int{cfg.FFN, cfg.FFN}, cfg.Dim)
	if err != nil {
		return err
	}
	l.down, err = up.matrix(p+"ffn_down.weight", cfg.Dim, cfg.FFN)
	return err
}

// Forward runs one batch (decoder.forward).
func (m *Llama) Forward(b backend.Batch, logits backend.Tensor) error {
	return m.forward(b, logits, m.tokEmbd, m.outNorm, m.output, len(m.layers),
		func(il int) (*llamaLayer, backend.Tensor) { return &m.layers[il], nil })
}
