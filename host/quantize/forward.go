package quantize

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"qinfer/host/backend"
	"qinfer/host/model"
)

// runner evaluates chunks of tokens, each as one sequence from an empty
// context (llama-perplexity's protocol), on a loaded model.
type runner struct {
	be     backend.Backend
	m      model.Model
	batch  backend.Batch
	logits backend.Tensor
	in     backend.BatchInput
	host   []float32
	vocab  int
	ctx    int
}

func newRunner(m model.Model, be backend.Backend) (*runner, error) {
	r := &runner{be: be, m: m, vocab: m.Config().Vocab, ctx: m.Options().MaxBatch}
	var err error
	if r.batch, err = be.NewBatch(r.ctx); err != nil {
		return nil, fmt.Errorf("batch of %d tokens: %w", r.ctx, err)
	}
	if r.logits, err = m.NewLogits(); err != nil {
		_ = be.Free(r.batch)
		return nil, err
	}
	return r, nil
}

func (r *runner) close() error {
	return errors.Join(r.be.Free(r.logits), r.be.Free(r.batch))
}

// run evaluates ids (at most the model's batch) as one sequence from
// position 0 and returns the logits of the positions in outputs, row i
// for outputs[i], valid until the next run.
func (r *runner) run(ids []int32, outputs []int32) ([]float32, error) {
	n := len(ids)
	if n == 0 || n > r.ctx {
		return nil, fmt.Errorf("chunk of %d tokens, want 1..%d", n, r.ctx)
	}
	in := &r.in
	in.IDs = append(in.IDs[:0], ids...)
	in.Pos, in.Seq = in.Pos[:0], in.Seq[:0]
	for p := range ids {
		in.Pos = append(in.Pos, int32(p))
		in.Seq = append(in.Seq, 0)
	}
	in.Outputs = append(in.Outputs[:0], outputs...)
	if err := r.be.SetBatch(r.batch, in); err != nil {
		return nil, fmt.Errorf("set batch: %w", err)
	}
	if err := r.m.Forward(r.batch, r.logits); err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	nOut := len(outputs)
	if nOut == 0 {
		return nil, r.be.Synchronize()
	}
	src := r.logits
	if nOut < r.logits.Rows() {
		v, err := r.be.View(r.logits, 0, nOut, 0, r.vocab)
		if err != nil {
			return nil, fmt.Errorf("logits view: %w", err)
		}
		src = v
	}
	need := nOut * r.vocab
	if cap(r.host) < need {
		r.host = make([]float32, need)
	}
	r.host = r.host[:need]
	if err := r.be.Read(src, r.host); err != nil {
		return nil, fmt.Errorf("read logits: %w", err)
	}
	return r.host, nil
}

// logSumExp returns log(sum(exp(x))), accumulated in float64.
func logSumExp(x []float32) float64 {
	m := x[0]
	for _, v := range x[1:] {
		m = max(m, v)
	}
	var sum float64
	for _, v := range x {
		sum += math.Exp(float64(v - m))
	}
	return float64(m) + math.Log(sum)
}

// refRow is one position of the reference (unquantized) model: its
// next-token probabilities and what the KL divergence needs of them.
type refRow struct {
	p     []float64 // softmax of the logits
	plogp float64   // sum p*log p
	psum  float64   // sum p (1 up to rounding)
	top   int       // most likely token
	lse   float64   // log-sum-exp of the logits
}

func newRefRow(logits []float32, p []float64) refRow {
	m := logits[0]
	for _, l := range logits[1:] {
		m = max(m, l)
	}
	var sum float64
	for i, l := range logits {
		p[i] = math.Exp(float64(l - m))
		sum += p[i]
	}
	r := refRow{p: p, top: argmax(logits), lse: float64(m) + math.Log(sum)}
	for i, l := range logits {
		p[i] /= sum
		r.plogp += p[i] * (float64(l) - r.lse)
		r.psum += p[i]
	}
	return r
}

// kld is the KL divergence of the candidate's distribution (from its
// logits, whose log-sum-exp is lse) from the reference's:
//
//	sum p (log p - log q) = sum p log p - sum p*l + lse * sum p
//
// so it costs no exp beyond the candidate's log-sum-exp.
func (r *refRow) kld(cand []float32, lse float64) float64 {
	var pl float64
	for i, l := range cand {
		pl += r.p[i] * float64(l)
	}
	return max(r.plogp-pl+lse*r.psum, 0)
}

// posStats is what one scored position contributes: the KL divergence of
// the candidate's distribution from the base's, whether their most likely
// tokens agree, and each model's negative log-likelihood of the actual
// next token.
type posStats struct {
	kld          float64
	sameTop      bool
	nllBase, nll float64
}

// compareRow computes posStats for one position from base and candidate
// logits. p is scratch for len(base) probabilities.
func compareRow(base, cand []float32, target int32, p []float64) posStats {
	ref := newRefRow(base, p)
	lse := logSumExp(cand)
	st := posStats{kld: ref.kld(cand, lse), sameTop: ref.top == argmax(cand)}
	if target >= 0 {
		st.nllBase = ref.lse - float64(base[target])
		st.nll = lse - float64(cand[target])
	}
	return st
}

// argmax returns the index of the largest value, the first on ties.
func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// parallel runs fn(i) for i in [0, n) on all CPUs, each worker with its
// own scratch of size scratch.
func parallel(n, scratch int, fn func(i int, buf []float64)) {
	workers := max(1, min(runtime.GOMAXPROCS(0), n))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]float64, scratch)
			for i := w; i < n; i += workers {
				fn(i, buf)
			}
		}(w)
	}
	wg.Wait()
}

// compareRows runs compareRow over rows of vocab logits on all CPUs.
// targets may be nil (no log-likelihoods).
func compareRows(base, cand []float32, targets []int32, vocab int) []posStats {
	out := make([]posStats, len(base)/vocab)
	parallel(len(out), vocab, func(r int, p []float64) {
		t := int32(-1)
		if targets != nil {
			t = targets[r]
		}
		out[r] = compareRow(base[r*vocab:(r+1)*vocab], cand[r*vocab:(r+1)*vocab], t, p)
	})
	return out
}
