// Package engine runs models: it picks a backend (select.go), and
// generates text for many requests at once over one model's KV cache,
// with sampling, stop conditions and perplexity measurement.
package engine

import (
	"fmt"
	"sync"

	"qinfer/host/backend"
	"qinfer/host/model"
	"qinfer/host/tokenizer"
)

// Engine runs a loaded model: generation for many requests at once,
// prompt scoring and perplexity. It owns the model's KV cache while a call
// runs, so calls on one Engine are serialized.
type Engine struct {
	m   model.Model
	tok *tokenizer.Tokenizer
	be  backend.Backend

	mu       sync.Mutex
	ready    bool
	batch    backend.Batch
	logits   backend.Tensor
	in       backend.BatchInput
	host     []float32 // host copy of the output rows' logits
	vocab    int
	ctx      int // positions per sequence slot
	seqs     int
	maxBatch int
	graphs   *Graphs
}

// New returns an engine for m. tok may be nil when callers pass token ids
// and need no text; be must be the backend m was loaded on.
func New(m model.Model, tok *tokenizer.Tokenizer, be backend.Backend) *Engine {
	kv := m.KV().Config()
	return &Engine{
		m: m, tok: tok, be: be,
		vocab:    m.Config().Vocab,
		ctx:      kv.Ctx,
		seqs:     kv.Seqs,
		maxBatch: m.Options().MaxBatch,
		graphs:   NewGraphs(m, be),
	}
}

// SetGraphs turns the replay of small steps as backend graphs (CUDA
// graphs; Graphs) on or off; it is on by default where the backend can
// capture.
func (e *Engine) SetGraphs(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.graphs.SetEnabled(on)
}

// GraphStats returns the number of step graphs captured and of steps
// replayed from them.
func (e *Engine) GraphStats() (captured, launched int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.graphs.Stats()
}

// init allocates the batch and logits buffers on first use. Called with
// mu held.
func (e *Engine) init() error {
	if e.ready {
		return nil
	}
	b, err := e.be.NewBatch(e.maxBatch)
	if err != nil {
		return fmt.Errorf("engine: batch of %d tokens: %w", e.maxBatch, err)
	}
	l, err := e.m.NewLogits()
	if err != nil {
		_ = e.be.Free(b)
		return fmt.Errorf("engine: %w", err)
	}
	e.batch, e.logits, e.ready = b, l, true
	return nil
}

// Close frees the engine's buffers; the model stays loaded.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.ready {
		return nil
	}
	e.ready = false
	err0 := e.graphs.Close()
	err1 := e.be.Free(e.logits)
	err2 := e.be.Free(e.batch)
	if err0 != nil {
		return fmt.Errorf("engine: free graphs: %w", err0)
	}
	if err1 != nil {
		return fmt.Errorf("engine: free logits: %w", err1)
	}
	if err2 != nil {
		return fmt.Errorf("engine: free batch: %w", err2)
	}
	return nil
}

// resetBatch empties the host batch.
func (e *Engine) resetBatch() {
	e.in.IDs = e.in.IDs[:0]
	e.in.Pos = e.in.Pos[:0]
	e.in.Seq = e.in.Seq[:0]
	e.in.Outputs = e.in.Outputs[:0]
}

// add appends a token to the host batch and returns its row; out marks
// the row's logits as wanted.
func (e *Engine) add(id int32, pos int, seq int32, out bool) {
	if out {
		e.in.Outputs = append(e.in.Outputs, int32(len(e.in.IDs)))
	}
	e.in.IDs = append(e.in.IDs, id)
	e.in.Pos = append(e.in.Pos, int32(pos))
	e.in.Seq = append(e.in.Seq, seq)
}

// run evaluates the host batch and returns the logits of its output rows,
// row i at [i*vocab, (i+1)*vocab), valid until the next run.
func (e *Engine) run() ([]float32, error) {
	if err := e.be.SetBatch(e.batch, &e.in); err != nil {
		return nil, fmt.Errorf("set batch: %w", err)
	}
	if err := e.graphs.Forward(e.batch, e.logits, &e.in); err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	nOut := len(e.in.Outputs)
	if nOut == 0 {
		return nil, e.be.Synchronize()
	}
	src := e.logits
	if nOut < e.logits.Rows() {
		v, err := e.be.View(e.logits, 0, nOut, 0, e.vocab)
		if err != nil {
			return nil, fmt.Errorf("logits view: %w", err)
		}
		src = v
	}
	n := nOut * e.vocab
	if cap(e.host) < n {
		e.host = make([]float32, n, e.maxBatch*e.vocab)
	}
	e.host = e.host[:n]
	if err := e.be.Read(src, e.host); err != nil {
		return nil, fmt.Errorf("read logits: %w", err)
	}
	return e.host, nil
}

// PromptLogits evaluates ids as one sequence (in chunks of MaxBatch) and
// returns a copy of the logits at the last position.
func (e *Engine) PromptLogits(ids []int32) ([]float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(ids) == 0 {
		return nil, fmt.Errorf("prompt logits: empty prompt")
	}
	if len(ids) > e.ctx {
		return nil, fmt.Errorf("prompt logits: prompt of %d tokens exceeds the context of %d", len(ids), e.ctx)
	}
	if err := e.checkIDs(ids); err != nil {
		return nil, fmt.Errorf("prompt logits: %w", err)
	}
	if err := e.init(); err != nil {
		return nil, err
	}
	var out []float32
	for start := 0; start < len(ids); start += e.maxBatch {
		end := min(start+e.maxBatch, len(ids))
		e.resetBatch()
		for p := start; p < end; p++ {
			e.add(ids[p], p, 0, p == len(ids)-1)
		}
		l, err := e.run()
		if err != nil {
			return nil, fmt.Errorf("prompt logits: tokens %d..%d: %w", start, end-1, err)
		}
		out = l
	}
	return append([]float32(nil), out[:e.vocab]...), nil
}

func (e *Engine) checkIDs(ids []int32) error {
	for i, id := range ids {
		if id < 0 || int(id) >= e.vocab {
			return fmt.Errorf("token %d: id %d outside the vocabulary of %d", i, id, e.vocab)
		}
	}
	return nil
}
