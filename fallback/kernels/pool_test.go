package kernels

import (
	"sync"
	"sync/atomic"
	"testing"

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

func TestPoolForNoAllocs(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	var sink atomic.Int64
	fn := func(lo, hi int) { sink.Add(int64(hi - lo)) }
	allocs := testing.AllocsPerRun(100, func() { p.For(1000, 1, fn) })
	assert.Zero(t, allocs)
	assert.Equal(t, int64(101*1000), sink.Load())
}
