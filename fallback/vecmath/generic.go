package vecmath

import (
	"math"
	"sync"

	"qinfer/host/quant"
)

// The scalar reference of every kernel. Go may fuse x*y+z into one FMA on
// some architectures; products that C rounds separately are wrapped in
// float32(...), which the Go spec guarantees rounds.

// FMA32 is fma32 for the CPU backend's scalar paths, so they and these
// kernels share one definition.
func FMA32(a, b, c float32) float32 { return fma32(a, b, c) }

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

// VExpf is one lane of ggml_v_expf, the AVX2+FMA exponential that ggml
// uses for softmax and SiLU in blocks of 8 (adapted from ARM's optimized
// routines; max error 1.45 ulp + 0.5).
func VExpf(x float32) float32 {
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

// silu8 is one lane of ggml_v_silu: x / (1 + v_expf(0-x)).
func silu8(x float32) float32 { return x / (1 + VExpf(0-x)) }

// siluScalar is ggml_silu_f32, used for the elements past the last full
// block of 8.
func siluScalar(x float32) float32 { return x / (1 + expf(-x)) }

// Hsum8 is llamafile's hsum(__m256) and the horizontal sum in ggml's AVX2
// softmax: fold the high half onto the low half, then lanes 0+2 and 1+3,
// then those two.
func Hsum8(v *[8]float32) float32 {
	h0, h1, h2, h3 := v[4]+v[0], v[5]+v[1], v[6]+v[2], v[7]+v[3]
	return (h0 + h2) + (h1 + h3)
}

// Reduce32 is GGML_F32x8_REDUCE over ggml_vec_dot's four 8-lane
// accumulators (lane i of accumulator j at index 8j+i): add accumulators
// 2,3 onto 0,1, then 1 onto 0, then fold halves and sum with two HADDs.
func Reduce32(a *[32]float32) float32 {
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
// ggml_table_f32_f16: a lookup is far cheaper than decoding the bits.
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

func expSumGeneric(y, x []float32, sub float32) float64 {
	var sum float64
	for i := 0; i+8 <= len(x); i += 8 {
		var blk [8]float32
		for l := 0; l < 8; l++ {
			blk[l] = VExpf(x[i+l] - sub)
			y[i+l] = blk[l]
		}
		sum += float64(Hsum8(&blk))
	}
	return sum
}

func siluGeneric(y, x []float32) {
	for i, v := range x {
		y[i] = silu8(v)
	}
}

func siluMulGeneric(y, x, u []float32) {
	for i, v := range x {
		y[i] = float32(silu8(v) * u[i])
	}
}

func roundF16Generic(y, x []float32) {
	tab := halfTable()
	for i, v := range x {
		y[i] = tab[quant.FP32ToFP16(v)]
	}
}

func toF16Generic(h []uint16, x []float32) {
	for i, v := range x {
		h[i] = quant.FP32ToFP16(v)
	}
}

// Dot products of a half row with a float row. The second operand is
// F16-rounded in attention, so each product is exact in float32 and adding
// it rounds exactly as the FMA of the SIMD code does.

// dotTinyGeneric is llamafile's tinyBLAS<8> dot: one 8-lane accumulator,
// element i in lane i%8, then Hsum8. len(q) must be a multiple of 8.
func dotTinyGeneric(tab []float32, k []uint16, q []float32) float32 {
	var acc [8]float32
	k = k[:len(q)]
	for i := 0; i+8 <= len(q); i += 8 {
		for l := 0; l < 8; l++ {
			acc[l] += float32(tab[k[i+l]] * q[i+l])
		}
	}
	return Hsum8(&acc)
}

// dotVecGeneric is ggml_vec_dot_f16 on AVX2: four 8-lane accumulators over
// the first n&^31 elements, Reduce32, then the rest as float products
// summed in double.
func dotVecGeneric(tab []float32, k []uint16, q []float32) float32 {
	var acc [32]float32
	k = k[:len(q)]
	np := len(q) &^ 31
	for i := 0; i < np; i += 32 {
		for l := 0; l < 32; l++ {
			acc[l] += float32(tab[k[i+l]] * q[i+l])
		}
	}
	sum := float64(Reduce32(&acc))
	for i := np; i < len(q); i++ {
		sum += float64(float32(tab[k[i]] * q[i]))
	}
	return float32(sum)
}

func dotsF16Generic(dst []float32, k []uint16, kstride int, q []float32, scale float32, tiny bool) {
	tab := halfTable()
	for j := range dst {
		row := k[j*kstride : j*kstride+len(q)]
		var d float32
		if tiny {
			d = dotTinyGeneric(tab, row, q)
		} else {
			d = dotVecGeneric(tab, row, q)
		}
		dst[j] = d * scale
	}
}

func axpyLanesF16Generic(acc []float32, lanes int, v []uint16, vstride int, p []float32, hd int) {
	tab := halfTable()
	for j, pj := range p {
		a := acc[(j%lanes)*hd : (j%lanes+1)*hd]
		for i, x := range v[j*vstride : j*vstride+hd] {
			// Both factors are halves: the product is exact, so the
			// separate add rounds exactly as the FMA does.
			a[i] += float32(tab[x] * pj)
		}
	}
}

func reduceLanesGeneric(out, acc []float32, lanes int) {
	hd := len(out)
	switch lanes {
	case 8:
		a := acc[:8*hd]
		for i := range out {
			h0 := a[4*hd+i] + a[i]
			h1 := a[5*hd+i] + a[hd+i]
			h2 := a[6*hd+i] + a[2*hd+i]
			h3 := a[7*hd+i] + a[3*hd+i]
			out[i] = (h0 + h2) + (h1 + h3)
		}
	case 32:
		a := acc[:32*hd]
		for i := range out {
			var x [8]float32
			for l := 0; l < 8; l++ {
				x0 := a[l*hd+i] + a[(16+l)*hd+i]
				x1 := a[(8+l)*hd+i] + a[(24+l)*hd+i]
				x[l] = x0 + x1
			}
			t0, t1, t2, t3 := x[0]+x[4], x[1]+x[5], x[2]+x[6], x[3]+x[7]
			out[i] = (t0 + t1) + (t2 + t3)
		}
	}
}

// rotatePairsGeneric is ggml's rope in normal mode for one head: pairs
// (2i, 2i+1) rotated by (cache[2i], cache[2i+1]) = (cos, sin). GCC
// contracts each result into one FMA over its first product.
func rotatePairsGeneric(x, cache []float32) {
	for i0 := 0; i0+1 < len(x); i0 += 2 {
		cs, sn := cache[i0], cache[i0+1]
		x0, x1 := x[i0], x[i0+1]
		x[i0] = fma32(x0, cs, -float32(x1*sn))
		x[i0+1] = fma32(x0, sn, float32(x1*cs))
	}
}

// rotateHalvesGeneric is NEOX mode for one head: element i with i+half.
func rotateHalvesGeneric(x, cos, sin []float32) {
	half := len(cos)
	for i := 0; i < half; i++ {
		cs, sn := cos[i], sin[i]
		x0, x1 := x[i], x[i+half]
		x[i] = fma32(x0, cs, -float32(x1*sn))
		x[i+half] = fma32(x0, sn, float32(x1*cs))
	}
}
