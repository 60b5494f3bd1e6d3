package quant

import (
	"math/rand/v2"
	"testing"

	"qinfer/host/backend"
)

// Small benchmarks: the reference code is written for clarity, so these
// only track gross regressions (e.g. an allocation per block).

var benchTypes = []backend.DType{backend.Q8_0, backend.Q4_0, backend.Q4_K, backend.Q5_K, backend.Q6_K}

func BenchmarkDequantize(b *testing.B) {
	r := rand.New(rand.NewPCG(41, 42))
	const n = 4096
	for _, dt := range benchTypes {
		b.Run(dt.String(), func(b *testing.B) {
			rb, _ := rowBytes(dt, n)
			src := make([]byte, rb)
			if err := Quantize(dt, randNormal(r, n, 1), src); err != nil {
				b.Fatal(err)
			}
			dst := make([]float32, n)
			b.SetBytes(int64(rb))
			b.ReportAllocs()
			for b.Loop() {
				if err := Dequantize(dt, src, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVecDot(b *testing.B) {
	r := rand.New(rand.NewPCG(43, 44))
	const n = 4096
	for _, dt := range benchTypes {
		b.Run(dt.String(), func(b *testing.B) {
			rb, _ := rowBytes(dt, n)
			w := make([]byte, rb)
			if err := Quantize(dt, randNormal(r, n, 1), w); err != nil {
				b.Fatal(err)
			}
			act, _ := ActivationType(dt)
			xb, _ := rowBytes(act, n)
			x := make([]byte, xb)
			if err := QuantizeActivations(act, randNormal(r, n, 1), x); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(rb))
			for b.Loop() {
				if _, err := VecDot(dt, n, w, x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkQuantize(b *testing.B) {
	r := rand.New(rand.NewPCG(45, 46))
	const n = 4096
	x := randNormal(r, n, 1)
	for _, dt := range benchTypes {
		b.Run(dt.String(), func(b *testing.B) {
			rb, _ := rowBytes(dt, n)
			dst := make([]byte, rb)
			b.SetBytes(4 * n)
			b.ReportAllocs()
			for b.Loop() {
				if err := Quantize(dt, x, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
