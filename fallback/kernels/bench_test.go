package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"qinfer/host/backend"
)

// BenchmarkMatMul runs the shapes of a 168M llama (dim 1024, ffn 2816):
// one token (decode, bandwidth-bound: GB/s of weights) and 128 tokens
// (prompt, compute-bound: GOPS, 2 per multiply-add). Weight data is random
// (speed does not depend on values).
func BenchmarkMatMul(b *testing.B) {
	formats := []backend.DType{backend.Q8_0, backend.Q4_0, backend.Q4_K, backend.Q5_K, backend.Q6_K, backend.F16, backend.F32}
	shapes := [][2]int{{2816, 1024}, {1024, 2816}}
	p := NewPool(0)
	defer p.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, wt := range formats {
		for _, ntok := range []int{1, 128} {
			for _, sh := range shapes {
				rows, cols := sh[0], sh[1]
				mode := "gemv"
				if ntok > 1 {
					mode = fmt.Sprintf("gemm%d", ntok)
				}
				b.Run(fmt.Sprintf("%v/%s/%dx%d", wt, mode, rows, cols), func(b *testing.B) {
					w := unitWeights(b, rng, wt, rows, cols, false)
					x := unitActs(b, rng, wt, ntok, cols, 100)
					dst := make([]float32, rows*ntok)
					if err := MatMul(p, wt, w, rows, cols, x, ntok, dst, rows); err != nil {
						b.Fatal(err)
					}
					b.SetBytes(int64(len(w)))
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						_ = MatMul(p, wt, w, rows, cols, x, ntok, dst, rows)
					}
					sec := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(float64(len(w))/sec/1e9, "GB/s")
					b.ReportMetric(2*float64(rows)*float64(cols)*float64(ntok)/sec/1e9, "GOPS")
				})
			}
		}
	}
}
