package kernels

import (
	"fmt"
	"testing"
)

// BenchmarkReadBandwidth streams a buffer with 1 and 2 threads: the read
// bandwidth that the decode target (85% of it) is measured against. Two
// sizes: 1.5 GB, far larger than the last-level cache (this machine's L3
// is 300 MB), as a TinyLlama-sized model's weights are, and 176 MB, the
// weights of the 168M-parameter benchmark model in Q8_0, which stay in
// that L3 from one token to the next. "go" is a plain Go loop over uint64
// words, which may not saturate memory; "avx2" (amd64) only loads, 32
// bytes at a time, so that the instructions cannot be what limits it. Run
// with -benchtime=3x; it allocates 1.5 GB.
func BenchmarkReadBandwidth(b *testing.B) {
	if testing.Short() {
		b.Skip("allocates 1.5 GB")
	}
	for _, size := range []int{176 << 20, 1536 << 20} {
		b.Run(fmt.Sprintf("size=%dMB", size>>20), func(b *testing.B) { benchRead(b, size) })
	}
}

func benchRead(b *testing.B, size int) {
	buf := make([]uint64, size/8)
	for i := range buf {
		buf[i] = uint64(i)
	}
	readers := []struct {
		name string
		read func([]uint64) uint64
	}{{"go", sumWords}, {"avx2", streamRead}}
	for _, r := range readers {
		if r.read == nil {
			continue
		}
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", r.name, threads), func(b *testing.B) {
				p := NewPool(threads)
				defer p.Close()
				sums := make([]uint64, len(buf)/(1<<16)+1)
				b.SetBytes(int64(size))
				r.read(buf) // bring an L3-sized buffer into the cache first
				b.ResetTimer()
				for n := 0; n < b.N; n++ {
					p.For(len(sums), 1, func(lo, hi int) {
						for c := lo; c < hi; c++ {
							sums[c] = r.read(buf[c<<16 : min((c+1)<<16, len(buf))])
						}
					})
				}
				b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
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
