package fallback

import (
	"fmt"

	"qinfer/fallback/vecmath"
	"qinfer/host/backend"
)

// Attention follows llama.cpp's CPU graph without flash attention
// (build_attn: KQ = mul_mat(K, Q); soft_max_ext(KQ, mask, scale);
// KQV = mul_mat(V, KQ)), reproducing its float operations:
//
//   - K and V rows are converted to the cache type when stored (F16 with
//     VCVTPS2PH rounding, like ggml_cpy).
//   - mul_mat converts its second operand to the first's vec_dot_type: Q
//     to F16 for an F16 cache, and the softmax output to F16 before it
//     meets V. An F32 cache keeps both in F32.
//   - A batch of two or more tokens goes through llamafile's tinyBLAS when
//     its shape allows (k a multiple of 8, m of 4; Q is not contiguous, so
//     with an F32 cache KQ never does): one 8-lane FMA accumulator per
//     output (dotTiny). A single token goes through ggml_vec_dot_f16/f32:
//     four 8-lane accumulators and a different reduction (dotVecF16/F32).
//   - Softmax: scores*scale in float, max, v_expf in blocks of 8 whose
//     sums are accumulated in double, then *(float)(1/sum) (softmaxGGML).
//     llama.cpp pads the KV length to a multiple of 32 with masked cells;
//     they contribute exact zeros, so only positions 0..pos are visited,
//     with lanes assigned as if the padding were there.
//
// Lane assignment follows the cell index, which equals the position for a
// sequence that llama.cpp stores from cell 0 (one sequence per context);
// with several sequences sharing its cache the cells differ and so may
// the last bits.
func (c *CPU) Attention(dst, q, k, v backend.Tensor, cache backend.KVCache, layer int, bt backend.Batch, scale float32) error {
	if err := c.begin(opAttention); err != nil {
		return err
	}
	var st opStats
	defer c.end(&st)

	a := &c.attn
	if err := c.attnCheck(dst, q, k, v, cache, layer, bt); err != nil {
		a.release()
		return err
	}
	a.layer, a.scale = layer, scale
	a.store()

	var work, kvBytes int64
	for t := 0; t < a.b.n; t++ {
		work += int64(a.b.pos[t]) + 1
	}
	elem := int64(2)
	if a.kv.cfg.Type == backend.F32 {
		elem = 4
	}
	kvBytes = 2 * work * int64(a.kv.kvDim) * elem
	work *= int64(a.heads) * int64(a.hd)

	items := a.b.n * a.heads
	a.nchunks = 1
	if items > 1 && work >= parallelElems && c.pool.Threads() > 1 {
		a.nchunks = min(items, 4*c.pool.Threads())
	}
	a.grow()
	if a.nchunks == 1 {
		a.chunks(0, 1)
	} else {
		c.pool.For(a.nchunks, 1, a.fn)
	}
	a.release()
	st = opStats{
		bytes: kvBytes + 4*int64(a.nq)*2 + 4*int64(a.nkv)*2,
		ops:   4 * work,
		ok:    true,
	}
	return nil
}

// attnState carries Attention's arguments to the chunk function bound
// once in New, and per-chunk scratch that grows and stays.
type attnState struct {
	d, q, k, v *activation
	kv         *kvCache
	b          *batch
	layer      int
	scale      float32
	heads      int // query heads
	group      int // query heads per KV head
	hd         int
	tinyKQ     bool   // KQ may use tinyBLAS order (shape and type allow)
	tinyKQV    bool   // KQV may use tinyBLAS order
	seqCount   []int  // tokens of each sequence in this batch
	tokMulti   []bool // token's sequence has 2+ tokens in this batch
	nq, nkv    int    // elements of q (and dst) and of k (and v), for the profile

	nchunks int
	scratch []attnScratch
	fn      func(lo, hi int)
}

