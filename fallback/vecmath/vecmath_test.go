package vecmath

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/quant"
)

// withBoth runs f with the assembly switched on (where the CPU has it)
// and with the pure-Go reference, and returns both results.
func withBoth[T any](t *testing.T, f func() T) (simd, ref T) {
	t.Helper()
	saved := useAVX2
	defer func() { useAVX2 = saved }()
	useAVX2 = hasSIMD()
	simd = f()
	useAVX2 = false
	ref = f()
	return simd, ref
}

// requireSameBits compares float32 slices bit for bit, except that any
// two NaNs are equal: the sign and payload of a NaN made by arithmetic
// (x86's default NaN is negative, Go's math package's positive) carry no
// meaning, and the F16 conversions, where NaN payloads are data, are
// compared bit for bit in TestF16AllInputs.
func requireSameBits(t *testing.T, want, got []float32, what string) {
	t.Helper()
	require.Len(t, got, len(want), what)
	for i := range want {
		if want[i] != want[i] && got[i] != got[i] {
			continue
		}
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			require.Failf(t, "bits differ", "%s[%d]: reference %v (%#08x), simd %v (%#08x)", what, i,
				want[i], math.Float32bits(want[i]), got[i], math.Float32bits(got[i]))
		}
	}
}

// edgeVals are inputs at the limits of v_expf's fast and slow paths and of
// F16's range, mixed into the random ones.
var edgeVals = []float32{
	0, float32(math.Copysign(0, -1)), 1, -1, 87.3, 88.7, 89, -87.3, -88, -103, -104, 125, 126.5, 127, -126.5,
	-127, 150, -150, 192.5, -192.5, 200, -200, 1e30, -1e30, float32(math.Inf(1)), float32(math.Inf(-1)),
	65504, 65519.99, 65520, -65520, 0x1p-14, 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-26, 6e-8, 1e-45, -1e-45,
	0x1.002p0, 0x1.003p0, 0x1.001p0, 2049, 2051,
}

func randVals(rng *rand.Rand, n int, scale float32, edges bool) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64()) * scale
		if edges && rng.IntN(4) == 0 {
			x[i] = edgeVals[rng.IntN(len(edgeVals))]
		}
	}
	return x
}

// TestVExpfAccuracy checks the scalar reference itself against math.Exp
// within ggml's documented error (1.45 ulp + 0.5) over the normal range.
func TestVExpfAccuracy(t *testing.T) {
	for x := float32(-87); x < 88; x += 0.0137 {
		want := math.Exp(float64(x))
		got := float64(VExpf(x))
		require.InDelta(t, 0, (got-want)/(want*0x1p-23), 2, "VExpf(%v)", x)
	}
	require.Equal(t, float32(0), VExpf(float32(math.Inf(-1))))
	require.True(t, math.IsInf(float64(VExpf(200)), 1))
}

func TestSoftmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 3, 7, 8, 9, 31, 32, 33, 100, 257} {
		for _, padded := range []bool{false, true} {
			for _, scale := range []float32{0.5, 8, 200} {
				x := randVals(rng, n, scale, false)
				simd, ref := withBoth(t, func() []float32 {
					y := make([]float32, n)
					Softmax(y, x, padded)
					return y
				})
				what := fmt.Sprintf("softmax n=%d padded=%v scale=%v", n, padded, scale)
				requireSameBits(t, ref, simd, what)
				// Independent check: the probabilities of exp(x-max)/sum.
				m := math.Inf(-1)
				for _, v := range x {
					m = math.Max(m, float64(v))
				}
				var s float64
				for _, v := range x {
					s += math.Exp(float64(v) - m)
				}
				for i, v := range x {
					require.InDelta(t, math.Exp(float64(v)-m)/s, float64(ref[i]), 1e-6, "%s[%d]", what, i)
				}
			}
		}
	}
}

// TestSoftmaxEdges feeds the exponential its slow-path inputs (results
// that over- and underflow, infinities) and NaNs: the kernels must still
// agree bit for bit.
func TestSoftmaxEdges(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(70)
		x := randVals(rng, n, 100, true)
		sub := edgeVals[rng.IntN(len(edgeVals))]
		nb := n &^ 7
		simd, ref := withBoth(t, func() []float32 {
			y := make([]float32, nb+1)
			y[nb] = float32(expSum(y[:nb], x[:nb], sub))
			return y
		})
		requireSameBits(t, ref, simd, fmt.Sprintf("expSum n=%d sub=%v", nb, sub))
		simd, ref = withBoth(t, func() []float32 {
			y := make([]float32, n)
			Softmax(y, x, trial%2 == 0)
			return y
		})
		requireSameBits(t, ref, simd, fmt.Sprintf("softmax edges n=%d", n))
	}
}

func TestSiLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 7, 8, 15, 64, 1001} {
		for _, edges := range []bool{false, true} {
			x := randVals(rng, n, 4, edges)
			u := randVals(rng, n, 2, edges)
			simd, ref := withBoth(t, func() []float32 {
				y := make([]float32, n)
				SiLU(y, x)
				return y
			})
			requireSameBits(t, ref, simd, fmt.Sprintf("silu n=%d", n))
			if !edges {
				for i, v := range x {
					want := float64(v) / (1 + math.Exp(-float64(v)))
					require.InDelta(t, want, float64(ref[i]), 1e-6*(1+math.Abs(want)), "silu(%v)", v)
				}
			}
			simd, ref = withBoth(t, func() []float32 {
				y := make([]float32, n)
				SiLUMul(y, x, u)
				return y
			})
			requireSameBits(t, ref, simd, fmt.Sprintf("silumul n=%d", n))
			// In place over the gate, as the backend may call it.
			simd, ref = withBoth(t, func() []float32 {
				y := append([]float32(nil), x...)
				SiLUMul(y, y, u)
				return y
			})
			requireSameBits(t, ref, simd, fmt.Sprintf("silumul in place n=%d", n))
		}
	}
}

// TestF16AllInputs converts every float32 whose low 13 bits take a few
// values around the rounding boundary (all exponents, both signs, NaN,
// Inf and subnormal) and a random sample of the rest, comparing the
// kernels with quant.FP32ToFP16, the bitwise reference.
func TestF16AllInputs(t *testing.T) {
	var x []float32
	for hi := uint32(0); hi < 1<<19; hi++ {
		for _, lo := range []uint32{0, 1, 0xfff, 0x1000, 0x1001, 0x1fff} {
			x = append(x, math.Float32frombits(hi<<13|lo))
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 1<<16; i++ {
		x = append(x, math.Float32frombits(rng.Uint32()))
	}
	if testing.Short() {
		x = x[:len(x)/4]
	}
	x = append(x, 1, 2, 3) // a tail past the last block of 8
	saved := useAVX2
	defer func() { useAVX2 = saved }()
	for _, on := range []bool{false, hasSIMD()} {
		useAVX2 = on
		h := make([]uint16, len(x))
		ToF16(h, x)
		r := make([]float32, len(x))
		RoundF16(r, x)
		for i, v := range x {
			want := quant.FP32ToFP16(v)
			if h[i] != want {
				require.Failf(t, "ToF16", "simd=%v: %#08x -> %#04x, want %#04x", on, math.Float32bits(v), h[i], want)
			}
			if w := quant.FP16ToFP32(want); math.Float32bits(w) != math.Float32bits(r[i]) {
				require.Failf(t, "RoundF16", "simd=%v: %#08x -> %#08x, want %#08x", on, math.Float32bits(v),
					math.Float32bits(r[i]), math.Float32bits(w))
			}
		}
	}
}

// halfRows returns n rows of hd halves stride apart, with random values.
func halfRows(rng *rand.Rand, n, hd, stride int, scale float32) []uint16 {
	k := make([]uint16, (n-1)*stride+hd)
	for i := range k {
		k[i] = quant.FP32ToFP16(float32(rng.NormFloat64()) * scale)
	}
	return k
}

// TestDotsF16 compares the two dot orders with the switch on and off, and
// the reference with a float64 dot (the F16 products are exact).
func TestDotsF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, hd := range []int{8, 24, 32, 40, 64, 96, 128} {
		for _, n := range []int{1, 5, 33} {
			stride := hd + 8*rng.IntN(3)
			k := halfRows(rng, n, hd, stride, 1)
			q := randVals(rng, hd, 2, false)
			RoundF16(q, q)
			for _, tiny := range []bool{true, false} {
				simd, ref := withBoth(t, func() []float32 {
					dst := make([]float32, n)
					DotsF16(dst, k, stride, q, 0.125, tiny)
					return dst
				})
				what := fmt.Sprintf("dots hd=%d n=%d tiny=%v", hd, n, tiny)
				requireSameBits(t, ref, simd, what)
				for j := 0; j < n; j++ {
					var want float64
					for i := 0; i < hd; i++ {
						want += float64(quant.FP16ToFP32(k[j*stride+i])) * float64(q[i])
					}
					require.InDelta(t, want*0.125, float64(ref[j]), 1e-5*float64(hd), "%s row %d", what, j)
				}
			}
		}
	}
}

// TestDotOrders pins the two summation orders with values whose float
// sums depend on the order: lane i%8 (tiny) versus accumulator (i/8)%4.
func TestDotOrders(t *testing.T) {
	hd := 64
	q := make([]float32, hd)
	k := make([]uint16, hd)
	for i := range q {
		q[i] = 1
		k[i] = quant.FP32ToFP16(float32(1 + i%7))
	}
	k[0] = quant.FP32ToFP16(4096) // large first term: later small ones round away in one lane order only
	k[9] = quant.FP32ToFP16(-4096)
	var tinyAcc [8]float32
	var vecAcc [32]float32
	for i := range q {
		v := quant.FP16ToFP32(k[i])
		tinyAcc[i%8] += v
		vecAcc[i%32] += v
	}
	for _, on := range []bool{false, hasSIMD()} {
		saved := useAVX2
		useAVX2 = on
		d := make([]float32, 2)
		DotsF16(d[:1], k, hd, q, 1, true)
		DotsF16(d[1:], k, hd, q, 1, false)
		useAVX2 = saved
		require.Equal(t, Hsum8(&tinyAcc), d[0], "tiny, simd=%v", on)
		require.Equal(t, Reduce32(&vecAcc), d[1], "vec, simd=%v", on)
	}
}

// TestAxpyLanesF16 accumulates random half rows and compares with the
// switch on and off, and ReduceLanes with a float64 sum.
func TestAxpyLanesF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, hd := range []int{4, 8, 64, 72} {
		for _, lanes := range []int{8, 32} {
			n := 1 + rng.IntN(100)
			stride := hd + 4*rng.IntN(3)
			v := halfRows(rng, n, hd, stride, 1)
			p := randVals(rng, n, 0.3, false)
			RoundF16(p, p)
			init := randVals(rng, lanes*hd, 0.1, false)
			RoundF16(init, init)
			simd, ref := withBoth(t, func() []float32 {
				acc := append([]float32(nil), init...)
				AxpyLanesF16(acc, lanes, v, stride, p, hd)
				return acc
			})
			what := fmt.Sprintf("axpy hd=%d lanes=%d n=%d", hd, lanes, n)
			requireSameBits(t, ref, simd, what)
			out := make([]float32, hd)
			ReduceLanes(out, ref, lanes)
			for i := 0; i < hd; i++ {
				want := 0.0
				for l := 0; l < lanes; l++ {
					want += float64(init[l*hd+i])
				}
				for j := 0; j < n; j++ {
					want += float64(quant.FP16ToFP32(v[j*stride+i])) * float64(p[j])
				}
				require.InDelta(t, want, float64(out[i]), 1e-5*float64(n+lanes), "%s out %d", what, i)
			}
		}
	}
}

