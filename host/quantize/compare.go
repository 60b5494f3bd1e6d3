package quantize

import (
	"errors"
	"fmt"
	"sort"

	"qinfer/host/backend"
	"qinfer/host/engine"
	"qinfer/host/model"
)

// Comparison measures a (quantized) model against a base model on one
// text, with llama-perplexity's protocol: the tokens are cut into chunks
// of N, each evaluated from an empty context with BOS first, and the
// positions N/2 .. N-2 of each chunk are scored (each predicting the next
// token from all earlier ones of its chunk). These are the numbers of
// llama-perplexity --kl-divergence.
type Comparison struct {
	Chunks int `json:"chunks"`
	Ctx    int `json:"ctx"`
	Scored int `json:"scored_tokens"`
	// Perplexity of each model on the text.
	Base  Perplexity `json:"base"`
	Model Perplexity `json:"model"`
	// KLD is the KL divergence of the model's next-token distribution
	// from the base's, per scored position, in nats.
	KLD KLDStats `json:"kld"`
	// Top1 is the fraction of scored positions where both models rank
	// the same token first.
	Top1 float64 `json:"top1_agreement"`
}

// Perplexity is exp(mean negative log-likelihood) with llama.cpp's
// uncertainty: the standard error of the mean NLL times the perplexity.
type Perplexity struct {
	Value  float64 `json:"ppl"`
	StdErr float64 `json:"ppl_stderr"`
	NLL    float64 `json:"mean_nll"`
}

// KLDStats summarises per-position KL divergences.
type KLDStats struct {
	Mean   float64 `json:"mean"`
	Median float64 `json:"median"`
	P99    float64 `json:"p99"`
	Max    float64 `json:"max"`
}

// Compare evaluates base and m, loaded on be with the same vocabulary, on
// ids (tokenized with BOS when the model wants one) in chunks of n
// tokens; bos < 0 leaves each chunk's first token as it is. Both models
// need a context and a batch of at least n. progress, when not nil, is
// called after each chunk.
func Compare(base, m model.Model, be backend.Backend, ids []int32, n int, bos int32, progress func(done, total int)) (*Comparison, error) {
	if base.Config().Vocab != m.Config().Vocab {
		return nil, fmt.Errorf("compare: vocabularies differ: base has %d tokens, model %d", base.Config().Vocab, m.Config().Vocab)
	}
	switch {
	case n < 4:
		return nil, fmt.Errorf("compare: chunk of %d tokens is too short (at least 4)", n)
	case len(ids) < 2*n:
		return nil, fmt.Errorf("compare: %d tokens; chunks of %d need at least %d", len(ids), n, 2*n)
	}
	vocab := m.Config().Vocab
	for i, id := range ids {
		if id < 0 || int(id) >= vocab {
			return nil, fmt.Errorf("compare: token %d: id %d outside the vocabulary of %d", i, id, vocab)
		}
	}
	for _, x := range []model.Model{base, m} {
		if x.Options().MaxBatch < n || x.KV().Config().Ctx < n {
			return nil, fmt.Errorf("compare: chunks of %d tokens need a batch and context of %d; a model has batch %d, context %d",
				n, n, x.Options().MaxBatch, x.KV().Config().Ctx)
		}
	}
	rb, err := newRunner(base, be)
	if err != nil {
		return nil, fmt.Errorf("compare: base: %w", err)
	}
	defer rb.close()
	rm, err := newRunner(m, be)
	if err != nil {
		return nil, fmt.Errorf("compare: model: %w", err)
	}
	defer rm.close()

	first := n / 2
	outputs := make([]int32, 0, n-1-first)
	for p := first; p < n-1; p++ {
		outputs = append(outputs, int32(p))
	}
	chunks := len(ids) / n
	var kld []float64
	var same int
	var accB, accM engine.NLLAcc
	chunk := make([]int32, n)
	for c := 0; c < chunks; c++ {
		copy(chunk, ids[c*n:(c+1)*n])
		if bos >= 0 {
			chunk[0] = bos
		}
		lb, err := rb.run(chunk, outputs)
		if err != nil {
			return nil, fmt.Errorf("compare: base, chunk %d: %w", c, err)
		}
		baseLogits := append([]float32(nil), lb...)
		lm, err := rm.run(chunk, outputs)
		if err != nil {
			return nil, fmt.Errorf("compare: model, chunk %d: %w", c, err)
		}
		targets := make([]int32, len(outputs))
		for i, p := range outputs {
			targets[i] = chunk[p+1]
		}
		for _, st := range compareRows(baseLogits, lm, targets, vocab) {
			kld = append(kld, st.kld)
			if st.sameTop {
				same++
			}
			accB.Add(st.nllBase)
			accM.Add(st.nll)
		}
		if progress != nil {
			progress(c+1, chunks)
		}
	}
	if len(kld) == 0 {
		return nil, errors.New("compare: no positions scored")
	}
	return &Comparison{
		Chunks: chunks, Ctx: n, Scored: len(kld),
		Base: perplexity(&accB), Model: perplexity(&accM),
		KLD:  summarize(kld),
		Top1: float64(same) / float64(len(kld)),
	}, nil
}

// perplexity converts the engine's estimate to the comparison's fields.
func perplexity(a *engine.NLLAcc) Perplexity {
	p := a.Result(0)
	return Perplexity{Value: p.Value, StdErr: p.StdErr, NLL: p.NLL}
}

// summarize returns the mean, median, 99th percentile and maximum, the
// percentiles interpolated linearly between ranks.
func summarize(x []float64) KLDStats {
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	return KLDStats{Mean: sum / float64(len(s)), Median: quantile(s, 0.5), P99: quantile(s, 0.99), Max: s[len(s)-1]}
}

// quantile of sorted s at fraction q, interpolating between ranks.
func quantile(s []float64, q float64) float64 {
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}