type attnScratch struct {
	q      []float32 // one query head, as the dot sees it (F16-rounded for an F16 cache)
	scores []float32 // one per visible position
	acc    []float32 // KQV lane accumulators, lane-major: 8 or 32 lanes x hd outputs
}

func (a *attnState) init() { a.fn = a.chunks }

func (a *attnState) release() { a.d, a.q, a.k, a.v, a.kv, a.b = nil, nil, nil, nil, nil, nil }

func (c *CPU) attnCheck(dst, q, k, v backend.Tensor, cache backend.KVCache, layer int, bt backend.Batch) error {
	const op = "attention"
	var err error
	a := &c.attn
	if a.d, err = asActivation(op, "destination", dst); err != nil {
		return err
	}
	if a.q, err = asActivation(op, "q", q); err != nil {
		return err
	}
	if a.k, err = asActivation(op, "k", k); err != nil {
		return err
	}
	if a.v, err = asActivation(op, "v", v); err != nil {
		return err
	}
	if a.kv, err = asKVCache(op, cache); err != nil {
		return err
	}
	if a.b, err = asSetBatch(op, bt); err != nil {
		return err
	}
	cfg := a.kv.cfg
	if layer < 0 || layer >= cfg.Layers {
		return fmt.Errorf("attention: layer %d outside cache of %d layers", layer, cfg.Layers)
	}
	hd := cfg.HeadDim
	if a.q.cols%hd != 0 || a.q.cols/hd < cfg.KVHeads || (a.q.cols/hd)%cfg.KVHeads != 0 {
		return fmt.Errorf("attention: q %s is not a whole multiple of %d KV heads of dimension %d",
			shape(a.q), cfg.KVHeads, hd)
	}
	n := a.b.n
	kvDim := cfg.KVHeads * hd
	if a.q.rows != n || a.k.rows != n || a.v.rows != n || a.k.cols != kvDim || a.v.cols != kvDim {
		return fmt.Errorf("attention: q %s, k %s, v %s for %d tokens: want q %dxH*%d, k and v %dx%d",
			shape(a.q), shape(a.k), shape(a.v), n, n, hd, n, kvDim)
	}
	if err := backend.CheckSameShape(op, a.d, a.q); err != nil {
		return err
	}
	if err := checkDisjoint(op, a.d, a.q, a.k, a.v); err != nil {
		return err
	}
	for t := 0; t < n; t++ {
		if p := a.b.pos[t]; int(p) >= cfg.Ctx {
			return fmt.Errorf("attention: token %d position %d outside context of %d", t, p, cfg.Ctx)
		}
		if s := a.b.seq[t]; int(s) >= cfg.Seqs {
			return fmt.Errorf("attention: token %d sequence %d outside %d sequence slots", t, s, cfg.Seqs)
		}
	}
	a.hd = hd
	a.heads = a.q.cols / hd
	a.group = a.heads / cfg.KVHeads
	// llama.cpp picks its summation order from the number of query
	// tokens in the ubatch. Deciding it per sequence from that sequence's
	// own tokens makes a sequence's results independent of what else is
	// batched with it, and equal to llama.cpp evaluating it alone.
	a.seqCount = grow(a.seqCount, cfg.Seqs)
	clear(a.seqCount)
	a.tokMulti = grow(a.tokMulti, n)
	for t := 0; t < n; t++ {
		a.seqCount[a.b.seq[t]]++
	}
	for t := 0; t < n; t++ {
		a.tokMulti[t] = a.seqCount[a.b.seq[t]] >= 2
	}
	a.tinyKQ = hd%8 == 0 && cfg.Type == backend.F16
	a.tinyKQV = hd%4 == 0
	a.nq = n * a.q.cols
	a.nkv = n * kvDim
	return nil
}

