package cuda

import (
	"errors"
	"fmt"

	"qinfer/host/backend"
)

// BeginCapture starts recording the ops that follow into a CUDA graph
// instead of running them (DESIGN.md decision 8). Kernel arguments are
// frozen at capture, so everything that changes between replays must be
// in a Batch, whose contents kernels read at run time: positions, ids,
// sequence ids and the output count. Shapes (token counts) are frozen.
// While capturing, operations that synchronise or allocate (Write, Read,
// SetBatch, Synchronize, New*, Upload, Free) are refused, and any op error
// fails the capture.
//
// The capture runs in thread-local mode on the backend's own stream, so
// only this backend's device thread is restricted.
func (b *Backend) BeginCapture() error {
	if err := b.enter("begin capture"); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if b.capturing {
		return errors.New("begin capture: a capture is already in progress")
	}
	err := b.do(func() error { return b.drv.StreamBeginCapture(b.stream, CaptureModeThreadLocal) })
	if err != nil {
		return fmt.Errorf("begin capture: %w", err)
	}
	b.capturing, b.captureErr = true, nil
	return nil
}

// EndCapture finishes the capture and instantiates the graph. If an op
// failed during the capture, the graph is discarded and that error
// returned.
func (b *Backend) EndCapture() (backend.Graph, error) {
	if err := b.enter("end capture"); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	if !b.capturing {
		return nil, errors.New("end capture: no capture in progress")
	}
	b.capturing = false
	opErr := b.captureErr
	b.captureErr = nil
	var exec GraphExec
	err := b.do(func() error {
		g, err := b.drv.StreamEndCapture(b.stream)
		if err != nil {
			return err
		}
		defer func() { _ = b.drv.GraphDestroy(g) }()
		if opErr != nil {
			return nil
		}
		exec, err = b.drv.GraphInstantiate(g)
		return err
	})
	switch {
	case opErr != nil:
		return nil, fmt.Errorf("end capture: an op failed during the capture: %w", opErr)
	case err != nil:
		return nil, fmt.Errorf("end capture: %w", err)
	}
	gr := &graph{b: b, exec: exec}
	if b.graphs == nil {
		b.graphs = map[*graph]struct{}{}
	}
	b.graphs[gr] = struct{}{}
	return gr, nil
}

// graph is an instantiated CUDA graph.
type graph struct {
	b     *Backend
	exec  GraphExec
	freed bool
}

// Launch replays the graph on the backend's stream, after any op enqueued
// before it (SetBatch's copy included).
func (g *graph) Launch() error {
	b := g.b
	if err := b.enter("graph launch"); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if g.freed {
		return errors.New("graph launch: graph was freed")
	}
	if b.capturing {
		return errors.New("graph launch: not allowed while capturing")
	}
	return b.do(func() error {
		start, err := b.opStart()
		if err != nil {
			return err
		}
		if err := b.drv.GraphLaunch(g.exec, b.stream); err != nil {
			return fmt.Errorf("graph launch: %w", err)
		}
		return b.opEnd(start, "graph", 0, 0)
	})
}

// Free destroys the graph.
func (g *graph) Free() error {
	b := g.b
	if err := b.enter("graph free"); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if g.freed {
		return errors.New("graph free: already freed")
	}
	g.freed = true
	delete(b.graphs, g)
	return b.do(func() error {
		if err := b.drv.StreamSynchronize(b.stream); err != nil {
			return fmt.Errorf("graph free: %w", err)
		}
		return wrap(b.drv.GraphExecDestroy(g.exec), "graph free")
	})
}
