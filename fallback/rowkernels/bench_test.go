package rowkernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"qinfer/fallback/kernels"
	"qinfer/host/backend"
	"qinfer/host/quant"
)

// Benchmarks use the shapes of a 168M llama (dim 1024, ffn 2816), as
// fallback/kernels does. A matrix-vector product is bandwidth-bound, so
// its weights rotate among copies together larger than the last-level
// cache (300 MB on this project's machines); GB/s is weight bytes read.
// The 128-token products are compute-bound: GOPS counts 2 per
// multiply-add. Activation quantization is timed separately.

const rotateBytes = 400 << 20

func BenchmarkMatMul(b *testing.B) {
	p := kernels.NewPool(0)
	defer p.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, typ := range quant.RowFormats {
		for _, ntok := range []int{1, 128} {
			for _, sh := range [][2]int{{2816, 1024}, {1024, 2816}} {
				rows, cols := sh[0], sh[1]
				mode := "gemv"
				if ntok > 1 {
					mode = fmt.Sprintf("gemm%d", ntok)
				}
				b.Run(fmt.Sprintf("%v/%s/%dx%d", typ, mode, rows, cols), func(b *testing.B) {
					benchMatMul(b, p, rng, typ, rows, cols, ntok)
				})
			}
		}
	}
}

func benchMatMul(b *testing.B, p *kernels.Pool, rng *rand.Rand, typ backend.DType, rows, cols, ntok int) {
	m, w := testMatrix(b, rng, typ, rows, cols, 0)
	sets := []*Matrix{m}
	if ntok == 1 {
		for n := len(w.Data); n < rotateBytes; n += len(w.Data) {
			c := *w
			c.Data = append([]byte(nil), w.Data...)
			mc, err := NewMatrix(&c)
			if err != nil {
				b.Fatal(err)
			}
			sets = append(sets, mc)
		}
	}
	x := randFloats(rng, ntok*cols, 1)
	var a Acts
	if err := QuantizeActs(p, x, cols, ntok, cols, 0, &a); err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, ntok*rows)
	for _, s := range sets { // first-use work (W8 row sums) out of the timing
		if err := MatMul(p, s, &a, dst, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := MatMul(p, sets[i%len(sets)], &a, dst, rows); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(len(w.Data))/sec/1e9, "GB/s")
	b.ReportMetric(2*float64(rows)*float64(cols)*float64(ntok)/sec/1e9, "GOPS")
}

func BenchmarkQuantizeActs(b *testing.B) {
	p := kernels.NewPool(0)
	defer p.Close()
	rng := rand.New(rand.NewPCG(2, 2))
	for _, ntok := range []int{1, 128} {
		for _, cols := range []int{1024, 2816} {
			b.Run(fmt.Sprintf("%dx%d", ntok, cols), func(b *testing.B) {
				x := randFloats(rng, ntok*cols, 1)
				var a Acts
				for i := 0; i < b.N; i++ {
					if err := QuantizeActs(p, x, cols, ntok, cols, 0, &a); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(4*len(x))/(b.Elapsed().Seconds()/float64(b.N))/1e9, "GB/s")
			})
		}
	}
}

// BenchmarkMatMulSplit times W8 products with a thirty-second of the
// columns split off (the quantizer's default cap) against none, 128
// tokens, the side product included. One matrix, no rotation: this
// measures the compute the split adds, not bandwidth.
func BenchmarkMatMulSplit(b *testing.B) {
	p := kernels.NewPool(0)
	defer p.Close()
	rng := rand.New(rand.NewPCG(3, 3))
	for _, sh := range [][2]int{{2816, 1024}, {1024, 2816}} {
		rows, cols := sh[0], sh[1]
		for _, k := range []int{0, cols / 32} {
			for _, ntok := range []int{1, 128} {
				b.Run(fmt.Sprintf("%dx%d/k%d/tok%d", rows, cols, k, ntok), func(b *testing.B) {
					var ocols []int32
					if k > 0 {
						ocols = randCols(rng, cols, k)
					}
					m, _ := splitMatrix(b, rng, backend.W8, rows, cols, ocols, 0)
					x := randFloats(rng, ntok*cols, 1)
					var a Acts
					dst := make([]float32, ntok*rows)
					for i := 0; i < b.N; i++ {
						if err := QuantizeActsSplit(p, x, cols, ntok, cols, 0, m.OutlierCols(), &a); err != nil {
							b.Fatal(err)
						}
						if err := MatMul(p, m, &a, dst, rows); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
