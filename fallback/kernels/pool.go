package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Pool runs parallel-for loops on persistent worker goroutines. Starting
// goroutines per call would allocate and cost microseconds per matmul, and a
// decode step issues dozens of small matmuls, so workers are started once
// and woken through per-worker channels.
//
// A Pool runs one For at a time; concurrent callers wait their turn. fn must
// not call For on the same Pool (it would deadlock).
type Pool struct {
	threads int

	mu     sync.Mutex // serializes For calls
	fn     func(lo, hi int)
	fnW    func(worker, lo, hi int)
	n      int
	chunk  int
	next   atomic.Int64
	wg     sync.WaitGroup
	wake   []chan struct{}
	closed atomic.Bool

	// scratch is per-worker memory reused across calls (panels of repacked
	// weights), indexed by worker; slot 0 is the calling goroutine.
	scratch [][]byte
	aux     []int32

	// The MatMul and QuantizeActs in flight, each guarded by its mutex,
	// with the worker functions bound to them once.
	mm    matmulJob
	mmMu  sync.Mutex
	mmFn  func(worker, lo, hi int)
	act   actJob
	actMu sync.Mutex
	actFn func(lo, hi int)
}

// NewPool starts threads-1 workers (the caller of For is the last thread).
// threads <= 0 means runtime.GOMAXPROCS(0).
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Pool{threads: threads, scratch: make([][]byte, threads)}
	p.mmFn = p.mm.run
	p.mm.pool = p
	p.actFn = p.act.run
	p.wake = make([]chan struct{}, threads-1)
	for i := range p.wake {
		p.wake[i] = make(chan struct{}, 1)
		go p.worker(i+1, p.wake[i])
	}
	return p
}

// Threads is the number of goroutines a For runs on, the caller included.
func (p *Pool) Threads() int { return p.threads }

// Close stops the workers. The Pool must not be used afterwards.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Swap(true) {
		return
	}
	for _, c := range p.wake {
		close(c)
	}
}

func (p *Pool) worker(id int, wake chan struct{}) {
	for range wake {
		p.drain(id)
		p.wg.Done()
	}
}

// drain takes chunks until none is left. Chunks are claimed dynamically so
// that a worker delayed by the OS does not hold up the whole loop.
func (p *Pool) drain(id int) {
	for {
		lo := int(p.next.Add(int64(p.chunk))) - p.chunk
		if lo >= p.n {
			return
		}
		hi := min(lo+p.chunk, p.n)
		if p.fnW != nil {
			p.fnW(id, lo, hi)
		} else {
			p.fn(lo, hi)
		}
	}
}

// For splits [0,n) into chunks of at least grain indices and calls fn on
// each, on the workers and the calling goroutine, returning when all are
// done.
func (p *Pool) For(n, grain int, fn func(lo, hi int)) {
	p.run(n, grain, fn, nil)
}

// forWorker is For with the index of the running thread (0..Threads()-1)
// passed to fn, so that fn can use per-thread scratch memory.
func (p *Pool) forWorker(n, grain int, fn func(worker, lo, hi int)) {
	p.run(n, grain, nil, fn)
}

func (p *Pool) run(n, grain int, fn func(lo, hi int), fnW func(worker, lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	// About four chunks per thread balance load without much contention.
	chunk := max(grain, (n+4*p.threads-1)/(4*p.threads))
	nchunks := (n + chunk - 1) / chunk
	if p.threads == 1 || nchunks == 1 || p.closed.Load() {
		if fnW != nil {
			fnW(0, 0, n)
		} else {
			fn(0, n)
		}
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fn, p.fnW, p.n, p.chunk = fn, fnW, n, chunk
	p.next.Store(0)
	helpers := min(nchunks-1, len(p.wake))
	p.wg.Add(helpers)
	for i := 0; i < helpers; i++ {
		p.wake[i] <- struct{}{}
	}
	p.drain(0)
	p.wg.Wait()
	p.fn, p.fnW = nil, nil
}

// auxFor returns the pool's shared per-call buffer with at least n int32s.
// Only MatMul uses it, under mmMu.
func (p *Pool) auxFor(n int) []int32 {
	if cap(p.aux) < n {
		p.aux = make([]int32, n)
	}
	return p.aux[:n]
}

// scratchFor returns worker's scratch buffer with at least n bytes, growing
// it only when a larger shape than any before is seen.
func (p *Pool) scratchFor(worker, n int) []byte {
	if cap(p.scratch[worker]) < n {
		p.scratch[worker] = make([]byte, n)
	}
	return p.scratch[worker][:n]
}
