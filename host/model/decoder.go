package model

import (
	"fmt"

	"qinfer/host/backend"
)

// decoder is what the decoder-only architectures here share: the backend,
// the KV cache, the activation buffers (sized for MaxBatch tokens) and
// their views for each batch size.
type decoder struct {
	cfg Config
	opt Options
	be  backend.Backend
	up  *uploader

	kv backend.KVCache
	// Activation buffers, [MaxBatch][width]. xo and ho hold the output
	// rows gathered in the last layer. act, silu(gate)*up, has a buffer of
	// its own because backends may refuse an elementwise op whose output
	// shares a buffer with an input view (even in disjoint columns).
	x, h, xo, ho, qkv, att, ffn, act backend.Tensor

	ropeQ, ropeK backend.RoPE
	views        map[int]*views
}

// views are the buffers cut to one batch size; the column views of qkv
// and ffn are the projections' outputs.
type views struct {
	x, h, xo, ho   backend.Tensor
	qkv, q, k, v   backend.Tensor
	att            backend.Tensor
	ffn, gate, upv backend.Tensor
	act            backend.Tensor // silu(gate)*up
}

func newDecoder(up *uploader, cfg Config, opt Options) (*decoder, error) {
	d := &decoder{cfg: cfg, opt: opt, be: up.be, up: up, views: map[int]*views{}}
	kv, err := d.be.NewKVCache(backend.KVConfig{
		Layers: cfg.Layers, Seqs: opt.Seqs, Ctx: opt.Ctx,
		KVHeads: cfg.KVHeads, HeadDim: cfg.HeadDim, Type: opt.KVType,
	})
	if err != nil {
		return nil, fmt.Errorf("KV cache (%d layers, %d slots of %d positions): %w", cfg.Layers, opt.Seqs, opt.Ctx, err)
	}
	up.own(kv)
	d.kv = kv

	n := opt.MaxBatch
	for _, b := range []struct {
		dst  *backend.Tensor
		name string
		cols int
	}{
		{&d.x, "x", cfg.Dim},
		{&d.h, "h", cfg.Dim},
		{&d.xo, "x_out", cfg.Dim},
		{&d.ho, "h_out", cfg.Dim},
		{&d.qkv, "qkv", cfg.QDim() + 2*cfg.KVDim()},
		{&d.att, "attn", cfg.QDim()},
		{&d.ffn, "gate_up", 2 * cfg.FFN},
		{&d.act, "ffn_act", cfg.FFN},
	} {
		t, err := d.be.NewActivation(b.name, n, b.cols)
		if err != nil {
			return nil, fmt.Errorf("activation %s [%d][%d]: %w", b.name, n, b.cols, err)
		}
		up.own(t)
		*b.dst = t
	}
	d.ropeQ = backend.RoPE{HeadDim: cfg.HeadDim, Heads: cfg.Heads, FreqBase: cfg.RopeBase, FreqScale: cfg.RopeScale, Neox: cfg.Neox}
	d.ropeK = d.ropeQ
	d.ropeK.Heads = cfg.KVHeads
	return d, nil
}

func (d *decoder) Config() Config      { return d.cfg }
func (d *decoder) Options() Options    { return d.opt }
func (d *decoder) KV() backend.KVCache { return d.kv }

func (d *decoder) NewLogits() (backend.Tensor, error) {
	t, err := d.be.NewActivation("logits", d.opt.MaxBatch, d.cfg.Vocab)
	if err != nil {
		return nil, fmt.Errorf("logits [%d][%d]: %w", d.opt.MaxBatch, d.cfg.Vocab, err)
	}
	return t, nil
}

// Close frees the weights, buffers and cache. Views need no freeing.
func (d *decoder) Close() error {
	d.views = nil
	return d.up.free()
}

