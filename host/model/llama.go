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

// Forward runs one batch. In the last layer only the rows whose logits
// are wanted go on past attention (as llama.cpp does), so prompt chunks
// skip the last feed-forward and the classifier for all other rows.
func (m *Llama) Forward(b backend.Batch, logits backend.Tensor) error {
	if err := m.check(b, logits); err != nil {
		return err
	}
	be, cfg := m.be, m.cfg
	v, err := m.viewsFor(b.Len())
	if err != nil {
		return err
	}
	x, h := v.x, v.h
	if err := be.Embed(x, m.tokEmbd, b); err != nil {
		return fmt.Errorf("token_embd: %w", err)
	}
	for il := range m.layers {
		l := &m.layers[il]
		// Attention block: h = rmsnorm(x)*attn_norm; q,k,v; RoPE; attention.
		if err := be.RMSNorm(h, x, l.attnNorm, cfg.NormEps); err != nil {
			return layerErr(il, "attn_norm", err)
		}
		if err := l.qkv.forward(be, h, v.qkv, v.q, v.k, v.v); err != nil {
			return layerErr(il, "attn_qkv", err)
		}
		if err := m.attention(il, b, v); err != nil {
			return err
		}
		if err := be.MatMul(h, l.wo, v.att); err != nil {
			return layerErr(il, "attn_output", err)
		}
		if il == len(m.layers)-1 {
			if x, h, v, err = m.gatherOutputs(b, x, h); err != nil || v == nil {
				return err
			}
		}
		// x += attention; then the feed-forward block.
		if err := be.Add(x, x, h); err != nil {
			return layerErr(il, "attn_residual", err)
		}
		if err := m.feedForward(il, l, x, h, v); err != nil {
			return err
		}
	}
	return m.classify(x, h, m.outNorm, m.output, logits)
}
