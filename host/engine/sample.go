package engine

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// SamplerConfig chooses how the next token is picked from the logits.
// The stages run in llama.cpp's default order: repetition penalty, top-k,
// top-p, min-p, temperature, then a seeded draw. Temp <= 0 is greedy
// (the highest logit after the penalty).
type SamplerConfig struct {
	Temp float32
	// TopK keeps the K highest logits; <= 0 keeps all.
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probability
	// sums to at least TopP; <= 0 or >= 1 disables it.
	TopP float32
	// MinP drops tokens less likely than MinP times the most likely one;
	// <= 0 disables it.
	MinP float32
	// RepeatPenalty divides positive logits and multiplies negative ones
	// of every token seen in the last RepeatLastN tokens (prompt
	// included); 0 or 1 disables it.
	RepeatPenalty float32
	// RepeatLastN is the penalty window: 0 means 64 (llama.cpp's
	// default), -1 the whole sequence.
	RepeatLastN int
	// Seed makes draws reproducible: the same seed, logits and history
	// give the same tokens, whatever else is decoded in the same batch.
	Seed uint64
}

const defaultRepeatLastN = 64

// Validate reports settings that cannot be meant.
func (c SamplerConfig) Validate() error {
	bad := func(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }
	switch {
	case bad(c.Temp) || bad(c.TopP) || bad(c.MinP) || bad(c.RepeatPenalty):
		return fmt.Errorf("sampler: temperature, top-p, min-p and repeat penalty must be finite")
	case c.MinP > 1:
		return fmt.Errorf("sampler: min-p %v above 1 would drop every token", c.MinP)
	case c.RepeatPenalty < 0:
		return fmt.Errorf("sampler: repeat penalty %v is negative", c.RepeatPenalty)
	case c.RepeatLastN < -1:
		return fmt.Errorf("sampler: repeat window %d (use -1 for the whole sequence)", c.RepeatLastN)
	}
	return nil
}

// TokenProb is a candidate token with its final probability.
type TokenProb struct {
	ID int32
	P  float64
}

type candidate struct {
	id    int32
	logit float32
}

// Sampler picks tokens for one sequence. It keeps the token history the
// repetition penalty needs and its own random stream. Not safe for
// concurrent use.
type Sampler struct {
	cfg     SamplerConfig
	rng     *rand.Rand
	history []int32
	// Scratch reused across calls.
	cands   []candidate
	penal   map[int32]struct{}
	scratch []float32
	probs   []TokenProb
}

// NewSampler returns a sampler; cfg should have passed Validate.
func NewSampler(cfg SamplerConfig) *Sampler {
	return &Sampler{
		cfg: cfg,
		// Two PCG words from one seed: the constant only decorrelates
		// them, so seed s and s+1 give unrelated streams.
		rng:   rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		penal: map[int32]struct{}{},
	}
}

// Accept records a token (prompt or generated) for the repetition penalty.
func (s *Sampler) Accept(ids ...int32) {
	if !s.penalize() {
		return
	}
	s.history = append(s.history, ids...)
	// Bound the history: once it outgrows the window by 1024 tokens, drop
	// all but the window in one move.
	if n := s.window(); n > 0 && len(s.history) > n+1024 {
		s.history = append(s.history[:0], s.history[len(s.history)-n:]...)
	}
}

func (s *Sampler) penalize() bool {
	return s.cfg.RepeatPenalty != 0 && s.cfg.RepeatPenalty != 1
}

// window is the penalty window length, or -1 for unbounded.
func (s *Sampler) window() int {
	switch n := s.cfg.RepeatLastN; {
	case n == 0:
		return defaultRepeatLastN
	case n < 0:
		return -1
	default:
		return n
	}
}

// applyPenalty changes logits of recently seen tokens in place, as
// llama.cpp does: divide positive logits, multiply the others, once per
// distinct token.
func (s *Sampler) applyPenalty(logits []float32) {
	if !s.penalize() || len(s.history) == 0 {
		return
	}
	recent := s.history
	if n := s.window(); n > 0 && len(recent) > n {
		recent = recent[len(recent)-n:]
	}
	clear(s.penal)
	p := s.cfg.RepeatPenalty
	for _, id := range recent {
		if id < 0 || int(id) >= len(logits) {
			continue
		}
		if _, done := s.penal[id]; done {
			continue
		}
		s.penal[id] = struct{}{}
		if logits[id] <= 0 {
			logits[id] *= p
		} else {
			logits[id] /= p
		}
	}
}

// Sample picks the next token from logits (not modified) and records it
// in the history.
func (s *Sampler) Sample(logits []float32) int32 {
	var id int32
	if s.cfg.Temp <= 0 {
		id = s.greedy(logits)
	} else {
		probs := s.distribution(logits)
		id = s.draw(probs)
	}
	s.Accept(id)
	return id
}

