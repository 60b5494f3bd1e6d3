package cuda_test

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
)

// attnStep is one Attention call: tokens of two sequences at their
// positions.
type attnStep struct{ pos, seq []int32 }

// attnSteps: a prompt of 5 tokens for sequence 0 and 3 for sequence 1 in
// one batch, then single-token decode steps, then a two-token step.
var attnSteps = []attnStep{
	{pos: []int32{0, 1, 2, 3, 4, 0, 1, 2}, seq: []int32{0, 0, 0, 0, 0, 1, 1, 1}},
	{pos: []int32{5}, seq: []int32{0}},
	{pos: []int32{3}, seq: []int32{1}},
	{pos: []int32{6, 4}, seq: []int32{0, 1}},
}

// refAttention is attention in float64 from the K/V rows written so far
// (kept here): causal over each sequence's positions, grouped-query.
type refCache struct {
	k, v map[[2]int32][]float32 // (seq, pos) -> row
}

func (r *refCache) attend(q []float32, pos, seq int32, heads, kvHeads, hd int, scale float64) []float64 {
	out := make([]float64, heads*hd)
	group := heads / kvHeads
	for h := 0; h < heads; h++ {
		kh := h / group
		s := make([]float64, pos+1)
		mx := math.Inf(-1)
		for j := int32(0); j <= pos; j++ {
			k := r.k[[2]int32{seq, j}]
			var dot float64
			for i := 0; i < hd; i++ {
				dot += float64(q[h*hd+i]) * float64(k[kh*hd+i])
			}
			s[j] = dot * scale
			mx = math.Max(mx, s[j])
		}
		var sum float64
		for j := range s {
			s[j] = math.Exp(s[j] - mx)
			sum += s[j]
		}
		for j := int32(0); j <= pos; j++ {
			v := r.v[[2]int32{seq, j}]
			for i := 0; i < hd; i++ {
				out[h*hd+i] += s[j] / sum * float64(v[kh*hd+i])
			}
		}
	}
	return out
}

// TestParityAttention runs prefill and decode steps over two sequences
// with grouped-query heads, for F16 and F32 caches and head dimensions
// that select each of the CPU's dot-product shapes, against the CPU
// backend (expected equal up to the softmax's double additions) and a
// float64 reference (which checks causality and sequence isolation
// independently, within the F16 roundings).
func TestParityAttention(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		for _, c := range []struct {
			typ backend.DType
			hd  int
		}{{backend.F16, 10}, {backend.F16, 16}, {backend.F16, 36}, {backend.F32, 12}} {
			t.Run(fmt.Sprintf("%v_hd%d", c.typ, c.hd), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(c.hd)))
				p := newPair(t, d)
				const heads, kvHeads, layers = 6, 2, 2
				cfg := backend.KVConfig{Layers: layers, Seqs: 2, Ctx: 9, KVHeads: kvHeads, HeadDim: c.hd, Type: c.typ}
				kg, err := p.gpu.NewKVCache(cfg)
				require.NoError(t, err)
				defer p.gpu.Free(kg)
				kc, err := p.cpu.NewKVCache(cfg)
				require.NoError(t, err)
				scale := float32(1 / math.Sqrt(float64(c.hd)))
				refs := []*refCache{{map[[2]int32][]float32{}, map[[2]int32][]float32{}}, {map[[2]int32][]float32{}, map[[2]int32][]float32{}}}
				for si, st := range attnSteps {
					n := len(st.pos)
					bt := p.batch(&backend.BatchInput{IDs: make([]int32, n), Pos: st.pos, Seq: st.seq})
					qd, kd := heads*c.hd, kvHeads*c.hd
					// q, k, v are column views of one fused activation, as the
					// model's QKV projection leaves them.
					qkvVals := randn(rng, n*(qd+2*kd), 1)
					qkv := p.act("qkv", n, qd+2*kd, qkvVals)
					q, k, v := p.view(qkv, 0, n, 0, qd), p.view(qkv, 0, n, qd, kd), p.view(qkv, 0, n, qd+kd, kd)
					for layer := 0; layer < layers; layer++ {
						out := p.act("out", n, qd, nil)
						p.poison(out)
						require.NoError(t, p.gpu.Attention(out.g, q.g, k.g, v.g, kg, layer, bt.g, scale))
						require.NoError(t, p.cpu.Attention(out.c, q.c, k.c, v.c, kc, layer, bt.c, scale))
						gv, cv := p.read(out)
						var vmax float32
						for _, x := range qkvVals {
							vmax = float32(math.Max(float64(vmax), math.Abs(float64(x))))
						}
						tol := make([]float32, len(cv))
						for i := range tol {
							tol[i] = 1e-6 * vmax
						}
						within(t, gv, cv, tol, fmt.Sprintf("step %d layer %d vs cpu", si, layer))
						t.Logf("step %d layer %d: max |gpu-cpu| = %g", si, layer, maxDiff(gv, cv))

						ref := refs[layer]
						for tk := 0; tk < n; tk++ {
							row := qkvVals[tk*(qd+2*kd):]
							key := [2]int32{st.seq[tk], st.pos[tk]}
							ref.k[key] = append([]float32(nil), row[qd:qd+kd]...)
							ref.v[key] = append([]float32(nil), row[qd+kd:qd+2*kd]...)
						}
						for tk := 0; tk < n; tk++ {
							want := ref.attend(qkvVals[tk*(qd+2*kd):], st.pos[tk], st.seq[tk], heads, kvHeads, c.hd, float64(scale))
							for i, w := range want {
								g := float64(gv[tk*qd+i])
								// F16 q, k, v and probabilities: ~2^-10 relative each.
								if math.Abs(g-w) > 4e-3*float64(vmax) {
									t.Fatalf("step %d layer %d token %d [%d]: gpu %v, float64 reference %v", si, layer, tk, i, g, w)
								}
							}
						}
					}
				}
			})
		}
	})
}

