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

// Forward runs one batch (decoder.forward): Llama's, plus the
// projection biases.
func (m *Qwen2) Forward(b backend.Batch, logits backend.Tensor) error {
	return m.forward(b, logits, m.tokEmbd, m.outNorm, m.output, len(m.layers),
		func(il int) (*llamaLayer, backend.Tensor) { return &m.layers[il].llamaLayer, m.layers[il].qkvBias })
}