// TestReduceLanesOrder checks the lane-major reduction against Hsum8 and
// Reduce32 applied to each output's lanes gathered into an array.
func TestReduceLanesOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	saved := useAVX2
	defer func() { useAVX2 = saved }()
	for _, c := range []struct {
		hd, lanes int
		simd      bool
	}{{16, 8, true}, {16, 32, true}, {64, 32, true}, {12, 8, true}, {16, 8, false}, {20, 32, false}} {
		useAVX2 = c.simd && hasSIMD()
		hd, lanes := c.hd, c.lanes
		acc := randVals(rng, lanes*hd, 1e4, false)
		for i := range acc {
			acc[i] *= float32(math.Ldexp(1, rng.IntN(30)-15)) // wide exponents make the order matter
		}
		out := make([]float32, hd)
		ReduceLanes(out, acc, lanes)
		for i := 0; i < hd; i++ {
			if lanes == 8 {
				var a [8]float32
				for l := range a {
					a[l] = acc[l*hd+i]
				}
				require.Equal(t, Hsum8(&a), out[i], "hd %d lanes 8 simd %v", hd, useAVX2)
			} else {
				var a [32]float32
				for l := range a {
					a[l] = acc[l*hd+i]
				}
				require.Equal(t, Reduce32(&a), out[i], "hd %d lanes 32 simd %v", hd, useAVX2)
			}
		}
	}
}

// TestRoPE rotates random heads in both modes with the switch on and off,
// and checks the reference against a float64 rotation.
func TestRoPE(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, hd := range []int{6, 8, 16, 24, 64, 128} {
		heads := 1 + rng.IntN(5)
		x := randVals(rng, heads*hd, 3, false)
		cache := make([]float32, hd)
		for i := 0; i < hd; i += 2 {
			a := rng.Float64() * 50
			cache[i], cache[i+1] = float32(math.Cos(a)), float32(math.Sin(a))
		}
		simd, ref := withBoth(t, func() []float32 {
			y := append([]float32(nil), x...)
			RotatePairs(y, cache)
			return y
		})
		requireSameBits(t, ref, simd, fmt.Sprintf("pairs hd=%d", hd))
		for i := 0; i < len(x); i += 2 {
			cs, sn := float64(cache[i%hd]), float64(cache[i%hd+1])
			x0, x1 := float64(x[i]), float64(x[i+1])
			require.InDelta(t, x0*cs-x1*sn, float64(ref[i]), 1e-5)
			require.InDelta(t, x0*sn+x1*cs, float64(ref[i+1]), 1e-5)
		}

		half := hd / 2
		cos, sin := make([]float32, half), make([]float32, half)
		for i := range cos {
			cos[i], sin[i] = cache[2*i], cache[2*i+1]
		}
		simd, ref = withBoth(t, func() []float32 {
			y := append([]float32(nil), x...)
			RotateHalves(y, cos, sin)
			return y
		})
		requireSameBits(t, ref, simd, fmt.Sprintf("halves hd=%d", hd))
		for h := 0; h < heads; h++ {
			for i := 0; i < half; i++ {
				x0, x1 := float64(x[h*hd+i]), float64(x[h*hd+i+half])
				cs, sn := float64(cos[i]), float64(sin[i])
				require.InDelta(t, x0*cs-x1*sn, float64(ref[h*hd+i]), 1e-5)
				require.InDelta(t, x0*sn+x1*cs, float64(ref[h*hd+i+half]), 1e-5)
			}
		}
	}
}
