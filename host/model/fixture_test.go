package model

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/gguf"
)

// tinySpec describes a random F32 model written to GGUF for tests.
type tinySpec struct {
	arch                            string
	dim, layers, heads, kvHeads, ff int
	vocab, ctxTrain                 int
	eps, ropeBase, ropeFactor       float32
	tied, bias                      bool
	// scrambled writes attn_v before attn_q so the loader cannot fuse
	// Q, K and V without copying.
	scrambled bool
	seed      uint64
}

// refLayer and refModel hold the same weights as the file, in float64,
// for the reference forward pass.
type refLayer struct {
	attnNorm, ffnNorm []float64
	wq, wk, wv, wo    [][]float64
	bq, bk, bv        []float64
	gate, up, down    [][]float64
}

type refModel struct {
	spec    tinySpec
	embd    [][]float64
	outNorm []float64
	output  [][]float64
	layers  []refLayer
}

// buildTiny writes a random model and returns it parsed, with its float64
// twin. Weights are N(0, σ) with σ chosen so activations stay O(1) and
// every layer matters.
func buildTiny(t *testing.T, s tinySpec) (*gguf.File, *refModel) {
	t.Helper()
	rng := rand.New(rand.NewPCG(s.seed, 7))
	b := gguf.NewBuilder()
	p := s.arch + "."
	b.Set("general.architecture", gguf.Str(s.arch))
	b.Set(p+"embedding_length", gguf.U32(uint32(s.dim)))
	b.Set(p+"block_count", gguf.U32(uint32(s.layers)))
	b.Set(p+"attention.head_count", gguf.U32(uint32(s.heads)))
	b.Set(p+"attention.head_count_kv", gguf.U32(uint32(s.kvHeads)))
	b.Set(p+"feed_forward_length", gguf.U32(uint32(s.ff)))
	b.Set(p+"context_length", gguf.U32(uint32(s.ctxTrain)))
	b.Set(p+"attention.layer_norm_rms_epsilon", gguf.F32(s.eps))
	b.Set(p+"rope.freq_base", gguf.F32(s.ropeBase))
	if s.ropeFactor != 0 {
		b.Set(p+"rope.scaling.type", gguf.Str("linear"))
		b.Set(p+"rope.scaling.factor", gguf.F32(s.ropeFactor))
	}
	b.Set(p+"vocab_size", gguf.U32(uint32(s.vocab)))

	m := &refModel{spec: s}
	mat := func(name string, rows, cols int, sigma float64) [][]float64 {
		w := make([][]float64, rows)
		buf := make([]byte, 0, rows*cols*4)
		for r := range w {
			w[r] = make([]float64, cols)
			for c := range w[r] {
				v := float32(rng.NormFloat64() * sigma)
				w[r][c] = float64(v)
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			}
		}
		require.NoError(t, b.AddTensor(name, backend.F32, []uint64{uint64(cols), uint64(rows)}, buf))
		return w
	}
	vec := func(name string, n int, mean, sigma float64) []float64 {
		w := make([]float64, n)
		buf := make([]byte, 0, n*4)
		for i := range w {
			v := float32(mean + rng.NormFloat64()*sigma)
			w[i] = float64(v)
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		require.NoError(t, b.AddTensor(name, backend.F32, []uint64{uint64(n)}, buf))
		return w
	}
	hd := s.dim / s.heads
	qd, kvd := s.heads*hd, s.kvHeads*hd
	m.embd = mat("token_embd.weight", s.vocab, s.dim, 1)
	m.outNorm = vec("output_norm.weight", s.dim, 1, 0.1)
	if s.tied {
		m.output = m.embd
	} else {
		m.output = mat("output.weight", s.vocab, s.dim, 1/math.Sqrt(float64(s.dim)))
	}
	in := 1 / math.Sqrt(float64(s.dim))
	for i := 0; i < s.layers; i++ {
		n := func(x string) string { return fmt.Sprintf("blk.%d.%s", i, x) }
		var l refLayer
		l.attnNorm = vec(n("attn_norm.weight"), s.dim, 1, 0.1)
		if s.scrambled {
			l.wv = mat(n("attn_v.weight"), kvd, s.dim, in)
			l.wq = mat(n("attn_q.weight"), qd, s.dim, 3*in)
			l.wk = mat(n("attn_k.weight"), kvd, s.dim, 3*in)
		} else {
			l.wq = mat(n("attn_q.weight"), qd, s.dim, 3*in)
			l.wk = mat(n("attn_k.weight"), kvd, s.dim, 3*in)
			l.wv = mat(n("attn_v.weight"), kvd, s.dim, in)
		}
		if s.bias {
			l.bq = vec(n("attn_q.bias"), qd, 0, 0.5)
			l.bk = vec(n("attn_k.bias"), kvd, 0, 0.5)
			l.bv = vec(n("attn_v.bias"), kvd, 0, 0.5)
		}
		l.wo = mat(n("attn_output.weight"), s.dim, qd, 1/math.Sqrt(float64(qd)))
		l.ffnNorm = vec(n("ffn_norm.weight"), s.dim, 1, 0.1)
		l.gate = mat(n("ffn_gate.weight"), s.ff, s.dim, in)
		l.up = mat(n("ffn_up.weight"), s.ff, s.dim, in)
		l.down = mat(n("ffn_down.weight"), s.dim, s.ff, 1/math.Sqrt(float64(s.ff)))
		m.layers = append(m.layers, l)
	}
	var buf bytes.Buffer
	_, err := b.WriteTo(&buf)
	require.NoError(t, err)
	f, err := gguf.Parse(buf.Bytes())
	require.NoError(t, err)
	return f, m
}

// refSeq is the reference model's state for one sequence: the keys and
// values of every position so far, per layer.
type refSeq struct {
	k, v [][][]float64 // [layer][pos][kvDim]
}

func newRefSeq(m *refModel) *refSeq {
	return &refSeq{k: make([][][]float64, m.spec.layers), v: make([][][]float64, m.spec.layers)}
}

// step feeds one token at the next position and returns its logits. It is
// the textbook computation, in float64, one token at a time.
func (m *refModel) step(s *refSeq, id int32) []float64 {
	sp := m.spec
	hd := sp.dim / sp.heads
	pos := len(s.k[0])
	x := append([]float64(nil), m.embd[id]...)
	for il, l := range m.layers {
		h := rmsnorm(x, l.attnNorm, sp.eps)
		q, k, v := matvec(l.wq, h), matvec(l.wk, h), matvec(l.wv, h)
		if sp.bias {
			addTo(q, l.bq)
			addTo(k, l.bk)
			addTo(v, l.bv)
		}
		scale := 1.0
		if sp.ropeFactor != 0 {
			scale = 1 / float64(sp.ropeFactor)
		}
		for hh := 0; hh < sp.heads; hh++ {
			rope(q[hh*hd:(hh+1)*hd], pos, float64(sp.ropeBase), scale, sp.arch == "qwen2")
		}
		for hh := 0; hh < sp.kvHeads; hh++ {
			rope(k[hh*hd:(hh+1)*hd], pos, float64(sp.ropeBase), scale, sp.arch == "qwen2")
		}
		s.k[il] = append(s.k[il], k)
		s.v[il] = append(s.v[il], v)
		att := make([]float64, sp.heads*hd)
		group := sp.heads / sp.kvHeads
		for hh := 0; hh < sp.heads; hh++ {
			kh := hh / group
			qh := q[hh*hd : (hh+1)*hd]
			scores := make([]float64, pos+1)
			mx := math.Inf(-1)
			for p := 0; p <= pos; p++ {
				d := 0.0
				for j := 0; j < hd; j++ {
					d += qh[j] * s.k[il][p][kh*hd+j]
				}
				scores[p] = d / math.Sqrt(float64(hd))
				mx = math.Max(mx, scores[p])
			}
			sum := 0.0
			for p := range scores {
				scores[p] = math.Exp(scores[p] - mx)
				sum += scores[p]
			}
			for p := range scores {
				for j := 0; j < hd; j++ {
					att[hh*hd+j] += scores[p] / sum * s.v[il][p][kh*hd+j]
				}
			}
		}
		addTo(x, matvec(l.wo, att))
		h = rmsnorm(x, l.ffnNorm, sp.eps)
		g, u := matvec(l.gate, h), matvec(l.up, h)
		for i := range g {
			g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
		}
		addTo(x, matvec(l.down, g))
	}
	return matvec(m.output, rmsnorm(x, m.outNorm, sp.eps))
}

func rmsnorm(x, w []float64, eps float32) []float64 {
	ss := 0.0
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+float64(eps))
	out := make([]float64, len(x))
	for i := range x {
		out[i] = x[i] * r * w[i]
	}
	return out
}

func matvec(w [][]float64, x []float64) []float64 {
	out := make([]float64, len(w))
	for r, row := range w {
		for c, v := range row {
			out[r] += v * x[c]
		}
	}
	return out
}

func addTo(x, y []float64) {
	for i := range x {
		x[i] += y[i]
	}
}

// rope rotates one head: pair i has angle pos*scale*base^(-2i/d); the
// pairs are (2i, 2i+1), or (i, i+d/2) in NEOX mode.
func rope(x []float64, pos int, base, scale float64, neox bool) {
	d := len(x)
	for i := 0; i < d/2; i++ {
		theta := float64(pos) * scale * math.Pow(base, -2*float64(i)/float64(d))
		c, s := math.Cos(theta), math.Sin(theta)
		a, b := 2*i, 2*i+1
		if neox {
			a, b = i, i+d/2
		}
		x[a], x[b] = x[a]*c-x[b]*s, x[a]*s+x[b]*c
	}
}
