package fallback

import (
	"math"
	"sync"

	"qinfer/host/quant"
)

// This file holds the scalar building blocks that reproduce the float
// arithmetic of llama.cpp's CPU backend (build 4748, x86-64 with AVX2, FMA
// and F16C, as on the project's reference machine), so that greedy tokens
// agree with llama.cpp's. Each function names the ggml code it follows.
//
// Go may fuse x*y+z into one FMA on some architectures (arm64, ppc64,
// s390x, amd64 with GOAMD64=v3); products that C rounds separately are
// therefore wrapped in float32(...), which the Go spec guarantees rounds.

// fma32 is a single-rounding float32 fused multiply-add (VFMADD*PS). The
// float64 FMA is exact up to one rounding to double; rounding that double
// again to float32 is correct unless it landed exactly on a float32
// midpoint (or in float32's subnormal range), which the slow path handles.
func fma32(a, b, c float32) float32 {
	s := math.FMA(float64(a), float64(b), float64(c))
	u := math.Float64bits(s)
	if u&(1<<29-1) != 1<<28 && (u>>52)&0x7ff >= 1023-126 {
		return float32(s)
	}
	return fma32Exact(a, b, c)
}

// fma32Exact rounds a*b+c to double with round-to-odd (exact product,
// TwoSum for the addition error), after which one rounding to float32 is
// correct: round-to-odd with at least two extra bits makes double rounding
// innocuous.
func fma32Exact(a, b, c float32) float32 {
	p := float64(a) * float64(b) // exact: 24+24 significant bits
	cc := float64(c)
	s := p + cc
	if s == 0 || math.IsInf(s, 0) || math.IsNaN(s) {
		return float32(s)
	}
	bv := s - p
	err := (p - (s - bv)) + (cc - bv)
	if u := math.Float64bits(s); err != 0 && u&1 == 0 {
		if (err > 0) == (s > 0) {
			u++ // away from zero, toward the exact value
		} else {
			u--
		}
		s = math.Float64frombits(u)
	}
	return float32(s)
}

// expf is C's expf; glibc's is correctly rounded in practice, as is
// rounding the double result.
func expf(x float32) float32 { return float32(math.Exp(float64(x))) }

// vExpf is one lane of ggml_v_expf, the AVX2+FMA exponential that ggml uses
// for softmax and SiLU in blocks of 8 (adapted from ARM's optimized
// routines; max error 1.45 ulp + 0.5). Matching it instead of expf keeps
// our probabilities bit-identical to llama.cpp's.
func vExpf(x float32) float32 {
	const r = 0x1.8p23
	z := fma32(x, 0x1.715476p+0, r)
	n := z - r
	b := fma32(-n, 0x1.7f7d1cp-20, fma32(-n, 0x1.62e4p-1, x))
	e := math.Float32bits(z) << 23
	k := math.Float32frombits(e + math.Float32bits(1))
	u := float32(b * b)
	j := fma32(fma32(fma32(0x1.0e4020p-7, b, 0x1.573e2ep-5), u, fma32(0x1.555e66p-3, b, 0x1.fffdb6p-2)),
		u, float32(0x1.ffffecp-1*b))
	an := abs32(n)
	if !(an > 126) {
		return fma32(j, k, k)
	}
	var g uint32
	if n <= 0 {
		g = 0x82000000
	}
	s1 := math.Float32frombits(g + 0x7f000000)
	s2 := math.Float32frombits(e - g)
	if an > 192 {
		return float32(s1 * s1)
	}
	return float32(fma32(s2, j, s2) * s1)
}

func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

// silu8 is ggml_v_silu: x / (1 + v_expf(-x)).
func silu8(x float32) float32 { return x / (1 + vExpf(0-x)) }

// siluScalar is ggml_silu_f32, used for the elements past the last full
// block of 8.
func siluScalar(x float32) float32 { return x / (1 + expf(-x)) }

// hsum8 is llamafile's hsum(__m256) and the horizontal sum in ggml's AVX2
// softmax: fold the high half onto the low half, then lanes 0+2 and 1+3,
// then those two.
func hsum8(v *[8]float32) float32 {
	h0, h1, h2, h3 := v[4]+v[0], v[5]+v[1], v[6]+v[2], v[7]+v[3]
	return (h0 + h2) + (h1 + h3)
}

// reduce32 is GGML_F32x8_REDUCE over ggml_vec_dot's four 8-lane
// accumulators (lane i of accumulator j at index 8j+i): add accumulators
// 2,3 onto 0,1, then 1 onto 0, then fold halves and sum with two HADDs.
func reduce32(a *[32]float32) float32 {
	var x [8]float32
	for i := 0; i < 8; i++ {
		x0 := a[i] + a[16+i]
		x1 := a[8+i] + a[24+i]
		x[i] = x0 + x1
	}
	t0, t1, t2, t3 := x[0]+x[4], x[1]+x[5], x[2]+x[6], x[3]+x[7]
	return (t0 + t1) + (t2 + t3)
}

