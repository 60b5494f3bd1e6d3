package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pool runs parallel-for loops on persistent worker goroutines. Starting
// goroutines per call would allocate and cost microseconds per matmul, and a
// decode step issues dozens of small matmuls, so workers are started once.
//
// Between loops a worker spins for spinTime watching for the next one
// before it parks on its channel: waking a parked goroutine goes through
// the scheduler and an OS futex, several microseconds per loop, which the
// back-to-back loops of a forward pass would pay over a hundred times per
// token (docs/benchmarks.md has the measurements). The spin yields its P
// regularly (runtime.Gosched): the caller, woken by the last worker to
// finish, is queued on that worker's P and would otherwise wait out the
// whole spin.
//
// A Pool runs one For at a time; concurrent callers wait their turn. fn must
// not call For on the same Pool (it would deadlock).
type Pool struct {
	threads int

	mu    sync.Mutex // serializes For calls
	fn    func(lo, hi int)
	fnW   func(worker, lo, hi int)
	n     int
	chunk int
	next  atomic.Int64
	gen   uint64 // number of loops started, under mu

	// ctl[i] controls worker i+1. pending counts the workers still in the
	// current loop; the caller, when it parks waiting for them, stores the
	// loop's number in callerSleep (0: not parked) and is woken through
	// callerWake. The number, not a flag: the last worker of a loop may be
	// preempted between its decrement and its wake-up, and by then the
	// caller can be parked on the next loop, which that late wake-up must
	// not end.
	ctl         []workerCtl
	pending     atomic.Int32
	callerSleep atomic.Uint64
	callerWake  chan struct{}
	closed      atomic.Bool

	// scratch is per-worker memory reused across calls (panels of repacked
	// weights), indexed by worker; slot 0 is the calling goroutine.
	scratch [][]byte
	aux     []int32
	acts    []byte

	// The MatMul and QuantizeActs in flight, each guarded by its mutex,
	// with the worker functions bound to them once.
	mm    matmulJob
	mmMu  sync.Mutex
	mmFn  func(worker, lo, hi int)
	act   actJob
	actMu sync.Mutex
	actFn func(lo, hi int)
}

// workerCtl is one worker's mailbox, padded to its own cache lines so that
// spinning workers do not contend with each other.
type workerCtl struct {
	// job is the number of the last loop assigned to the worker
	// (closedJob once the pool is closed).
	job atomic.Uint64
	// asleep is set by a worker about to park; whoever clears it (the
	// worker itself or the caller assigning a loop) decides whether a
	// token is sent on wake.
	asleep atomic.Bool
	wake   chan struct{}
	_      [128 - 8 - 4 - 8]byte
}

const closedJob = ^uint64(0)

// spinTime is how long an idle worker spins before parking: longer than
// the gaps between the loops of a forward pass (norms, attention), short
// enough that an idle process stops using the CPU at once. A variable for
// the benchmarks.
var spinTime = 50 * time.Microsecond

// callerSpin says whether the caller of For spins while it waits for the
// workers rather than parking at once: measured, spinning there gained
// nothing (the caller usually finds the work done or nearly so).
var callerSpin = false

// NewPool starts threads-1 workers (the caller of For is the last thread).
// threads <= 0 means runtime.GOMAXPROCS(0).
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Pool{threads: threads, scratch: make([][]byte, threads), callerWake: make(chan struct{}, 1)}
	p.mmFn = p.mm.run
	p.mm.pool = p
	p.actFn = p.act.run
	p.ctl = make([]workerCtl, threads-1)
	for i := range p.ctl {
		p.ctl[i].wake = make(chan struct{}, 1)
		go p.worker(i + 1)
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
	for i := range p.ctl {
		p.assign(i, closedJob)
	}
}

// assign hands loop number job to worker i+1, waking it if it parked.
func (p *Pool) assign(i int, job uint64) {
	c := &p.ctl[i]
	c.job.Store(job)
	if c.asleep.CompareAndSwap(true, false) {
		c.wake <- struct{}{}
	}
}

