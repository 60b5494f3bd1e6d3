package kernels

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

// TestFMA32 checks fma32 against a*b+c computed exactly with math/big and
// rounded once, on random operands and on ones built so that a*b+c falls
// near a float32 rounding boundary (where rounding twice, to float64 and
// then to float32, would go wrong).
func TestFMA32(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	exact := func(a, b, c float32) float32 {
		x := new(big.Float).SetPrec(200).SetFloat64(float64(a))
		x.Mul(x, new(big.Float).SetPrec(200).SetFloat64(float64(b)))
		x.Add(x, new(big.Float).SetPrec(200).SetFloat64(float64(c)))
		f, _ := x.Float32()
		return f
	}
	rnd := func() float32 {
		return float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-20)))
	}
	for i := 0; i < 200000; i++ {
		a, b, c := rnd(), rnd(), rnd()
		if i%2 == 1 {
			// c cancels most of a*b: the result keeps the product's low bits.
			c = -float32(float64(a) * float64(b))
			c = math.Float32frombits(math.Float32bits(c) + uint32(rng.IntN(3)) - 1)
		}
		want := exact(a, b, c)
		got := fma32(a, b, c)
		require.Equal(t, math.Float32bits(want), math.Float32bits(got), "fma32(%g, %g, %g)", a, b, c)
	}
	// a*b exactly halfway between two float32, plus a c far below it.
	for i := 0; i < 20000; i++ {
		a := float32(1 + rng.IntN(1<<12))
		b := float32(1<<12 + 2*rng.IntN(1<<11) + 1)
		c := float32(math.Ldexp(float64(rng.IntN(3)-1), -40))
		want := exact(a, b, c)
		require.Equal(t, math.Float32bits(want), math.Float32bits(fma32(a, b, c)), "fma32(%g, %g, %g)", a, b, c)
	}
}

// TestMatMulLlamaOrder checks that every path (feature switches, GGUF or
// Prepared weights, any batch size) returns for Q8_0 and Q4_0 exactly the
// floats of llama.cpp's order (order.go), as the pure-Go row dot products
// compute it, on realistic data: bit for bit, not within a tolerance. The
// AVX2 kernels of the first round, which host/engine's parity tests
// showed equal to llama.cpp's logits, gave these same bits.
func TestMatMulLlamaOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	for _, wt := range []backend.DType{backend.Q8_0, backend.Q4_0} {
		rows, cols := 37, 1056
		rb, err := backend.RowBytes(wt, cols)
		require.NoError(t, err)
		w := make([]byte, rows*rb)
		require.NoError(t, quant.Quantize(wt, randFloats(rng, rows*cols, 0.05), w))
		xrb, err := ActRowBytes(wt, cols)
		require.NoError(t, err)
		const maxTok = 29
		xf := randFloats(rng, maxTok*cols, 2)
		x := make([]byte, maxTok*xrb)
		p := NewPool(2)
		require.NoError(t, QuantizeActs(p, wt, xf, cols, maxTok, cols, x))
		p.Close()
		want := make([]float32, maxTok*rows)
		nb := cols / qk
		for tk := 0; tk < maxTok; tk++ {
			for r := 0; r < rows; r++ {
				if wt == backend.Q8_0 {
					want[tk*rows+r] = dotQ8_0Generic(w[r*rb:], x[tk*xrb:], nb)
				} else {
					want[tk*rows+r] = dotQ4_0Generic(w[r*rb:], x[tk*xrb:], nb)
				}
			}
		}
		featureCases(t, func(t *testing.T) {
			p := NewPool(3)
			defer p.Close()
			for _, ntok := range []int{1, 2, 3, 4, 5, 12, 13, maxTok} {
				for l, got := range runMatMul(t, p, wt, w, rows, cols, x, ntok) {
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%v %s %d tokens: row %d token %d is %g, llama.cpp's order gives %g", wt, l, ntok, i%rows, i/rows, got[i], want[i])
						}
					}
				}
			}
		})
	}
}
