package engine

import (
	"errors"
	"fmt"
	"log/slog"

	"qinfer/host/backend"
	"qinfer/host/model"
)

// GraphMaxTokens is the largest step Graphs captures: a decode step of
// many sequences or a short prompt chunk, where the launches of a few
// hundred small kernels cost as much as the kernels themselves. Larger
// steps are compute-bound and run directly.
const GraphMaxTokens = 64

// graphMaxShapes bounds the graphs kept (one per step shape), so that a
// workload of ever-changing shapes cannot hold unbounded device memory.
const graphMaxShapes = 32

// graphShape is what a captured forward pass freezes: the kernels' launch
// shapes depend on the token count and on how many rows go past the last
// attention (the wanted outputs). Everything else (ids, positions,
// sequences, which rows are outputs) travels in the Batch, which kernels
// read when they run.
type graphShape struct{ tokens, outputs int }

// Graphs runs a model's forward passes, replaying those of small steps as
// backend graphs (CUDA graphs) when the backend can record them: one
// launch per step instead of one per kernel. A shape is captured the
// second time it is seen, so that the first run does the allocations a
// capture may not (the model's activation views for that size). A
// capture that fails turns graphs off for good, with one warning, and
// the step runs directly: graphs are an optimization, never a new way to
// fail. The zero value is not usable; see NewGraphs.
type Graphs struct {
	m       model.Model
	gc      backend.GraphCapturer // nil: the backend cannot capture
	on      bool
	seen    map[graphShape]bool
	graphs  map[graphShape]backend.Graph
	launchN int
}

// NewGraphs returns the forward runner of m on be, with graphs on when be
// can capture them.
func NewGraphs(m model.Model, be backend.Backend) *Graphs {
	gc, _ := be.(backend.GraphCapturer)
	return &Graphs{m: m, gc: gc, on: gc != nil, seen: map[graphShape]bool{}, graphs: map[graphShape]backend.Graph{}}
}

// SetEnabled turns replay on or off (on has no effect when the backend
// cannot capture). Turning it off keeps the graphs already made until
// Close.
func (g *Graphs) SetEnabled(on bool) { g.on = on && g.gc != nil }

// Enabled reports whether steps may be replayed.
func (g *Graphs) Enabled() bool { return g.on }

// Stats returns the number of graphs captured and of steps replayed.
func (g *Graphs) Stats() (captured, launched int) { return len(g.graphs), g.launchN }

// Forward runs the model on b (whose contents in describes: SetBatch
// must have been called with it) into logits.
func (g *Graphs) Forward(b backend.Batch, logits backend.Tensor, in *backend.BatchInput) error {
	n := len(in.IDs)
	if !g.on || n > GraphMaxTokens {
		return g.m.Forward(b, logits)
	}
	s := graphShape{n, len(in.Outputs)}
	if gr := g.graphs[s]; gr != nil {
		if err := gr.Launch(); err != nil {
			return fmt.Errorf("graph of %d tokens: %w", n, err)
		}
		g.launchN++
		return nil
	}
	if !g.seen[s] || len(g.graphs) >= graphMaxShapes {
		g.seen[s] = true
		return g.m.Forward(b, logits)
	}
	gr, err := g.capture(b, logits)
	if err != nil {
		g.on = false
		slog.Warn("CUDA graphs off: capture failed; steps run kernel by kernel", "tokens", n, "err", err)
		return g.m.Forward(b, logits)
	}
	g.graphs[s] = gr
	if err := gr.Launch(); err != nil {
		return fmt.Errorf("graph of %d tokens: %w", n, err)
	}
	g.launchN++
	return nil
}

// capture records one forward pass.
func (g *Graphs) capture(b backend.Batch, logits backend.Tensor) (backend.Graph, error) {
	if err := g.gc.BeginCapture(); err != nil {
		return nil, err
	}
	ferr := g.m.Forward(b, logits)
	gr, err := g.gc.EndCapture()
	if err == nil && ferr != nil {
		// EndCapture reports an op's failure itself; this covers a model
		// that failed before reaching the backend.
		err = errors.Join(ferr, gr.Free())
	}
	if err != nil {
		return nil, err
	}
	return gr, nil
}

// Close frees the graphs.
func (g *Graphs) Close() error {
	var errs []error
	for s, gr := range g.graphs {
		if err := gr.Free(); err != nil {
			errs = append(errs, fmt.Errorf("graph of %d tokens: %w", s.tokens, err))
		}
		delete(g.graphs, s)
	}
	return errors.Join(errs...)
}
