package cuda

import (
	"fmt"

	"qinfer/host/backend"
	"qinfer/kernels"
)

// maxHeadDim is the largest head dimension the attention kernels support.
const maxHeadDim = kernels.MaxHeadDim

// Attention stores k, v in the cache at each token's (sequence, position)
// of layer, then dst[t] = softmax(q[t] K^T * scale) V over positions
// 0..pos[t] of the token's sequence, per head, grouped-query heads sharing
// KV heads. The kernels (kernels/attention.cu) follow the CPU backend's
// float operations, including its choice of dot product by batch size.
func (b *Backend) Attention(dst, q, k, v backend.Tensor, cache backend.KVCache, layer int, bt backend.Batch, scale float32) error {
	const op = "attention"
	var d, qa, ka, va *activation
	var kv *kvCache
	var bb *batch
	return b.run(op, func() error {
		var err error
		if d, err = asActivation(op, "destination", dst); err != nil {
			return err
		}
		if qa, err = asActivation(op, "q", q); err != nil {
			return err
		}
		if ka, err = asActivation(op, "k", k); err != nil {
			return err
		}
		if va, err = asActivation(op, "v", v); err != nil {
			return err
		}
		if kv, err = asKVCache(op, cache); err != nil {
			return err
		}
		if bb, err = asSetBatch(op, bt); err != nil {
			return err
		}
		cfg := kv.cfg
		if layer < 0 || layer >= cfg.Layers {
			return fmt.Errorf("attention: layer %d outside cache of %d layers", layer, cfg.Layers)
		}
		hd := cfg.HeadDim
		if qa.cols%hd != 0 || qa.cols/hd < cfg.KVHeads || (qa.cols/hd)%cfg.KVHeads != 0 {
			return fmt.Errorf("attention: q %s is not a whole multiple of %d KV heads of dimension %d", shape(qa), cfg.KVHeads, hd)
		}
		n, kvDim := bb.n, kv.kvDim()
		if qa.rows != n || ka.rows != n || va.rows != n || ka.cols != kvDim || va.cols != kvDim {
			return fmt.Errorf("attention: q %s, k %s, v %s for %d tokens: want q %dxH*%d, k and v %dx%d",
				shape(qa), shape(ka), shape(va), n, n, hd, n, kvDim)
		}
		if err := backend.CheckSameShape(op, d, qa); err != nil {
			return err
		}
		if qa.cols/hd > maxGridYZ {
			return fmt.Errorf("attention: %d heads exceed %d", qa.cols/hd, maxGridYZ)
		}
		if err := checkDisjoint(op, d, qa, ka, va); err != nil {
			return err
		}
		pos, seq := bb.hostArr(1), bb.hostArr(2)
		for t := 0; t < n; t++ {
			if int(pos[t]) >= cfg.Ctx {
				return fmt.Errorf("attention: token %d position %d outside context of %d", t, pos[t], cfg.Ctx)
			}
			if int(seq[t]) >= cfg.Seqs {
				return fmt.Errorf("attention: token %d sequence %d outside %d sequence slots", t, seq[t], cfg.Seqs)
			}
		}
		return nil
	}, func() (int64, int64, error) {
		work, err := b.attention(d, qa, ka, va, kv, layer, bb, scale)
		if err != nil {
			return 0, 0, fmt.Errorf("attention: %w", err)
		}
		kvBytes := 2 * work * int64(kv.kvDim()) * kv.elem
		heads := int64(qa.cols / kv.cfg.HeadDim)
		return kvBytes + 4*int64(qa.rows)*int64(2*qa.cols+2*ka.cols), 4 * work * heads * int64(kv.cfg.HeadDim), nil
	})
}

// attnMode returns the scores kernel's dot-product mode and whether the
// KQV lanes are 8 (else 32), as the CPU backend chooses them: llama.cpp
// runs a batch of two or more tokens through tinyBLAS when the shape
// allows, a single token through ggml_vec_dot.
func attnMode(n, hd int, typ backend.DType) (mode int, lanes8 bool) {
	lanes8 = n >= 2 && hd%4 == 0
	switch {
	case typ == backend.F32:
		return kernels.KQVecF32, lanes8
	case n >= 2 && hd%8 == 0:
		return kernels.KQTinyF16, lanes8
	}
	return kernels.KQVecF16, lanes8
}

