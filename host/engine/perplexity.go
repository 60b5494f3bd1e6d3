package engine

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// PPL is a perplexity measurement.
type PPL struct {
	Value  float64 // exp(mean negative log-likelihood)
	StdErr float64 // llama.cpp's "+/-": the standard error of the mean NLL, times Value
	NLL    float64 // mean negative log-likelihood (nats)
	Chunks int
	Tokens int // tokens scored
}

// Perplexity follows llama.cpp's llama-perplexity: ids (already tokenized,
// BOS first when the model wants one) are cut into len(ids)/n chunks of n
// tokens; each chunk's first token becomes BOS when the tokenizer adds
// one, the chunk is evaluated from an empty context, and the tokens at
// positions n/2+1 .. n-1 are scored, each from all earlier positions of
// its chunk. Up to Seqs chunks are evaluated side by side.
func (e *Engine) Perplexity(ids []int32, n int) (PPL, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case n < 4:
		return PPL{}, fmt.Errorf("perplexity: context %d is too short (at least 4)", n)
	case n > e.ctx:
		return PPL{}, fmt.Errorf("perplexity: context %d exceeds the model's context of %d per sequence", n, e.ctx)
	case len(ids) < 2*n:
		return PPL{}, fmt.Errorf("perplexity: %d tokens; a context of %d needs at least %d", len(ids), n, 2*n)
	}
	if err := e.checkIDs(ids); err != nil {
		return PPL{}, fmt.Errorf("perplexity: %w", err)
	}
	if err := e.init(); err != nil {
		return PPL{}, err
	}
	bos := int32(-1)
	if e.tok != nil && e.tok.AddBOS() {
		bos = e.tok.BOS()
	}
	first := n / 2
	nChunks := len(ids) / n
	var acc NLLAcc
	chunk := make([]int32, n)
	// rowTarget[r] is the token that output row r of the step predicts.
	rowTarget := make([]int32, 0, e.maxBatch)

	for c0 := 0; c0 < nChunks; c0 += e.seqs {
		group := min(e.seqs, nChunks-c0)
		// Feed the group's tokens chunk after chunk, MaxBatch at a time;
		// each chunk has its own slot, so batches may span chunks.
		e.resetBatch()
		rowTarget = rowTarget[:0]
		for g := 0; g < group; g++ {
			copy(chunk, ids[(c0+g)*n:(c0+g+1)*n])
			if bos >= 0 {
				chunk[0] = bos
			}
			for p := 0; p < n; p++ {
				scored := p >= first && p < n-1
				e.add(chunk[p], p, int32(g), scored)
				if scored {
					rowTarget = append(rowTarget, chunk[p+1])
				}
				if len(e.in.IDs) == e.maxBatch {
					if err := e.scoreStep(rowTarget, &acc); err != nil {
						return PPL{}, fmt.Errorf("perplexity: chunk %d: %w", c0+g, err)
					}
					e.resetBatch()
					rowTarget = rowTarget[:0]
				}
			}
		}
		if len(e.in.IDs) > 0 {
			if err := e.scoreStep(rowTarget, &acc); err != nil {
				return PPL{}, fmt.Errorf("perplexity: chunk %d: %w", c0+group-1, err)
			}
		}
	}
	return acc.Result(nChunks), nil
}

// scoreStep evaluates the host batch and adds the NLL of each output
// row's target token.
func (e *Engine) scoreStep(targets []int32, acc *NLLAcc) error {
	logits, err := e.run()
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return nil
	}
	nll := make([]float64, len(targets))
	// Log-softmax over a large vocabulary costs as much as a small
	// model's forward pass: spread the rows over the CPUs.
	workers := min(runtime.GOMAXPROCS(0), len(targets))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := w; r < len(targets); r += workers {
				nll[r] = -logSoftmax(logits[r*e.vocab:(r+1)*e.vocab], targets[r])
			}
		}(w)
	}
	wg.Wait()
	for _, v := range nll {
		acc.Add(v)
	}
	return nil
}

// logSoftmax returns log p(tok) under softmax(logits): the same
// max-subtracted sum as llama.cpp's, accumulated in float64.
func logSoftmax(logits []float32, tok int32) float64 {
	maxL := logits[0]
	for _, l := range logits[1:] {
		// A plain comparison: the max builtin's NaN and signed-zero
		// handling costs several times more in this loop.
		if l > maxL {
			maxL = l
		}
	}
	return float64(logits[tok]-maxL) - math.Log(sumExp(logits, maxL))
}

// sumExp returns the sum of exp(l - maxL) over logits (all <= maxL), each
// term to about 1e-9 relative error: plenty for a sum of float32 terms.
// Perplexity computes one exponential per vocabulary entry per scored
// token, which made math.Exp the largest cost of a run on a small model;
// this inlined polynomial is several times faster.
func sumExp(logits []float32, maxL float32) float64 {
	const (
		log2e = 1.4426950408889634
		// ln2 in two parts keeps the reduced argument exact to float64
		// precision.
		ln2Hi = 6.93147180369123816490e-01
		ln2Lo = 1.90821492927058770002e-10
		// Adding and subtracting 1.5*2^52 rounds to the nearest integer
		// (Go does not reassociate float arithmetic).
		round = 0x1.8p52
	)
	sum := 0.0
	for _, l := range logits {
		x := float64(l - maxL)
		if x < -708 {
			continue // below 1e-307: nothing next to the maximum's 1
		}
		// exp(x) = 2^n * exp(r), |r| <= ln2/2; Taylor series to r^8/8!
		// leaves a remainder below 2e-10 relative.
		n := (x*log2e + round) - round
		r := x - n*ln2Hi - n*ln2Lo
		p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040+r*(1.0/40320))))))))
		sum += p * math.Float64frombits(uint64(int64(n)+1023)<<52)
	}
	return sum
}

// NLLAcc accumulates negative log-likelihoods and their squares, for
// llama-perplexity's estimate (Result). The zero value is empty.
type NLLAcc struct {
	n         int
	sum, sum2 float64
}

// Add adds one position's negative log-likelihood.
func (a *NLLAcc) Add(v float64) {
	a.n++
	a.sum += v
	a.sum2 += v * v
}

// Result computes llama.cpp's final estimate: PPL = exp(mean) and the
// uncertainty sqrt(var/(n-1)) * PPL, over chunks chunks.
func (a *NLLAcc) Result(chunks int) PPL {
	if a.n == 0 {
		return PPL{Chunks: chunks}
	}
	mean := a.sum / float64(a.n)
	ppl := math.Exp(mean)
	p := PPL{Value: ppl, NLL: mean, Chunks: chunks, Tokens: a.n}
	if v := a.sum2/float64(a.n) - mean*mean; v > 0 && a.n > 1 {
		p.StdErr = math.Sqrt(v/float64(a.n-1)) * ppl
	}
	return p
}
