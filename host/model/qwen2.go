package model

import (
	"fmt"

	"qinfer/host/backend"
	"qinfer/host/gguf"
)

// Qwen2 is llama.cpp's "qwen2" architecture: the llama block with biases
// on the Q, K and V projections and NEOX-style RoPE (pairs (i, i+d/2)).
type Qwen2 struct {
	*decoder
	tokEmbd backend.Tensor
	outNorm backend.Tensor
	output  backend.Tensor
	layers  []qwen2Layer
}

type qwen2Layer struct {
	llamaLayer
	qkvBias backend.Tensor // [1][QDim+2*KVDim] activation: bq|bk|bv
}

func init() { register("qwen2", loadQwen2) }

func loadQwen2(f *gguf.File, be backend.Backend, cfg Config, opt Options) (Model, error) {
	up := newUploader(f, be)
	m, err := buildQwen2(up, cfg, opt)
	if err != nil {
		_ = up.free()
		return nil, err
	}
	return m, nil
}

func buildQwen2(up *uploader, cfg Config, opt Options) (*Qwen2, error) {
	d, err := newDecoder(up, cfg, opt)
	if err != nil {
		return nil, err
	}
	m := &Qwen2{decoder: d}
	if m.tokEmbd, m.outNorm, m.output, err = loadEnds(up, cfg); err != nil {
		return nil, err
	}
	m.layers = make([]qwen2Layer, cfg.Layers)
	for i := range m.layers {
		l := &m.layers[i]
		if err := loadLlamaLayer(up, cfg, i, &l.llamaLayer); err != nil {
			return nil, err
		}
		p := fmt.Sprintf("blk.%d.", i)
		l.qkvBias, err = up.bias(
			[]string{p + "attn_q.bias", p + "attn_k.bias", p + "attn_v.bias"},
			[]int{cfg.QDim(), cfg.KVDim(), cfg.KVDim()})
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Forward runs one batch; see Llama.Forward, which differs only in the
// projection biases.
func (m *Qwen2) Forward(b backend.Batch, logits backend.Tensor) error {
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
		if err := be.RMSNorm(h, x, l.attnNorm, cfg.NormEps); err != nil {
			return layerErr(il, "attn_norm", err)
		}
		// q|k|v = W·h + b, the bias broadcast over the batch rows.
		if err := l.qkv.forward(be, h, v.qkv, v.q, v.k, v.v); err != nil {
			return layerErr(il, "attn_qkv", err)
		}
		if err := be.Add(v.qkv, v.qkv, l.qkvBias); err != nil {
			return layerErr(il, "attn_qkv_bias", err)
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
		if err := be.Add(x, x, h); err != nil {
			return layerErr(il, "attn_residual", err)
		}
		if err := m.feedForward(il, &l.llamaLayer, x, h, v); err != nil {
			return err
		}
	}
	return m.classify(x, h, m.outNorm, m.output, logits)
}