// attention enqueues the four kernels, in chunks of tokens whose scores
// fit the scratch (device thread). It returns the number of (token,
// position) pairs visited, for the profile.
func (b *Backend) attention(d, q, k, v *activation, kv *kvCache, layer int, bb *batch, scale float32) (int64, error) {
	cfg := kv.cfg
	n, hd, kvDim := bb.n, cfg.HeadDim, kv.kvDim()
	heads := q.cols / hd
	group := heads / cfg.KVHeads
	f16 := 0
	if cfg.Type == backend.F16 {
		f16 = 1
	}
	mode, lanes8 := attnMode(n, hd, cfg.Type)
	l8 := 0
	if lanes8 {
		l8 = 1
	}
	var work int64
	for _, p := range bb.hostArr(1)[:n] {
		work += int64(p) + 1
	}

	b.args.reset().ptr(k.ptr()).i64(k.ld).ptr(v.ptr()).i64(v.ld).ptr(bb.pos()).ptr(bb.seq()).
		ptr(kv.k(layer)).ptr(kv.v(layer)).i64(kvDim).i64(cfg.Ctx).i64(cfg.Seqs).i64(f16).ptr(b.status)
	if err := b.launch(kernels.KVStore, Dim3{X: cdiv(kvDim, 256), Y: uint32(n), Z: 1}); err != nil {
		return 0, err
	}

	// Scores take heads*ctx floats per token; the scratch grows (outside
	// capture) to hold all tokens, up to a bound past which they go in
	// chunks.
	perTok := 4 * int64(heads) * int64(cfg.Ctx)
	want := min(perTok*int64(n), max(perTok, attnScratchCap))
	if b.capturing && b.attn.size >= perTok {
		want = min(want, b.attn.size/perTok*perTok)
	}
	scores, err := b.ensure(&b.attn, "attention scores", want)
	if err != nil {
		return 0, err
	}
	chunk := int(min(int64(maxGridYZ), b.attn.size/perTok))
	for t0 := 0; t0 < n; t0 += chunk {
		c := min(chunk, n-t0)
		pos := bb.pos() + DevicePtr(4*t0)
		seq := bb.seq() + DevicePtr(4*t0)
		qp := q.ptr() + DevicePtr(4*int64(t0)*int64(q.ld))
		dp := d.ptr() + DevicePtr(4*int64(t0)*int64(d.ld))
		b.args.reset().ptr(qp).i64(q.ld).ptr(kv.k(layer)).ptr(pos).ptr(seq).ptr(scores).
			i64(heads).i64(group).i64(hd).i64(kvDim).i64(cfg.Ctx).i64(cfg.Seqs).i64(mode).f32(scale)
		if err := b.launch(kernels.AttnScores, Dim3{X: cdiv(cfg.Ctx, kernels.AttnPositionsPerBlock), Y: uint32(heads), Z: uint32(c)}); err != nil {
			return 0, err
		}
		b.args.reset().ptr(scores).ptr(pos).ptr(seq).i64(heads).i64(cfg.Ctx).i64(cfg.Seqs).i64(f16)
		if err := b.launch(kernels.AttnSoftmax, Dim3{X: uint32(heads), Y: uint32(c), Z: 1}); err != nil {
			return 0, err
		}
		b.args.reset().ptr(scores).ptr(kv.v(layer)).ptr(pos).ptr(seq).ptr(dp).i64(d.ld).
			i64(heads).i64(group).i64(hd).i64(kvDim).i64(cfg.Ctx).i64(cfg.Seqs).i64(f16).i64(l8)
		if err := b.launch(kernels.AttnPV, Dim3{X: cdiv(hd, 32), Y: uint32(heads), Z: uint32(c)}); err != nil {
			return 0, err
		}
	}
	return work, nil
}

// attnScratchCap bounds the scores scratch when one token's scores fit;
// longer batches are processed in chunks of tokens.
const attnScratchCap = 256 << 20
