package engine

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func randomLogits(rng *rand.Rand, n int, scale float64) []float32 {
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(rng.NormFloat64() * scale)
	}
	return l
}

// softmaxOf returns softmax(logits[ids]/temp) keyed by id.
func softmaxOf(logits []float32, ids []int, temp float64) map[int32]float64 {
	mx := math.Inf(-1)
	for _, i := range ids {
		mx = math.Max(mx, float64(logits[i])/temp)
	}
	sum := 0.0
	p := map[int32]float64{}
	for _, i := range ids {
		e := math.Exp(float64(logits[i])/temp - mx)
		p[int32(i)] = e
		sum += e
	}
	for k := range p {
		p[k] /= sum
	}
	return p
}

func asMap(d []TokenProb) map[int32]float64 {
	m := map[int32]float64{}
	for _, tp := range d {
		m[tp.ID] = tp.P
	}
	return m
}

func requireSameDist(t *testing.T, want map[int32]float64, got []TokenProb) {
	t.Helper()
	g := asMap(got)
	require.Len(t, g, len(want), "candidate sets differ: want %v got %v", want, g)
	for id, p := range want {
		gp, ok := g[id]
		require.True(t, ok, "token %d missing", id)
		require.InDelta(t, p, gp, 1e-9, "token %d", id)
	}
	for i := 1; i < len(got); i++ {
		require.GreaterOrEqual(t, got[i-1].P, got[i].P, "not sorted most likely first")
	}
}

func TestSamplerClosedForm(t *testing.T) {
	logits := []float32{1, 2, 3, 4, 0.5}
	e := math.Exp
	t.Run("temperature", func(t *testing.T) {
		d := NewSampler(SamplerConfig{Temp: 2}).Distribution(logits)
		z := e(0.5) + e(1) + e(1.5) + e(2) + e(0.25)
		requireSameDist(t, map[int32]float64{0: e(0.5) / z, 1: e(1) / z, 2: e(1.5) / z, 3: e(2) / z, 4: e(0.25) / z}, d)
	})
	t.Run("top-k", func(t *testing.T) {
		d := NewSampler(SamplerConfig{Temp: 1, TopK: 2}).Distribution(logits)
		z := e(3) + e(4)
		requireSameDist(t, map[int32]float64{3: e(4) / z, 2: e(3) / z}, d)
	})
	t.Run("top-p", func(t *testing.T) {
		// p(4)=0.6323 alone is below 0.7; with token 2 the mass is 0.865.
		z := e(1) + e(2) + e(3) + e(4) + e(0.5)
		require.Less(t, e(4)/z, 0.7)
		require.Greater(t, (e(4)+e(3))/z, 0.7)
		d := NewSampler(SamplerConfig{Temp: 0.5, TopP: 0.7}).Distribution(logits)
		zz := e(8) + e(6)
		requireSameDist(t, map[int32]float64{3: e(8) / zz, 2: e(6) / zz}, d)
	})
	t.Run("min-p", func(t *testing.T) {
		// p_i/p_max = e^(l_i-4): 1, 0.368, 0.135, 0.0498, 0.030.
		d := NewSampler(SamplerConfig{Temp: 1, MinP: 0.1}).Distribution(logits)
		z := e(2) + e(3) + e(4)
		requireSameDist(t, map[int32]float64{1: e(2) / z, 2: e(3) / z, 3: e(4) / z}, d)
	})
	t.Run("greedy", func(t *testing.T) {
		d := NewSampler(SamplerConfig{}).Distribution(logits)
		assert.Equal(t, []TokenProb{{ID: 3, P: 1}}, d)
		assert.Equal(t, int32(1), NewSampler(SamplerConfig{}).Sample([]float32{0, 5, 5, 1}), "ties go to the first index")
	})
	t.Run("repetition penalty", func(t *testing.T) {
		// llama.cpp: positive logits are divided, negative multiplied.
		s := NewSampler(SamplerConfig{Temp: 1, RepeatPenalty: 2})
		s.Accept(3, 3, 0)
		l := []float32{-1, 2, 3, 4, 0.5}
		z := e(-2) + e(2) + e(3) + e(2) + e(0.5)
		requireSameDist(t, map[int32]float64{0: e(-2) / z, 1: e(2) / z, 2: e(3) / z, 3: e(2) / z, 4: e(0.5) / z}, s.Distribution(l))
		g := NewSampler(SamplerConfig{RepeatPenalty: 2})
		g.Accept(3)
		assert.Equal(t, int32(2), g.Sample(l), "greedy applies the penalty too")
		assert.Equal(t, []float32{-1, 2, 3, 4, 0.5}, l, "caller's logits untouched")
	})
	t.Run("penalty window", func(t *testing.T) {
		s := NewSampler(SamplerConfig{Temp: 1, RepeatPenalty: 4, RepeatLastN: 2})
		s.Accept(3, 1, 0) // token 3 is outside the last 2
		l := []float32{1, 2, 3, 4, 0.5}
		z := e(0.25) + e(0.5) + e(3) + e(4) + e(0.5)
		requireSameDist(t, map[int32]float64{0: e(0.25) / z, 1: e(0.5) / z, 2: e(3) / z, 3: e(4) / z, 4: e(0.5) / z}, s.Distribution(l))
	})
}

