package vecmath

import (
	"math"
	"math/rand/v2"
	"testing"
)

// benchBoth runs f as sub-benchmarks with the assembly on and off.
func benchBoth(b *testing.B, bytes int64, f func()) {
	saved := useAVX2
	defer func() { useAVX2 = saved }()
	for _, c := range []struct {
		name string
		on   bool
	}{{"simd", true}, {"generic", false}} {
		if c.on && !hasSIMD() {
			continue
		}
		b.Run(c.name, func(b *testing.B) {
			useAVX2 = c.on
			b.SetBytes(bytes)
			for b.Loop() {
				f()
			}
		})
	}
}

func BenchmarkSoftmax128(b *testing.B) {
	x := randVals(rand.New(rand.NewPCG(1, 1)), 128, 4, false)
	y := make([]float32, len(x))
	benchBoth(b, 4*128, func() { Softmax(y, x, true) })
}

func BenchmarkSiLUMul2816(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	x, u := randVals(rng, 2816, 4, false), randVals(rng, 2816, 1, false)
	y := make([]float32, len(x))
	benchBoth(b, 4*2816, func() { SiLUMul(y, x, u) })
}

func BenchmarkRoundF16_64(b *testing.B) {
	x := randVals(rand.New(rand.NewPCG(3, 3)), 64, 4, false)
	y := make([]float32, len(x))
	benchBoth(b, 4*64, func() { RoundF16(y, x) })
}

// The attention shapes of the 168M test model: head dimension 64, 128
// positions, 16 KV heads (stride 1024).
func BenchmarkDotsF16(b *testing.B) {
	rng := rand.New(rand.NewPCG(4, 4))
	const n, hd, stride = 128, 64, 1024
	k := halfRows(rng, n, hd, stride, 1)
	q := randVals(rng, hd, 1, false)
	RoundF16(q, q)
	dst := make([]float32, n)
	b.Run("tiny", func(b *testing.B) { benchBoth(b, 2*n*hd, func() { DotsF16(dst, k, stride, q, 0.125, true) }) })
	b.Run("vec", func(b *testing.B) { benchBoth(b, 2*n*hd, func() { DotsF16(dst, k, stride, q, 0.125, false) }) })
}

func BenchmarkAxpyLanesF16(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 5))
	const n, hd, stride = 128, 64, 1024
	v := halfRows(rng, n, hd, stride, 1)
	p := randVals(rng, n, 0.1, false)
	RoundF16(p, p)
	for _, lanes := range []int{8, 32} {
		acc := make([]float32, lanes*hd)
		b.Run(map[int]string{8: "lanes8", 32: "lanes32"}[lanes], func(b *testing.B) {
			benchBoth(b, 2*n*hd, func() { AxpyLanesF16(acc, lanes, v, stride, p, hd) })
		})
	}
}

func BenchmarkReduceLanes(b *testing.B) {
	rng := rand.New(rand.NewPCG(6, 6))
	const hd = 64
	out := make([]float32, hd)
	for _, lanes := range []int{8, 32} {
		acc := randVals(rng, lanes*hd, 1, false)
		b.Run(map[int]string{8: "lanes8", 32: "lanes32"}[lanes], func(b *testing.B) {
			benchBoth(b, int64(4*lanes*hd), func() { ReduceLanes(out, acc, lanes) })
		})
	}
}

func BenchmarkRotatePairs(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 7))
	x := randVals(rng, 1024, 1, false)
	cache := make([]float32, 64)
	for i := 0; i < len(cache); i += 2 {
		// A true rotation: repeated calls neither grow x nor shrink it
		// into subnormals, which would time microcode assists.
		a := rng.Float64() * 10
		cache[i], cache[i+1] = float32(math.Cos(a)), float32(math.Sin(a))
	}
	benchBoth(b, 4*1024, func() { RotatePairs(x, cache) })
}
