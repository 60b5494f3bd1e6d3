package kernels

import (
	"fmt"
	"testing"
)

// BenchmarkReadBandwidth streams a buffer far larger than the last-level
// cache (this machine's L3 is 300 MB) with 1 and 2 threads: the read
// bandwidth that the decode target (85% of it) is measured against.
// Run with -benchtime=3x; it allocates 1.5 GB.
func BenchmarkReadBandwidth(b *testing.B) {
	if testing.Short() {
		b.Skip("allocates 1.5 GB")
	}
	const size = 1536 << 20
	buf := make([]uint64, size/8)
	for i := range buf {
		buf[i] = uint64(i)
	}
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			p := NewPool(threads)
			defer p.Close()
			sums := make([]uint64, len(buf)/(1<<16)+1)
			b.SetBytes(size)
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				p.For(len(sums), 1, func(lo, hi int) {
					for c := lo; c < hi; c++ {
						sums[c] = sumWords(buf[c<<16 : min((c+1)<<16, len(buf))])
					}
				})
			}
		})
	}
}

// sumWords reads every word with eight independent chains, so the loop is
// limited by memory, not by the adds' latency.
func sumWords(x []uint64) uint64 {
	var s0, s1, s2, s3, s4, s5, s6, s7 uint64
	i := 0
	for ; i+8 <= len(x); i += 8 {
		s0 += x[i]
		s1 += x[i+1]
		s2 += x[i+2]
		s3 += x[i+3]
		s4 += x[i+4]
		s5 += x[i+5]
		s6 += x[i+6]
		s7 += x[i+7]
	}
	for ; i < len(x); i++ {
		s0 += x[i]
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}