// greedy returns the first index of the highest (penalized) logit, as
// llama.cpp's greedy sampler does.
func (s *Sampler) greedy(logits []float32) int32 {
	if s.penalize() && len(s.history) > 0 {
		s.scratch = append(s.scratch[:0], logits...)
		s.applyPenalty(s.scratch)
		logits = s.scratch
	}
	best := 0
	for i := 1; i < len(logits); i++ {
		if logits[i] > logits[best] {
			best = i
		}
	}
	return int32(best)
}

// Distribution returns the candidates left after penalty, top-k, top-p,
// min-p and temperature, with their probabilities, most likely first. For
// Temp <= 0 it is the greedy token with probability 1. It does not change
// the sampler's state.
func (s *Sampler) Distribution(logits []float32) []TokenProb {
	if s.cfg.Temp <= 0 {
		return []TokenProb{{ID: s.greedy(logits), P: 1}}
	}
	return slices.Clone(s.distribution(logits))
}

// distribution is Distribution in scratch memory, valid until the next
// call.
func (s *Sampler) distribution(logits []float32) []TokenProb {
	s.scratch = append(s.scratch[:0], logits...)
	s.applyPenalty(s.scratch)
	c := s.cands[:0]
	for i, l := range s.scratch {
		if math.IsNaN(float64(l)) {
			continue
		}
		c = append(c, candidate{int32(i), l})
	}
	if len(c) == 0 {
		// Nothing but NaNs: fall back to token 0 rather than fail a whole
		// batch over one bad row.
		c = append(c, candidate{0, 0})
	}
	sorted := false
	if k := s.cfg.TopK; k > 0 && k < len(c) {
		c = topK(c, k)
		sorted = true
	}
	if p := s.cfg.TopP; p > 0 && p < 1 {
		if !sorted {
			slices.SortFunc(c, byLogitDesc)
			sorted = true
		}
		c = c[:topPCut(c, p)]
	}
	if mp := s.cfg.MinP; mp > 0 {
		c = minP(c, mp)
	}
	if !sorted {
		slices.SortFunc(c, byLogitDesc)
	}
	s.cands = c[:0]

	// Temperature scales logits; softmax in float64 so that long tails do
	// not lose mass.
	t := float64(s.cfg.Temp)
	maxL := float64(c[0].logit) / t
	probs := slices.Grow(s.probs[:0], len(c))[:len(c)]
	s.probs = probs
	sum := 0.0
	for i, cd := range c {
		e := math.Exp(float64(cd.logit)/t - maxL)
		probs[i] = TokenProb{ID: cd.id, P: e}
		sum += e
	}
	for i := range probs {
		probs[i].P /= sum
	}
	return probs
}

func byLogitDesc(a, b candidate) int {
	if a.logit != b.logit {
		return cmp.Compare(b.logit, a.logit)
	}
	return cmp.Compare(a.id, b.id)
}

// topK keeps the k highest, sorted, selecting them with a size-k heap
// (the worst kept candidate on top) so that a large vocabulary is not
// sorted whole.
func topK(c []candidate, k int) []candidate {
	h := c[:k]
	// worse(a, b): a ranks below b.
	worse := func(a, b candidate) bool { return byLogitDesc(a, b) > 0 }
	down := func(i int) {
		for {
			w := i
			if l := 2*i + 1; l < k && worse(h[l], h[w]) {
				w = l
			}
			if r := 2*i + 2; r < k && worse(h[r], h[w]) {
				w = r
			}
			if w == i {
				return
			}
			h[i], h[w] = h[w], h[i]
			i = w
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for _, cd := range c[k:] {
		if worse(h[0], cd) {
			h[0] = cd
			down(0)
		}
	}
	slices.SortFunc(h, byLogitDesc)
	return h
}

// topPCut returns how many of the sorted candidates to keep: the first
// prefix whose softmax mass reaches p (at least one).
func topPCut(c []candidate, p float32) int {
	maxL := float64(c[0].logit)
	total := 0.0
	for _, cd := range c {
		total += math.Exp(float64(cd.logit) - maxL)
	}
	cum := 0.0
	for i, cd := range c {
		cum += math.Exp(float64(cd.logit)-maxL) / total
		if cum >= float64(p) {
			return i + 1
		}
	}
	return len(c)
}

// minP keeps candidates whose probability is at least p times the
// largest, i.e. logit >= max + ln p (llama.cpp compares logits).
func minP(c []candidate, p float32) []candidate {
	maxL := c[0].logit
	for _, cd := range c {
		maxL = max(maxL, cd.logit)
	}
	limit := float64(maxL) + math.Log(float64(p))
	out := c[:0]
	for _, cd := range c {
		if float64(cd.logit) >= limit {
			out = append(out, cd)
		}
	}
	return out
}

// draw picks from the distribution with the sampler's random stream.
func (s *Sampler) draw(probs []TokenProb) int32 {
	u := s.rng.Float64()
	cum := 0.0
	for _, p := range probs {
		cum += p.P
		if u < cum {
			return p.ID
		}
	}
	return probs[len(probs)-1].ID
}
