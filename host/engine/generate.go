package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Request is one generation job.
type Request struct {
	Prompt string
	// PromptIDs is used instead of Prompt when set (no BOS is added).
	PromptIDs []int32
	// MaxTokens bounds the generated tokens; <= 0 generates until EOS, a
	// stop string or the end of the context.
	MaxTokens int
	Sampling  SamplerConfig
	// Stop ends generation when the text contains one of these strings;
	// the result's text ends before it.
	Stop []string
	// AddBOS overrides the model's rule for a leading BOS token.
	AddBOS *bool
	// ParseSpecial lets the prompt text name special tokens (chat
	// templates); plain text by default.
	ParseSpecial bool
}

// Stop reasons.
const (
	StopEOS    = "eos"    // the model produced an end-of-generation token
	StopString = "stop"   // the text reached one of Request.Stop
	StopLength = "length" // MaxTokens reached or the context is full
)

// Result is what a request produced. GenIDs holds every generated token,
// including a final EOS or the token that completed a stop string; Text
// excludes both. StopReason is empty when the call failed or was
// cancelled before the request finished.
type Result struct {
	PromptIDs, GenIDs []int32
	Text              string
	StopReason        string
}

// Stats are the totals of one Generate call. A step that mixes prompt
// tokens and decode tokens splits its time in proportion to their counts.
type Stats struct {
	PromptTokens, GenTokens int
	PromptTime, GenTime     time.Duration
}

// PromptTokensPerSecond and GenTokensPerSecond are the throughputs (0
// when nothing ran).
func (s Stats) PromptTokensPerSecond() float64 { return rate(s.PromptTokens, s.PromptTime) }
func (s Stats) GenTokensPerSecond() float64    { return rate(s.GenTokens, s.GenTime) }

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// seqState is a request while it holds a KV slot.
type seqState struct {
	req      int
	slot     int32
	prompt   []int32
	fed      int   // prompt tokens evaluated so far
	nPast    int   // tokens in the cache
	pending  int32 // sampled token not yet evaluated; -1 when none
	decoding bool  // pending is in the current step
	maxGen   int
	sampler  *Sampler
	out      *output
	res      *Result
	finished bool
}

// Generate runs all requests, up to Options.Seqs of them at a time. Each
// step is one batch: a decode token for every sequence that is
// generating, then prompt tokens of sequences still reading their prompt
// (in chunks, up to MaxBatch tokens in all). A finished sequence frees
// its slot for the next waiting request. onToken, when not nil, sees
// every generated token with the text it completes (text that may still
// turn into a stop string is held back until it cannot).
//
// Requests are checked before anything runs: an empty prompt, a prompt
// longer than the context or an invalid sampler fails the whole call. On
// cancellation or a backend error the results so far are returned with
// the error.
func (e *Engine) Generate(ctx context.Context, reqs []Request, onToken func(seq int, id int32, piece string)) ([]Result, Stats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var st Stats
	results := make([]Result, len(reqs))
	prompts := make([][]int32, len(reqs))
	for i := range reqs {
		p, err := e.preparePrompt(&reqs[i])
		if err != nil {
			return nil, st, fmt.Errorf("request %d: %w", i, err)
		}
		prompts[i] = p
		results[i].PromptIDs = p
	}
	if len(reqs) == 0 {
		return results, st, nil
	}
	if err := e.init(); err != nil {
		return nil, st, err
	}

	slots := newKVSlots(e.seqs)
	var active []*seqState
	next := 0 // next request to admit
	rot := 0  // rotates which decoding sequence goes first when they exceed a batch
	rowSeq := make([]*seqState, 0, e.maxBatch)
	prefillTake := make([]int, 0, e.seqs)

	// fail returns what was generated so far, with the text decoded up to
	// the last token, and err.
	fail := func(err error) ([]Result, Stats, error) {
		for _, s := range active {
			s.res.Text = s.out.text()
		}
		return results, st, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		// Admit waiting requests into free slots.
		for next < len(reqs) && slots.available() > 0 {
			slot, _ := slots.acquire()
			r := &reqs[next]
			s := &seqState{
				req: next, slot: slot, prompt: prompts[next], pending: -1,
				sampler: NewSampler(r.Sampling),
				out:     newOutput(e.tok, r.Stop),
				res:     &results[next],
			}
			s.maxGen = r.MaxTokens
			s.sampler.Accept(s.prompt...)
			active = append(active, s)
			next++
		}
		if len(active) == 0 {
			return results, st, nil
		}

		// Build the step: decode tokens first, then prompt chunks.
		e.resetBatch()
		rowSeq = rowSeq[:0]
		nDecode := 0
		for k := range active {
			s := active[(k+rot)%len(active)]
			if s.pending < 0 || len(e.in.IDs) == e.maxBatch {
				continue
			}
			e.add(s.pending, s.nPast, s.slot, true)
			s.decoding = true
			rowSeq = append(rowSeq, s)
			nDecode++
		}
		rot++
		prefillTake = prefillTake[:0]
		for _, s := range active {
			take := 0
			if s.fed < len(s.prompt) {
				take = min(len(s.prompt)-s.fed, e.maxBatch-len(e.in.IDs))
				for j := 0; j < take; j++ {
					p := s.fed + j
					last := p == len(s.prompt)-1
					e.add(s.prompt[p], p, s.slot, last)
					if last {
						rowSeq = append(rowSeq, s)
					}
				}
			}
			prefillTake = append(prefillTake, take)
		}
		nTok := len(e.in.IDs)
		if nTok == 0 {
			return fail(errors.New("generate: no sequence can make progress (internal error)"))
		}

		t0 := time.Now()
		logits, err := e.run()
		if err != nil {
			return fail(fmt.Errorf("generate: %w", err))
		}
		// Advance the cache positions of everything evaluated.
		for i, s := range active {
			if s.decoding {
				s.nPast++
				s.pending, s.decoding = -1, false
			}
			s.fed += prefillTake[i]
			s.nPast += prefillTake[i]
		}
		// Sample for every output row.
		for r, s := range rowSeq {
			id := s.sampler.Sample(logits[r*e.vocab : (r+1)*e.vocab])
			e.accept(s, id, onToken)
		}
		dt := time.Since(t0)
		nPrompt := nTok - nDecode
		st.PromptTokens += nPrompt
		st.GenTokens += len(rowSeq)
		promptShare := time.Duration(float64(dt) * float64(nPrompt) / float64(nTok))
		st.PromptTime += promptShare
		st.GenTime += dt - promptShare

		// Retire finished sequences.
		kept := active[:0]
		for _, s := range active {
			if !s.finished {
				kept = append(kept, s)
				continue
			}
			if err := slots.release(s.slot); err != nil {
				return fail(err)
			}
		}
		clear(active[len(kept):])
		active = kept
	}
}

