package fallback

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
)

// attnRef is a float64 model of causal grouped-query attention over a
// per-(layer, sequence) history of k and v rows.
type attnRef struct {
	heads, kvHeads, hd int
	k, v               map[[3]int][]float32 // (layer, seq, pos) -> row
}

func (r *attnRef) store(layer, seq, pos int, k, v []float32) {
	r.k[[3]int{layer, seq, pos}] = append([]float32(nil), k...)
	r.v[[3]int{layer, seq, pos}] = append([]float32(nil), v...)
}

// out computes one token's attention output over positions 0..pos of seq.
func (r *attnRef) out(layer, seq, pos int, q []float32, scale float64) []float64 {
	out := make([]float64, r.heads*r.hd)
	group := r.heads / r.kvHeads
	for h := 0; h < r.heads; h++ {
		kvh := h / group
		s := make([]float64, pos+1)
		maxs := math.Inf(-1)
		for j := 0; j <= pos; j++ {
			kr := r.k[[3]int{layer, seq, j}][kvh*r.hd:]
			for i := 0; i < r.hd; i++ {
				s[j] += float64(q[h*r.hd+i]) * float64(kr[i])
			}
			s[j] *= scale
			maxs = math.Max(maxs, s[j])
		}
		var sum float64
		for j := range s {
			s[j] = math.Exp(s[j] - maxs)
			sum += s[j]
		}
		for j := range s {
			vr := r.v[[3]int{layer, seq, j}][kvh*r.hd:]
			for i := 0; i < r.hd; i++ {
				out[h*r.hd+i] += s[j] / sum * float64(vr[i])
			}
		}
	}
	return out
}

type attnStep struct {
	seq, pos []int32
}

// TestAttentionGQA runs grouped-query attention (6 query heads on 2 KV
// heads) over two sequences at different positions, with prompts, a mixed
// batch and single-token decode steps, on two layers, against the float64
// model. A result that saw a later position of its own sequence (stored by
// the same batch) or any position of the other sequence would differ.
func TestAttentionGQA(t *testing.T) {
	steps := []attnStep{
		{seq: []int32{0, 0, 0, 0, 0, 0, 0, 0, 0}, pos: []int32{0, 1, 2, 3, 4, 5, 6, 7, 8}}, // prompt of sequence 0
		{seq: []int32{1, 1, 1, 1}, pos: []int32{0, 1, 2, 3}},                               // prompt of sequence 1
		{seq: []int32{0, 1, 0, 0}, pos: []int32{9, 4, 10, 11}},                             // mixed batch
		{seq: []int32{0}, pos: []int32{12}},                                                // decode: 13 positions
		{seq: []int32{1}, pos: []int32{5}},
	}
	for _, typ := range []backend.DType{backend.F16, backend.F32} {
		for _, hd := range []int{10, 16, 32, 40} { // 16, 32 and 40 take the tinyBLAS shapes, 32 and 40 the 32-lane loop
			t.Run(fmt.Sprintf("%v/hd%d", typ, hd), func(t *testing.T) {
				runAttention(t, typ, 6, 2, hd, 16, steps)
			})
		}
	}
}

func runAttention(t *testing.T, typ backend.DType, heads, kvHeads, hd, ctx int, steps []attnStep) {
	rng := rand.New(rand.NewPCG(uint64(hd), uint64(typ)+1))
	c := newCPU(t, 2)
	const layers = 2
	cfg := backend.KVConfig{Layers: layers, Seqs: 2, Ctx: ctx, KVHeads: kvHeads, HeadDim: hd, Type: typ}
	kvc, err := c.NewKVCache(cfg)
	require.NoError(t, err)
	require.Equal(t, cfg, kvc.Config())
	ref := &attnRef{heads: heads, kvHeads: kvHeads, hd: hd, k: map[[3]int][]float32{}, v: map[[3]int][]float32{}}
	scale := 1 / math.Sqrt(float64(hd))

	// F16 rounds q, k, v and the probabilities to 11 bits; F32 only
	// reorders sums.
	atol, rtol := 2e-3, 2e-3
	if typ == backend.F32 {
		atol, rtol = 2e-6, 2e-5
	}
	qc, kc := heads*hd, kvHeads*hd
	for si, st := range steps {
		n := len(st.pos)
		b := setBatch(t, c, &backend.BatchInput{IDs: make([]int32, n), Pos: st.pos, Seq: st.seq})
		for layer := 0; layer < layers; layer++ {
			qv := randVals(rng, n*qc, 1)
			kv := randVals(rng, n*kc, 1)
			vv := randVals(rng, n*kc, 1)
			q := newStrided(t, c, rng, n, qc, qv)
			k := newStrided(t, c, rng, n, kc, kv)
			v := newStrided(t, c, rng, n, kc, vv)
			d := newStrided(t, c, rng, n, qc, nil)
			require.NoError(t, c.Attention(d.view, q.view, k.view, v.view, kvc, layer, b, float32(scale)))
			got := readAll(t, c, d.view)
			d.checkGuard(t, c)
			for i := 0; i < n; i++ {
				ref.store(layer, int(st.seq[i]), int(st.pos[i]), kv[i*kc:(i+1)*kc], vv[i*kc:(i+1)*kc])
			}
			count := map[int32]int{}
			for _, sq := range st.seq {
				count[sq]++
			}
			for i := 0; i < n; i++ {
				exact := ref.exact(layer, int(st.seq[i]), int(st.pos[i]), qv[i*qc:(i+1)*qc], float32(scale), typ, count[st.seq[i]] >= 2)
				requireSameBits(t, exact, got[i*qc:(i+1)*qc],
					fmt.Sprintf("exact: step %d layer %d token %d (seq %d pos %d)", si, layer, i, st.seq[i], st.pos[i]))
				want := ref.out(layer, int(st.seq[i]), int(st.pos[i]), qv[i*qc:(i+1)*qc], scale)
				requireClose(t, want, got[i*qc:(i+1)*qc], atol, rtol,
					fmt.Sprintf("step %d layer %d token %d (seq %d pos %d)", si, layer, i, st.seq[i], st.pos[i]))
			}
		}
	}
}