// store writes every token's k and v rows at (seq, pos) of the layer.
func (a *attnState) store() {
	kv := a.kv
	for t := 0; t < a.b.n; t++ {
		off := kv.rowIndex(a.layer, int(a.b.seq[t]), int(a.b.pos[t]))
		kr, vr := a.k.row(t), a.v.row(t)
		if kv.cfg.Type == backend.F16 {
			vecmath.ToF16(kv.k16[off:off+kv.kvDim], kr)
			vecmath.ToF16(kv.v16[off:off+kv.kvDim], vr)
		} else {
			copy(kv.k32[off:off+kv.kvDim], kr)
			copy(kv.v32[off:off+kv.kvDim], vr)
		}
	}
}

// grow sizes the scratch of every chunk for this call.
func (a *attnState) grow() {
	for len(a.scratch) < a.nchunks {
		a.scratch = append(a.scratch, attnScratch{})
	}
	ctx := a.kv.cfg.Ctx
	for i := 0; i < a.nchunks; i++ {
		s := &a.scratch[i]
		if cap(s.q) < a.hd {
			s.q = make([]float32, a.hd)
		}
		if cap(s.scores) < ctx {
			s.scores = make([]float32, ctx)
		}
		if cap(s.acc) < 32*a.hd {
			s.acc = make([]float32, 32*a.hd)
		}
	}
}

// chunks computes items ch, ch+nchunks, ... (item = token*heads + head)
// for each chunk ch in [lo, hi): interleaving spreads the long rows of
// late positions over all chunks.
func (a *attnState) chunks(lo, hi int) {
	items := a.b.n * a.heads
	for ch := lo; ch < hi; ch++ {
		s := &a.scratch[ch]
		for it := ch; it < items; it += a.nchunks {
			a.head(s, it/a.heads, it%a.heads)
		}
	}
}

// head computes the attention output of head h of token t. With an F16
// cache each step is one vecmath call over whole rows: the scores of all
// visible keys, the softmax, and the KQV accumulation with position j in
// lane j%lanes of each output (kept lane-major: lanes rows of hd floats).
func (a *attnState) head(s *attnScratch, t, h int) {
	kv, hd := a.kv, a.hd
	f16 := kv.cfg.Type == backend.F16
	pos := int(a.b.pos[t])
	base := kv.rowIndex(a.layer, int(a.b.seq[t]), 0) + (h/a.group)*hd
	n := pos + 1
	tinyKQ := a.tinyKQ && a.tokMulti[t]
	tinyKQV := a.tinyKQV && a.tokMulti[t]

	q := s.q[:hd]
	qsrc := a.q.row(t)[h*hd : (h+1)*hd]
	if f16 {
		vecmath.RoundF16(q, qsrc)
	} else {
		copy(q, qsrc)
	}

	// KQ, scaled as soft_max_ext does before its max.
	scores := s.scores[:n]
	if f16 {
		vecmath.DotsF16(scores, kv.k16[base:], kv.kvDim, q, a.scale, tinyKQ)
	} else {
		for j := range scores {
			off := base + j*kv.kvDim
			scores[j] = dotVecF32(kv.k32[off:off+hd], q) * a.scale
		}
	}
	vecmath.Softmax(scores, scores, true)

	lanes := 32
	if tinyKQV {
		lanes = 8
	}
	acc := s.acc[:lanes*hd]
	clear(acc)
	if f16 {
		vecmath.RoundF16(scores, scores)
		vecmath.AxpyLanesF16(acc, lanes, kv.v16[base:], kv.kvDim, scores, hd)
	} else {
		for j, p := range scores {
			off := base + j*kv.kvDim
			la := acc[(j%lanes)*hd : (j%lanes+1)*hd]
			for i, x := range kv.v32[off : off+hd] {
				la[i] = vecmath.FMA32(x, p, la[i])
			}
		}
	}
	vecmath.ReduceLanes(a.d.row(t)[h*hd:(h+1)*hd], acc, lanes)
}

// grow returns s with length n, reusing its memory when it is large enough.
func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}