// fp16Table maps every half to its float32 value, as ggml's
// ggml_table_f32_f16: a lookup is far cheaper than decoding the bits in the
// attention inner loops.
var (
	fp16Once  sync.Once
	fp16Table []float32
)

func halfTable() []float32 {
	fp16Once.Do(func() {
		t := make([]float32, 1<<16)
		for i := range t {
			t[i] = quant.FP16ToFP32(uint16(i))
		}
		fp16Table = t
	})
	return fp16Table
}

// roundF16 rounds f to the nearest half (ties to even), as F16C's
// VCVTPS2PH does when ggml converts an operand to F16.
func roundF16(tab []float32, f float32) float32 { return tab[quant.FP32ToFP16(f)] }

// Dot products in the shapes ggml's CPU matmul computes them. With an F16
// KV cache both operands are halves widened to float32, whose product is
// exact in float32: adding it rounds exactly like the FMA the SIMD code
// uses, so dotTiny and dotVecF16 need no fma32 (for other operands they
// are still fine dots, just not bit-exact emulations).

// dotTiny is llamafile's tinyBLAS<8> dot (used by ggml's mul_mat for a
// batch of two or more tokens when k is a multiple of 8): one 8-lane FMA
// accumulator, element i in lane i%8, then hsum8. len(a) must be a
// multiple of 8.
func dotTiny(a, b []float32) float32 {
	var acc [8]float32
	b = b[:len(a)]
	for i := 0; i+8 <= len(a); i += 8 {
		for l := 0; l < 8; l++ {
			acc[l] += float32(a[i+l] * b[i+l])
		}
	}
	return hsum8(&acc)
}

// dotVecF16 is ggml_vec_dot_f16 on AVX2: four 8-lane FMA accumulators over
// the first n&^31 elements, reduce32, then the rest as float products
// summed in double.
func dotVecF16(a, b []float32) float32 {
	var acc [32]float32
	b = b[:len(a)]
	np := len(a) &^ 31
	for i := 0; i < np; i += 32 {
		for l := 0; l < 32; l++ {
			acc[l] += float32(a[i+l] * b[i+l])
		}
	}
	sum := float64(reduce32(&acc))
	for i := np; i < len(a); i++ {
		sum += float64(float32(a[i] * b[i]))
	}
	return float32(sum)
}

// dotVecF32 is ggml_vec_dot_f32 on AVX2: like dotVecF16, but the reduced
// sum stays a float and the tail is accumulated in float (GCC contracts
// `sumf += x[i]*y[i]` into an FMA under -march=native).
func dotVecF32(a, b []float32) float32 {
	var acc [32]float32
	b = b[:len(a)]
	np := len(a) &^ 31
	for i := 0; i < np; i += 32 {
		for l := 0; l < 32; l++ {
			acc[l] = fma32(a[i+l], b[i+l], acc[l])
		}
	}
	sum := reduce32(&acc)
	for i := np; i < len(a); i++ {
		sum = fma32(a[i], b[i], sum)
	}
	return sum
}

// softmaxGGML is the core of ggml_compute_forward_soft_max_f32 after
// scaling and masking: x[i] -= max, exponentials by v_expf in blocks of 8
// whose horizontal sums (hsum8) are accumulated in double, scalar expf for
// a tail shorter than 8 (none when padded is true: llama.cpp pads the KV
// length to a multiple of 32 with masked cells, which contribute exact
// zeros to the last block), then y *= (float)(1/sum).
func softmaxGGML(y, x []float32, padded bool) {
	n := len(x)
	y = y[:n]
	maxv := float32(math.Inf(-1))
	for _, v := range x {
		maxv = max32(maxv, v)
	}
	var sum float64
	i := 0
	for ; i+8 <= n; i += 8 {
		var blk [8]float32
		for l := 0; l < 8; l++ {
			blk[l] = vExpf(x[i+l] - maxv)
			y[i+l] = blk[l]
		}
		sum += float64(hsum8(&blk))
	}
	if padded && i < n {
		var blk [8]float32
		for l := 0; i+l < n; l++ {
			blk[l] = vExpf(x[i+l] - maxv)
			y[i+l] = blk[l]
		}
		sum += float64(hsum8(&blk))
		i = n
	}
	for ; i < n; i++ {
		v := expf(x[i] - maxv)
		y[i] = v
		sum += float64(v)
	}
	inv := float32(1 / sum)
	for i := range y {
		y[i] *= inv
	}
}

// max32 is C's MAX(a, b) as ggml_vec_max_f32 uses it: ((a) > (b) ? (a) : (b)).
func max32(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}