func (p *Pool) worker(id int) {
	c := &p.ctl[id-1]
	var seen uint64
	for {
		job := c.await(seen)
		if job == closedJob {
			return
		}
		seen = job
		p.drain(id)
		if p.pending.Add(-1) == 0 && p.callerSleep.CompareAndSwap(job, 0) {
			p.callerWake <- struct{}{}
		}
	}
}

// await returns the next job number after seen, spinning for spinTime
// before parking. The asleep flag and the job number are written and
// read in opposite orders by the worker and the caller, so at least one of
// them sees the other's write: either the worker sees the job and does not
// park, or the caller sees the worker parking and sends a token.
//
// A token can come late: the caller stores a job and only then clears the
// flag, and in between the worker may see the job by spinning, run the
// whole loop and park again, so that the clearing finds it asleep. Such a
// token is for a job already run; await takes it and waits on.
func (c *workerCtl) await(seen uint64) uint64 {
	for {
		if spinUntil(func() bool { return c.job.Load() != seen }) {
			return c.job.Load()
		}
		c.asleep.Store(true)
		if job := c.job.Load(); job != seen {
			if !c.asleep.CompareAndSwap(true, false) {
				// The caller cleared the flag and sent (or is
				// sending) a token: take it so none is left over.
				<-c.wake
			}
			return job
		}
		<-c.wake
		if job := c.job.Load(); job != seen {
			return job
		}
	}
}

// spinUntil polls cond for up to spinTime and reports whether it became
// true.
func spinUntil(cond func() bool) bool {
	var start time.Time
	for i := 0; ; i++ {
		if cond() {
			return true
		}
		// Reading the clock costs about as much as a few pauses; do it
		// once per 64.
		if i&63 == 0 {
			if i == 0 {
				start = time.Now()
			} else if time.Since(start) > spinTime {
				return false
			}
		}
		// A goroutine this one readied (the caller, woken after its
		// workers finished) waits in this P's run queue while we spin:
		// let it run.
		if i&7 == 7 {
			runtime.Gosched()
		} else {
			cpuPause()
		}
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
	helpers := min(nchunks-1, len(p.ctl))
	p.pending.Store(int32(helpers))
	p.gen++
	for i := 0; i < helpers; i++ {
		p.assign(i, p.gen)
	}
	p.drain(0)
	p.waitWorkers(p.gen)
	p.fn, p.fnW = nil, nil
}

// waitWorkers returns once every worker of loop gen is done, spinning
// first and then parking, with the same protocol as await: whichever of
// the caller and the last worker clears callerSleep decides whether a
// token is sent, so none is ever left over for a later loop.
func (p *Pool) waitWorkers(gen uint64) {
	if callerSpin && spinUntil(func() bool { return p.pending.Load() == 0 }) {
		return
	}
	p.callerSleep.Store(gen)
	if p.pending.Load() == 0 && p.callerSleep.CompareAndSwap(gen, 0) {
		return
	}
	<-p.callerWake
}

// auxFor returns the pool's shared per-call buffer with at least n int32s.
// Only MatMul uses it, under mmMu.
func (p *Pool) auxFor(n int) []int32 {
	if cap(p.aux) < n {
		p.aux = make([]int32, n)
	}
	return p.aux[:n]
}

// actsFor returns the pool's shared activation tile buffer with at least n
// bytes, 64-byte aligned so that tile rows never straddle cache lines.
// Only MatMul uses it, under mmMu.
func (p *Pool) actsFor(n int) []byte {
	if len(p.acts) < n {
		p.acts = align64(make([]byte, n+panelLine))
	}
	return p.acts[:n]
}

// scratchFor returns worker's scratch buffer with at least n bytes, growing
// it only when a larger shape than any before is seen.
func (p *Pool) scratchFor(worker, n int) []byte {
	if cap(p.scratch[worker]) < n {
		p.scratch[worker] = make([]byte, n)
	}
	return p.scratch[worker][:n]
}
