package kernels

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPoolCoversEveryIndexOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		p := NewPool(threads)
		assert.Equal(t, threads, p.Threads())
		for _, n := range []int{0, 1, 2, 7, 100, 1001} {
			for _, grain := range []int{0, 1, 3, 64, 5000} {
				hits := make([]atomic.Int32, n)
				p.For(n, grain, func(lo, hi int) {
					if hi-lo < grain && hi != n {
						t.Errorf("chunk [%d,%d) below grain %d", lo, hi, grain)
					}
					for i := lo; i < hi; i++ {
						hits[i].Add(1)
					}
				})
				for i := range hits {
					require.Equal(t, int32(1), hits[i].Load(), "threads %d n %d grain %d index %d", threads, n, grain, i)
				}
			}
		}
		p.Close()
		p.Close() // idempotent
	}
}

func TestPoolDefaultThreads(t *testing.T) {
	p := NewPool(0)
	defer p.Close()
	assert.GreaterOrEqual(t, p.Threads(), 1)
}

// TestPoolConcurrentCallers runs For from several goroutines at once: each
// call must still see all of its own indices (run with -race).
func TestPoolConcurrentCallers(t *testing.T) {
	p := NewPool(3)
	defer p.Close()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := 0; it < 50; it++ {
				n := 37 + g
				var sum atomic.Int64
				p.For(n, 1, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						sum.Add(int64(i))
					}
				})
				if got := sum.Load(); got != int64(n*(n-1)/2) {
					t.Errorf("goroutine %d: sum %d, want %d", g, got, n*(n-1)/2)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestPoolLoopsNeverOverlap runs many short loops of varying width on
// more threads than cores, so that workers are preempted at every point of
// the hand-off, and checks that no loop returns before all of its indices
// ran and that no worker runs an index of a loop that already returned.
// A wake-up from the previous loop's last worker once ended a loop early
// (seen by -race as Pool.run writing p.n under a worker's drain), and so
// did a wake-up token that reached a worker after it had already run the
// loop the token was for. A short spin makes workers park between loops,
// where both hand-offs happen.
func TestPoolLoopsNeverOverlap(t *testing.T) {
	iters := 20000
	if testing.Short() {
		iters = 3000
	}
	defer func(d time.Duration) { spinTime = d }(spinTime)
	spinTime = time.Microsecond
	for _, threads := range []int{3, 5} {
		p := NewPool(threads)
		var current atomic.Int64
		var stray atomic.Int64
		for it := range iters {
			// Widths 2..9 leave a varying number of workers idle, so
			// the same worker is assigned, skipped and reassigned.
			n := 2 + it%8
			current.Store(int64(it))
			var done atomic.Int64
			p.For(n, 1, func(lo, hi int) {
				if current.Load() != int64(it) {
					stray.Add(1)
				}
				if it%7 == 0 {
					time.Sleep(time.Microsecond)
				}
				done.Add(int64(hi - lo))
			})
			require.Equal(t, int64(n), done.Load(), "threads %d loop %d returned before its indices ran", threads, it)
		}
		p.Close()
		require.Zero(t, stray.Load(), "threads %d: indices ran after their loop returned", threads)
	}
}

func TestPoolForNoAllocs(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	var sink atomic.Int64
	fn := func(lo, hi int) { sink.Add(int64(hi - lo)) }
	allocs := testing.AllocsPerRun(100, func() { p.For(1000, 1, fn) })
	assert.Zero(t, allocs)
	assert.Equal(t, int64(101*1000), sink.Load())
}

// BenchmarkPoolFor measures the cost of one parallel loop with little work
// per thread, as a decode step's small matrix products have: the wake-up
// and join latency of the workers.
func BenchmarkPoolFor(b *testing.B) {
	p := NewPool(0)
	defer p.Close()
	work := make([]float32, 1024*p.Threads())
	fn := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			for k := range 1024 {
				work[i*1024+k] += 1
			}
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.For(p.Threads(), 1, fn)
	}
}

// BenchmarkPoolForGap is BenchmarkPoolFor with about 30 µs of work on the
// caller alone between loops, as a forward pass has between its matrix
// products (norms, attention): long enough for idle workers to park.
func BenchmarkPoolForGap(b *testing.B) {
	for _, spin := range []time.Duration{0, 5 * time.Microsecond, 50 * time.Microsecond} {
		for _, cs := range []bool{false, true} {
			b.Run(fmt.Sprintf("spin=%v/caller=%v", spin, cs), func(b *testing.B) {
				old, oldC := spinTime, callerSpin
				spinTime, callerSpin = spin, cs
				defer func() { spinTime, callerSpin = old, oldC }()
				benchPoolForGap(b)
			})
		}
	}
}

func benchPoolForGap(b *testing.B) {
	p := NewPool(0)
	defer p.Close()
	work := make([]float32, 1024*p.Threads())
	fn := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			for k := range 1024 {
				work[i*1024+k] += 1
			}
		}
	}
	gap := make([]float32, 16384)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.For(p.Threads(), 1, fn)
		b.StopTimer()
		for r := 0; r < 4; r++ {
			for k := range gap {
				gap[k] = gap[k]*0.5 + 1
			}
		}
		b.StartTimer()
	}
}
