package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"qinfer/host/backend"
)

// Benchmarks use the shapes of a 168M llama (dim 1024, 8 layers, ffn 2816,
// vocab 32000). Matrix-vector products are bandwidth-bound, so their
// weights rotate among copies together larger than rotateBytes (several
// times the last-level cache: this project's machines have up to 300 MB
// of L3); the figures are GB/s of weights read. Prompt-sized products are
// compute-bound and report GOPS (2 per multiply-add). Weight values are
// random: speed does not depend on them.

const rotateBytes = 1 << 30

// weightSets returns n copies of one random rows x cols matrix of wt, n
// such that they total at least total bytes (one copy when total is 0).
func weightSets(b *testing.B, rng *rand.Rand, wt backend.DType, rows, cols, total int) [][]byte {
	w := unitWeights(b, rng, wt, rows, cols, false)
	n := max(1, (total+len(w)-1)/len(w))
	sets := make([][]byte, n)
	sets[0] = w
	for i := 1; i < n; i++ {
		sets[i] = append([]byte(nil), w...)
	}
	return sets
}

// BenchmarkMatMul runs one matrix at a time: one token (decode, GB/s) and
// 128 tokens (prompt, GOPS), on the GGUF layout (MatMul) and, for the
// formats with a panel layout, on Prepared weights (MatMulPacked).
func BenchmarkMatMul(b *testing.B) {
	benchFeatures(b, benchMatMuls)
}

func benchMatMuls(b *testing.B) {
	formats := []backend.DType{backend.Q8_0, backend.Q4_0, backend.Q4_K, backend.Q5_K, backend.Q6_K, backend.F16, backend.F32}
	shapes := [][2]int{{2816, 1024}, {1024, 2816}}
	p := NewPool(0)
	defer p.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, wt := range formats {
		for _, packed := range []bool{false, true} {
			if packed && panelQBytes(wt) == 0 {
				continue
			}
			lay := "gguf"
			if packed {
				lay = "packed"
			}
			for _, ntok := range []int{1, 128} {
				for _, sh := range shapes {
					rows, cols := sh[0], sh[1]
					mode := "gemv"
					if ntok > 1 {
						mode = fmt.Sprintf("gemm%d", ntok)
					}
					b.Run(fmt.Sprintf("%v/%s/%s/%dx%d", wt, lay, mode, rows, cols), func(b *testing.B) {
						benchMatMul(b, p, rng, wt, packed, rows, cols, ntok)
					})
				}
			}
		}
	}
}

func benchMatMul(b *testing.B, p *Pool, rng *rand.Rand, wt backend.DType, packed bool, rows, cols, ntok int) {
	total := 0
	if ntok == 1 && rows*cols > 1<<20 {
		total = rotateBytes
	}
	sets := weightSets(b, rng, wt, rows, cols, total)
	run := make([]func() error, len(sets))
	x := unitActs(b, rng, wt, ntok, cols, 100)
	dst := make([]float32, rows*ntok)
	for i, w := range sets {
		if packed {
			pw, err := Prepare(wt, w, rows, cols)
			if err != nil {
				b.Fatal(err)
			}
			sets[i] = nil // only the packed copy stays resident
			run[i] = func() error { return MatMulPacked(p, pw, x, ntok, dst, rows) }
		} else {
			run[i] = func() error { return MatMul(p, wt, w, rows, cols, x, ntok, dst, rows) }
		}
	}
	runtime.GC()
	for _, r := range run {
		if err := r(); err != nil {
			b.Fatal(err)
		}
	}
	wb, _ := backend.RowBytes(wt, cols)
	b.SetBytes(int64(rows * wb))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = run[i%len(run)]()
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(rows*wb)/sec/1e9, "GB/s")
	b.ReportMetric(2*float64(rows)*float64(cols)*float64(ntok)/sec/1e9, "GOPS")
}

// BenchmarkDecodeStep runs the 57 matrix-vector products of one decode
// step of the 168M llama (8 layers of q, k, v, o, gate, up, down, then the
// output matrix) back to back with the quantization of their inputs, as a
// forward pass issues them, rotating among copies of the model larger
// than the cache. It measures the kernels and the pool's wake-ups
// together; GB/s is of weights read.
func BenchmarkDecodeStep(b *testing.B) {
	benchFeatures(b, benchDecodeStep)
}

func benchDecodeStep(b *testing.B) {
	const dim, ffn, vocab, layers = 1024, 2816, 32000, 8
	type mat struct{ rows, cols int }
	var step []mat
	for l := 0; l < layers; l++ {
		step = append(step, mat{dim, dim}, mat{dim, dim}, mat{dim, dim}, mat{dim, dim}, mat{ffn, dim}, mat{ffn, dim}, mat{dim, ffn})
	}
	step = append(step, mat{vocab, dim})
	p := NewPool(0)
	defer p.Close()
	rng := rand.New(rand.NewPCG(2, 2))
	for _, wt := range []backend.DType{backend.Q8_0, backend.Q4_0} {
		for _, packed := range []bool{false, true} {
			lay := "gguf"
			if packed {
				lay = "packed"
			}
			b.Run(fmt.Sprintf("%v/%s", wt, lay), func(b *testing.B) {
				// One random matrix per shape, copied: values do not matter.
				proto := map[mat][]byte{}
				stepBytes := 0
				for _, m := range step {
					if proto[m] == nil {
						proto[m] = unitWeights(b, rng, wt, m.rows, m.cols, false)
					}
					stepBytes += len(proto[m])
				}
				copies := max(1, (rotateBytes+stepBytes-1)/stepBytes)
				// Each product quantizes its input first, as the backend
				// does: that is one more parallel loop per product.
				xf := randFloats(rng, ffn, 1)
				xrb, err := ActRowBytes(wt, ffn)
				if err != nil {
					b.Fatal(err)
				}
				xq := make([]byte, xrb)
				dst := make([]float32, vocab)
				var run []func() error
				for c := 0; c < copies; c++ {
					for _, m := range step {
						w := append([]byte(nil), proto[m]...)
						quantize := func() error { return QuantizeActs(p, wt, xf, m.cols, 1, m.cols, xq) }
						if packed {
							pw, err := Prepare(wt, w, m.rows, m.cols)
							if err != nil {
								b.Fatal(err)
							}
							run = append(run, func() error {
								if err := quantize(); err != nil {
									return err
								}
								return MatMulPacked(p, pw, xq, 1, dst, m.rows)
							})
						} else {
							run = append(run, func() error {
								if err := quantize(); err != nil {
									return err
								}
								return MatMul(p, wt, w, m.rows, m.cols, xq, 1, dst, m.rows)
							})
						}
					}
				}
				proto = nil
				runtime.GC()
				// The pool's spin-wait matters here: dozens of short
				// parallel loops per step.
				for _, spin := range []time.Duration{0, 50 * time.Microsecond} {
					b.Run(fmt.Sprintf("spin=%v", spin), func(b *testing.B) {
						old := spinTime
						spinTime = spin
						defer func() { spinTime = old }()
						b.SetBytes(int64(stepBytes))
						for i := 0; i < b.N; i++ {
							c := i % copies
							for _, r := range run[c*len(step) : (c+1)*len(step)] {
								if err := r(); err != nil {
									b.Fatal(err)
								}
							}
						}
						sec := b.Elapsed().Seconds() / float64(b.N)
						b.ReportMetric(float64(stepBytes)/sec/1e9, "GB/s")
						b.ReportMetric(1/sec, "steps/s")
					})
				}
			})
		}
	}
}
