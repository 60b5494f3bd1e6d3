package cuda

import (
	"fmt"
	"sort"
	"time"

	"qinfer/host/backend"
)

// profiler times ops with CUDA events: when on (and not capturing a
// graph), every op records an event before and after its kernels, and the
// elapsed times are collected when the stream is synchronised. When off it
// costs one branch per op.
type profiler struct {
	on      bool
	pending []timedOp
	pool    []Event
	totals  map[string]*backend.OpTiming
}

type timedOp struct {
	op         string
	start, end Event
	bytes, ops int64
}

// maxPending bounds the events outstanding between synchronisations; past
// it an op synchronises and collects first.
const maxPending = 4096

func (p *profiler) event(drv Driver) (Event, error) {
	if n := len(p.pool); n > 0 {
		e := p.pool[n-1]
		p.pool = p.pool[:n-1]
		return e, nil
	}
	return drv.EventCreate(EventDefault)
}

// opStart begins timing op (device thread); it returns 0 when not timing.
func (b *Backend) opStart() (Event, error) {
	if !b.prof.on || b.capturing {
		return 0, nil
	}
	if len(b.prof.pending) >= maxPending {
		if err := b.syncLocked(); err != nil {
			return 0, err
		}
	}
	e, err := b.prof.event(b.drv)
	if err != nil {
		return 0, fmt.Errorf("profile: %w", err)
	}
	if err := b.drv.EventRecord(e, b.stream); err != nil {
		b.prof.pool = append(b.prof.pool, e)
		return 0, fmt.Errorf("profile: %w", err)
	}
	return e, nil
}

// opEnd finishes timing an op begun with opStart.
func (b *Backend) opEnd(start Event, op string, bytes, ops int64) error {
	if start == 0 {
		return nil
	}
	e, err := b.prof.event(b.drv)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if err := b.drv.EventRecord(e, b.stream); err != nil {
		b.prof.pool = append(b.prof.pool, e, start)
		return fmt.Errorf("profile: %w", err)
	}
	b.prof.pending = append(b.prof.pending, timedOp{op: op, start: start, end: e, bytes: bytes, ops: ops})
	return nil
}

// collect adds the pending timings to the totals; the stream must have
// passed them (after StreamSynchronize).
func (p *profiler) collect(drv Driver) error {
	var first error
	for _, t := range p.pending {
		ms, err := drv.EventElapsedTime(t.start, t.end)
		p.pool = append(p.pool, t.start, t.end)
		if err != nil {
			if first == nil {
				first = fmt.Errorf("profile %s: %w", t.op, err)
			}
			continue
		}
		if p.totals == nil {
			p.totals = map[string]*backend.OpTiming{}
		}
		tot := p.totals[t.op]
		if tot == nil {
			tot = &backend.OpTiming{Op: t.op}
			p.totals[t.op] = tot
		}
		tot.Calls++
		tot.Total += time.Duration(float64(ms) * float64(time.Millisecond))
		tot.Bytes += t.bytes
		tot.Ops += t.ops
	}
	p.pending = p.pending[:0]
	return first
}

// release destroys every event (device thread).
func (p *profiler) release(drv Driver) {
	for _, t := range p.pending {
		p.pool = append(p.pool, t.start, t.end)
	}
	p.pending = nil
	for _, e := range p.pool {
		_ = drv.EventDestroy(e)
	}
	p.pool = nil
}

// SetProfiling turns per-op timing on or off and clears the counters.
func (b *Backend) SetProfiling(on bool) {
	if b.enter("set profiling") != nil {
		return
	}
	defer b.mu.Unlock()
	if len(b.prof.pending) > 0 && !b.capturing {
		_ = b.do(func() error {
			_ = b.drv.StreamSynchronize(b.stream)
			return b.prof.collect(b.drv)
		})
	}
	b.prof.on = on
	b.prof.totals = nil
}

// Profile returns the accumulated time per op, after waiting for the ops
// enqueued so far. Times are GPU times between events around each op's
// kernels.
func (b *Backend) Profile() []backend.OpTiming {
	if b.enter("profile") != nil {
		return nil
	}
	defer b.mu.Unlock()
	if len(b.prof.pending) > 0 && !b.capturing {
		_ = b.do(func() error {
			_ = b.drv.StreamSynchronize(b.stream)
			return b.prof.collect(b.drv)
		})
	}
	out := make([]backend.OpTiming, 0, len(b.prof.totals))
	for _, t := range b.prof.totals {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Total > out[j].Total })
	return out
}