// TestAttentionErrors: positions and sequences outside the cache, and
// shapes, are refused before anything runs.
func TestAttentionErrors(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		be := d.be
		cache, err := be.NewKVCache(backend.KVConfig{Layers: 1, Seqs: 2, Ctx: 4, KVHeads: 1, HeadDim: 8, Type: backend.F16})
		require.NoError(t, err)
		defer be.Free(cache)
		q, _ := be.NewActivation("q", 1, 16)
		kv, _ := be.NewActivation("kv", 1, 8)
		out, _ := be.NewActivation("out", 1, 16)
		defer be.Free(q)
		defer be.Free(kv)
		defer be.Free(out)
		bt, err := be.NewBatch(2)
		require.NoError(t, err)
		defer be.Free(bt)
		require.NoError(t, be.SetBatch(bt, &backend.BatchInput{IDs: []int32{0}, Pos: []int32{4}, Seq: []int32{0}}))
		require.ErrorContains(t, be.Attention(out, q, kv, kv, cache, 0, bt, 1), "attention: token 0 position 4 outside context of 4")
		require.NoError(t, be.SetBatch(bt, &backend.BatchInput{IDs: []int32{0}, Pos: []int32{1}, Seq: []int32{2}}))
		require.ErrorContains(t, be.Attention(out, q, kv, kv, cache, 0, bt, 1), "attention: token 0 sequence 2 outside 2 sequence slots")
		require.NoError(t, be.SetBatch(bt, &backend.BatchInput{IDs: []int32{0}, Pos: []int32{1}, Seq: []int32{1}}))
		require.ErrorContains(t, be.Attention(out, q, kv, kv, cache, 1, bt, 1), "layer 1 outside cache of 1 layers")
		require.ErrorContains(t, be.Attention(q, q, kv, kv, cache, 0, bt, 1), "overlaps")
		require.NoError(t, be.Attention(out, q, kv, kv, cache, 0, bt, 1))
		_, err = be.NewKVCache(backend.KVConfig{Layers: 1, Seqs: 1, Ctx: 4, KVHeads: 1, HeadDim: 9, Type: backend.F16})
		require.ErrorContains(t, err, "head dimension 9")
		require.NoError(t, be.Synchronize())
	})
}