// check validates a batch and a logits buffer before a forward pass.
func (d *decoder) check(b backend.Batch, logits backend.Tensor) error {
	n, nOut := b.Len(), b.OutputLen()
	if n <= 0 || n > d.opt.MaxBatch {
		return fmt.Errorf("forward: batch of %d tokens, want 1..%d", n, d.opt.MaxBatch)
	}
	if nOut > n {
		return fmt.Errorf("forward: %d output rows in a batch of %d", nOut, n)
	}
	if nOut > 0 && (logits == nil || logits.Rows() < nOut || logits.Cols() != d.cfg.Vocab) {
		return fmt.Errorf("forward: logits buffer must be [>=%d][%d]", nOut, d.cfg.Vocab)
	}
	return nil
}

// viewsFor returns (and caches, so that repeated steps reuse the same
// tensors) the buffers cut to n rows.
func (d *decoder) viewsFor(n int) (*views, error) {
	if v, ok := d.views[n]; ok {
		return v, nil
	}
	var err error
	rows := func(t backend.Tensor) backend.Tensor {
		if err != nil {
			return nil
		}
		var r backend.Tensor
		r, err = d.be.View(t, 0, n, 0, t.Cols())
		return r
	}
	cols := func(t backend.Tensor, c0, c int) backend.Tensor {
		if err != nil {
			return nil
		}
		var r backend.Tensor
		r, err = d.be.View(t, 0, n, c0, c)
		return r
	}
	q, kv := d.cfg.QDim(), d.cfg.KVDim()
	v := &views{
		x: rows(d.x), h: rows(d.h), xo: rows(d.xo), ho: rows(d.ho),
		qkv: rows(d.qkv), att: rows(d.att), ffn: rows(d.ffn), act: rows(d.act),
	}
	v.q = cols(d.qkv, 0, q)
	v.k = cols(d.qkv, q, kv)
	v.v = cols(d.qkv, q+kv, kv)
	v.gate = cols(d.ffn, 0, d.cfg.FFN)
	v.upv = cols(d.ffn, d.cfg.FFN, d.cfg.FFN)
	if err != nil {
		return nil, fmt.Errorf("views for %d rows: %w", n, err)
	}
	d.views[n] = v
	return v, nil
}

// logitsView is the first n rows of the logits buffer.
func (d *decoder) logitsView(logits backend.Tensor, n int) (backend.Tensor, error) {
	if n == logits.Rows() {
		return logits, nil
	}
	return d.be.View(logits, 0, n, 0, logits.Cols())
}

// attention rotates q and k in place and attends over the cache; the
// result lands in v.att.
func (d *decoder) attention(il int, b backend.Batch, v *views) error {
	if err := d.be.ApplyRoPE(v.q, b, d.ropeQ); err != nil {
		return layerErr(il, "rope_q", err)
	}
	if err := d.be.ApplyRoPE(v.k, b, d.ropeK); err != nil {
		return layerErr(il, "rope_k", err)
	}
	if err := d.be.Attention(v.att, v.q, v.k, v.v, d.kv, il, b, d.cfg.AttnScale); err != nil {
		return layerErr(il, "attention", err)
	}
	return nil
}

// gatherOutputs moves the output rows of x and h into the compact xo, ho
// buffers. It returns nil views when the batch wants no logits: the cache
// is filled by then, so nothing is left to compute.
func (d *decoder) gatherOutputs(b backend.Batch, x, h backend.Tensor) (xo, ho backend.Tensor, v *views, err error) {
	nOut := b.OutputLen()
	if nOut == 0 {
		return nil, nil, nil, nil
	}
	if v, err = d.viewsFor(nOut); err != nil {
		return nil, nil, nil, err
	}
	if err = d.be.GatherOutputs(v.xo, x, b); err != nil {
		return nil, nil, nil, fmt.Errorf("gather outputs: %w", err)
	}
	if err = d.be.GatherOutputs(v.ho, h, b); err != nil {
		return nil, nil, nil, fmt.Errorf("gather outputs: %w", err)
	}
	return v.xo, v.ho, v, nil
}