// TestAttentionParallel is large enough to run on the pool.
func TestAttentionParallel(t *testing.T) {
	n := 24
	pos := make([]int32, n)
	seq := make([]int32, n)
	for i := range pos {
		pos[i] = int32(i)
	}
	steps := []attnStep{{seq: seq, pos: pos}, {seq: []int32{0}, pos: []int32{int32(n)}}}
	runAttention(t, backend.F16, 8, 4, 64, 32, steps)
}

func TestAttentionErrors(t *testing.T) {
	c := newCPU(t, 1)
	cfg := backend.KVConfig{Layers: 1, Seqs: 2, Ctx: 8, KVHeads: 2, HeadDim: 4, Type: backend.F16}
	kvc, err := c.NewKVCache(cfg)
	require.NoError(t, err)
	q := newAct(t, c, 1, 16, nil)
	k := newAct(t, c, 1, 8, nil)
	v := newAct(t, c, 1, 8, nil)
	d := newAct(t, c, 1, 16, nil)
	batch := func(pos, seq int32) backend.Batch {
		return setBatch(t, c, &backend.BatchInput{IDs: []int32{0}, Pos: []int32{pos}, Seq: []int32{seq}})
	}
	ok := batch(7, 1)
	require.NoError(t, c.Attention(d, q, k, v, kvc, 0, ok, 0.5))

	require.ErrorContains(t, c.Attention(d, q, k, v, kvc, 0, batch(8, 0), 0.5), "position 8 outside context of 8")
	require.ErrorContains(t, c.Attention(d, q, k, v, kvc, 0, batch(0, 2), 0.5), "sequence 2 outside 2")
	require.ErrorContains(t, c.Attention(d, q, k, v, kvc, 1, ok, 0.5), "layer 1")
	require.ErrorContains(t, c.Attention(d, q, newAct(t, c, 1, 12, nil), v, kvc, 0, ok, 0.5), "attention")
	require.ErrorContains(t, c.Attention(d, newAct(t, c, 1, 12, nil), k, v, kvc, 0, ok, 0.5), "not a whole multiple")
	require.ErrorContains(t, c.Attention(q, q, k, v, kvc, 0, ok, 0.5), "overlaps")
	two := setBatch(t, c, &backend.BatchInput{IDs: []int32{0, 0}, Pos: []int32{0, 1}, Seq: []int32{0, 0}})
	require.ErrorContains(t, c.Attention(d, q, k, v, kvc, 0, two, 0.5), "for 2 tokens")

	_, err = c.NewKVCache(backend.KVConfig{Layers: 1, Seqs: 1, Ctx: 8, KVHeads: 1, HeadDim: 4, Type: backend.Q8_0})
	require.ErrorContains(t, err, "Q8_0")
	_, err = c.NewKVCache(backend.KVConfig{Layers: 1, Seqs: 0, Ctx: 8, KVHeads: 1, HeadDim: 4, Type: backend.F16})
	require.Error(t, err)
	_, err = c.NewKVCache(backend.KVConfig{Layers: 1 << 20, Seqs: 1 << 10, Ctx: 1 << 20, KVHeads: 8, HeadDim: 128, Type: backend.F16})
	require.ErrorContains(t, err, "more than")

	require.NoError(t, c.Free(kvc))
	require.ErrorContains(t, c.Attention(d, q, k, v, kvc, 0, ok, 0.5), "freed")
}