// refDistribution is a plain restatement of the sampler chain: full sort,
// then each filter on the survivors, then softmax with temperature.
func refDistribution(logits []float32, cfg SamplerConfig, history []int32) map[int32]float64 {
	l := append([]float32(nil), logits...)
	if cfg.RepeatPenalty != 0 && cfg.RepeatPenalty != 1 {
		n := cfg.RepeatLastN
		if n == 0 {
			n = 64
		}
		h := history
		if n > 0 && len(h) > n {
			h = h[len(h)-n:]
		}
		seen := map[int32]bool{}
		for _, id := range h {
			if !seen[id] {
				seen[id] = true
				if l[id] <= 0 {
					l[id] *= cfg.RepeatPenalty
				} else {
					l[id] /= cfg.RepeatPenalty
				}
			}
		}
	}
	ids := make([]int, len(l))
	for i := range ids {
		ids[i] = i
	}
	sort.SliceStable(ids, func(a, b int) bool { return l[ids[a]] > l[ids[b]] })
	if cfg.TopK > 0 && cfg.TopK < len(ids) {
		ids = ids[:cfg.TopK]
	}
	if cfg.TopP > 0 && cfg.TopP < 1 {
		p := softmaxOf(l, ids, 1)
		cum := 0.0
		for i, id := range ids {
			cum += p[int32(id)]
			if cum >= float64(cfg.TopP) {
				ids = ids[:i+1]
				break
			}
		}
	}
	if cfg.MinP > 0 {
		p := softmaxOf(l, ids, 1)
		pmax := p[int32(ids[0])]
		var keep []int
		for _, id := range ids {
			if p[int32(id)] >= float64(cfg.MinP)*pmax*(1-1e-12) {
				keep = append(keep, id)
			}
		}
		ids = keep
	}
	return softmaxOf(l, ids, float64(cfg.Temp))
}

func TestSamplerMatchesReferenceChain(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(3000)
		logits := randomLogits(rng, n, 1+4*rng.Float64())
		if trial%3 == 0 {
			// Heavy ties stress the top-k selection's ordering.
			for i := range logits {
				logits[i] = float32(math.Round(float64(logits[i])))
			}
		}
		cfg := SamplerConfig{Temp: float32(0.2 + 2*rng.Float64()), Seed: uint64(trial)}
		if rng.IntN(2) == 0 {
			cfg.TopK = 1 + rng.IntN(60)
		}
		if rng.IntN(2) == 0 {
			cfg.TopP = float32(0.05 + 0.9*rng.Float64())
		}
		if rng.IntN(2) == 0 {
			cfg.MinP = float32(0.3 * rng.Float64())
		}
		var hist []int32
		if rng.IntN(2) == 0 {
			cfg.RepeatPenalty = float32(0.5 + 1.5*rng.Float64())
			cfg.RepeatLastN = []int{0, -1, 5}[rng.IntN(3)]
			for i := 0; i < 100; i++ {
				hist = append(hist, int32(rng.IntN(n)))
			}
		}
		s := NewSampler(cfg)
		s.Accept(hist...)
		want := refDistribution(logits, cfg, hist)
		got := s.Distribution(logits)
		require.Equal(t, len(want), len(got), "trial %d cfg %+v", trial, cfg)
		g := asMap(got)
		for id, p := range want {
			require.InDelta(t, p, g[id], 1e-9, "trial %d token %d", trial, id)
		}
	}
}

func TestSamplerFrequencies(t *testing.T) {
	// top-k 4 at temperature 0.8 over 6 tokens: draws must follow the
	// closed-form probabilities (each count within 5 sigma).
	logits := []float32{0.1, 1.3, -0.4, 0.9, 2.0, 0.7}
	cfg := SamplerConfig{Temp: 0.8, TopK: 4, Seed: 42}
	want := softmaxOf(logits, []int{4, 1, 3, 5}, 0.8)
	s := NewSampler(cfg)
	const draws = 200000
	counts := map[int32]int{}
	for i := 0; i < draws; i++ {
		counts[s.Sample(logits)]++
	}
	assert.Zero(t, counts[0]+counts[2], "tokens outside the top 4 were drawn")
	chi2 := 0.0
	for id, p := range want {
		exp := p * draws
		sigma := math.Sqrt(draws * p * (1 - p))
		assert.InDelta(t, exp, float64(counts[id]), 5*sigma, "token %d", id)
		d := float64(counts[id]) - exp
		chi2 += d * d / exp
	}
	// 3 degrees of freedom: P(chi2 > 21.1) = 1e-4.
	assert.Less(t, chi2, 21.1)
	t.Logf("counts %v, chi2 %.2f", counts, chi2)
}

func TestSamplerSeeds(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	logits := randomLogits(rng, 500, 2)
	run := func(seed uint64) []int32 {
		s := NewSampler(SamplerConfig{Temp: 1.5, TopP: 0.95, Seed: seed})
		out := make([]int32, 100)
		for i := range out {
			out[i] = s.Sample(logits)
		}
		return out
	}
	assert.Equal(t, run(7), run(7), "same seed, same tokens")
	assert.NotEqual(t, run(7), run(8), "different seeds, different tokens")
}

func TestSamplerValidate(t *testing.T) {
	assert.NoError(t, SamplerConfig{Temp: 0.7, TopK: 40, TopP: 0.9, MinP: 0.05, RepeatPenalty: 1.1, RepeatLastN: -1}.Validate())
	for _, c := range []SamplerConfig{
		{Temp: float32(math.NaN())},
		{TopP: float32(math.Inf(1))},
		{MinP: 1.5},
		{RepeatPenalty: -1},
		{RepeatLastN: -2},
	} {
		assert.Error(t, c.Validate(), "%+v", c)
	}
}