// accept records a sampled token and decides whether the sequence ends.
func (e *Engine) accept(s *seqState, id int32, onToken func(int, int32, string)) {
	s.res.GenIDs = append(s.res.GenIDs, id)
	reason := ""
	var piece string
	switch {
	case e.tok != nil && e.tok.IsEOG(id):
		reason = StopEOS
		piece = s.out.finish()
	default:
		var stopped bool
		piece, stopped = s.out.push(id)
		if stopped {
			reason = StopString
		}
	}
	if reason == "" && ((s.maxGen > 0 && len(s.res.GenIDs) >= s.maxGen) || s.nPast >= e.ctx) {
		// The token is kept even when the context cannot take it: it
		// was sampled from valid logits, it just cannot be evaluated.
		reason = StopLength
		piece += s.out.finish()
	}
	if reason != "" {
		s.finished = true
		s.res.StopReason = reason
		s.res.Text = s.out.text()
	} else {
		s.pending = id
	}
	if onToken != nil {
		onToken(s.req, id, piece)
	}
}

// preparePrompt tokenizes a request and checks it against the context.
func (e *Engine) preparePrompt(r *Request) ([]int32, error) {
	if err := r.Sampling.Validate(); err != nil {
		return nil, err
	}
	if len(r.Stop) > 0 && e.tok == nil {
		return nil, errors.New("stop strings need a tokenizer to decode text")
	}
	for _, s := range r.Stop {
		if s == "" {
			return nil, errors.New("empty stop string")
		}
	}
	ids := r.PromptIDs
	if len(ids) == 0 {
		if e.tok == nil {
			return nil, errors.New("prompt text needs a tokenizer (or pass PromptIDs)")
		}
		// An empty text with BOS is a valid prompt: generation from BOS.
		addBOS := e.tok.AddBOS()
		if r.AddBOS != nil {
			addBOS = *r.AddBOS
		}
		var err error
		if ids, err = e.tok.Encode(r.Prompt, addBOS, r.ParseSpecial); err != nil {
			return nil, fmt.Errorf("tokenize prompt: %w", err)
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("empty prompt")
	}
	if len(ids) > e.ctx {
		return nil, fmt.Errorf("prompt of %d tokens exceeds the context of %d tokens per sequence", len(ids), e.ctx)
	}
	if err := e.checkIDs(ids); err != nil {
		return nil, err
	}
	return append([]int32(nil), ids...), nil
}