// classify computes logits = output · (rmsnorm(x) * output_norm) for the
// gathered rows, using h as scratch.
func (d *decoder) classify(x, h, outNorm, output, logits backend.Tensor) error {
	if err := d.be.RMSNorm(h, x, outNorm, d.cfg.NormEps); err != nil {
		return fmt.Errorf("output_norm: %w", err)
	}
	lv, err := d.logitsView(logits, x.Rows())
	if err != nil {
		return fmt.Errorf("logits view: %w", err)
	}
	if err := d.be.MatMul(lv, output, h); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	return nil
}

func layerErr(il int, op string, err error) error {
	return fmt.Errorf("blk.%d %s: %w", il, op, err)
}

// forward runs one batch through the layers layer(0..n-1) gives, each
// with the bias of its fused q|k|v projection or nil. In the last layer
// only the rows whose logits are wanted go on past attention (as
// llama.cpp does), so prompt chunks skip the last feed-forward and the
// classifier for all other rows.
func (d *decoder) forward(b backend.Batch, logits, tokEmbd, outNorm, output backend.Tensor, n int,
	layer func(il int) (*llamaLayer, backend.Tensor)) error {
	if err := d.check(b, logits); err != nil {
		return err
	}
	be, cfg := d.be, d.cfg
	v, err := d.viewsFor(b.Len())
	if err != nil {
		return err
	}
	x, h := v.x, v.h
	if err := be.Embed(x, tokEmbd, b); err != nil {
		return fmt.Errorf("token_embd: %w", err)
	}
	for il := 0; il < n; il++ {
		l, qkvBias := layer(il)
		// Attention block: h = rmsnorm(x)*attn_norm; q,k,v; RoPE; attention.
		if err := be.RMSNorm(h, x, l.attnNorm, cfg.NormEps); err != nil {
			return layerErr(il, "attn_norm", err)
		}
		if err := l.qkv.forward(be, h, v.qkv, v.q, v.k, v.v); err != nil {
			return layerErr(il, "attn_qkv", err)
		}
		if qkvBias != nil {
			// q|k|v = W·h + b, the bias broadcast over the batch rows.
			if err := be.Add(v.qkv, v.qkv, qkvBias); err != nil {
				return layerErr(il, "attn_qkv_bias", err)
			}
		}
		if err := d.attention(il, b, v); err != nil {
			return err
		}
		if err := be.MatMul(h, l.wo, v.att); err != nil {
			return layerErr(il, "attn_output", err)
		}
		if il == n-1 {
			if x, h, v, err = d.gatherOutputs(b, x, h); err != nil || v == nil {
				return err
			}
		}
		// x += attention; then the feed-forward block.
		if err := be.Add(x, x, h); err != nil {
			return layerErr(il, "attn_residual", err)
		}
		if err := d.feedForward(il, l, x, h, v); err != nil {
			return err
		}
	}
	return d.classify(x, h, outNorm, output, logits)
}

// feedForward is the llama family's SwiGLU block with its residual:
// x += down(silu(gate(h)) * up(h)) where h = rmsnorm(x) * ffn_norm.
func (d *decoder) feedForward(il int, l *llamaLayer, x, h backend.Tensor, v *views) error {
	be := d.be
	if err := be.RMSNorm(h, x, l.ffnNorm, d.cfg.NormEps); err != nil {
		return layerErr(il, "ffn_norm", err)
	}
	if err := l.gateUp.forward(be, h, v.ffn, v.gate, v.upv); err != nil {
		return layerErr(il, "ffn_gate_up", err)
	}
	if err := be.SiLUMul(v.act, v.gate, v.upv); err != nil {
		return layerErr(il, "ffn_silu", err)
	}
	if err := be.MatMul(h, l.down, v.act); err != nil {
		return layerErr(il, "ffn_down", err)
	}
	if err := be.Add(x, x, h); err != nil {
		return layerErr(il, "ffn_residual", err)
	}
	return nil
}
