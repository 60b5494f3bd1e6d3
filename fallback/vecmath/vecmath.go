package vecmath

import "math"

// Softmax is the core of ggml_compute_forward_soft_max_f32 after scaling
// and masking: y[i] = exp(x[i]-max) / sum, where the exponentials of whole
// blocks of 8 come from v_expf and their horizontal sums (Hsum8) are
// accumulated in double, a tail shorter than 8 uses expf (none when padded
// is true: llama.cpp pads the KV length to a multiple of 32 with masked
// cells, which contribute exact zeros to the last block), and finally
// y *= (float)(1/sum). y may alias x.
func Softmax(y, x []float32, padded bool) {
	n := len(x)
	y = y[:n]
	maxv := float32(math.Inf(-1))
	for _, v := range x {
		// C's MAX(a, b) as ggml_vec_max_f32 uses it, in its order: the
		// result for NaNs and signed zeros depends on it.
		if !(maxv > v) {
			maxv = v
		}
	}
	nb := n &^ 7
	sum := expSum(y[:nb], x[:nb], maxv)
	i := nb
	if padded && i < n {
		// Lanes past the end see -Inf, whose v_expf is an exact zero, as
		// the masked cells do in llama.cpp.
		var blk [8]float32
		for l := range blk {
			blk[l] = float32(math.Inf(-1))
		}
		copy(blk[:], x[i:])
		sum += expSum(blk[:], blk[:], maxv)
		copy(y[i:], blk[:n-i])
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

// SiLU sets y = silu(x) as ggml_vec_silu_f32 does: ggml_v_silu on each
// block of 8, ggml_silu_f32 (libm expf) on the tail. y may alias x.
func SiLU(y, x []float32) {
	y = y[:len(x)]
	nb := len(x) &^ 7
	silu(y[:nb], x[:nb])
	for i := nb; i < len(x); i++ {
		y[i] = siluScalar(x[i])
	}
}

// SiLUMul sets y = silu(x) * u, each product rounded to float, as
// llama.cpp's graph computes ggml_mul(ggml_silu(x), u). y may alias x or u.
func SiLUMul(y, x, u []float32) {
	y, u = y[:len(x)], u[:len(x)]
	nb := len(x) &^ 7
	siluMul(y[:nb], x[:nb], u[:nb])
	for i := nb; i < len(x); i++ {
		y[i] = float32(siluScalar(x[i]) * u[i])
	}
}

// RoundF16 sets y = x rounded to the nearest half (ties to even) and
// widened back, as F16C's VCVTPS2PH does when ggml converts an operand to
// F16. y may alias x.
func RoundF16(y, x []float32) {
	y = y[:len(x)]
	nb := len(x) &^ 7
	roundF16(y[:nb], x[:nb])
	roundF16Generic(y[nb:], x[nb:])
}

// ToF16 converts x to halves (ties to even), as ggml_cpy into an F16
// tensor does.
func ToF16(h []uint16, x []float32) {
	h = h[:len(x)]
	nb := len(x) &^ 7
	toF16(h[:nb], x[:nb])
	toF16Generic(h[nb:], x[nb:])
}

// DotsF16 sets dst[j] = dot(k[j*kstride:][:len(q)], q) * scale for every j,
// with the dot summed in one of the two orders ggml's CPU matmul uses:
// tiny selects llamafile's tinyBLAS (one 8-lane FMA accumulator, then
// Hsum8; len(q) must be a multiple of 8), otherwise ggml_vec_dot_f16 (four
// 8-lane accumulators over blocks of 32, Reduce32, the tail in double).
// The products are exact only when q holds F16-rounded values, which is
// what makes the FMA of the assembly equal to the reference.
func DotsF16(dst []float32, k []uint16, kstride int, q []float32, scale float32, tiny bool) {
	hd := len(q)
	if len(dst) == 0 || hd == 0 {
		clear(dst)
		return
	}
	if tiny && hd%8 != 0 {
		panic("vecmath: DotsF16 with tiny order needs a multiple of 8 elements")
	}
	_ = k[(len(dst)-1)*kstride+hd-1] // every row in range
	dotsF16(dst, k, kstride, q, scale, tiny)
}

// AxpyLanesF16 adds v[j*vstride+i] * p[j] into acc[(j%lanes)*hd+i] for
// each j < len(p) and i < hd: ggml's KQV mul_mat over a head, where
// position j is summed in lane j%lanes of each output (lanes 8 for
// tinyBLAS, 32 for ggml_vec_dot_f16), kept lane-major. With p rounded to
// F16 the products are exact, so the FMA of the assembly equals the
// reference's add. lanes must be 8 or 32; acc holds lanes*hd floats.
func AxpyLanesF16(acc []float32, lanes int, v []uint16, vstride int, p []float32, hd int) {
	if lanes != 8 && lanes != 32 {
		panic("vecmath: AxpyLanesF16 needs 8 or 32 lanes")
	}
	if len(p) == 0 || hd == 0 {
		return
	}
	_ = acc[lanes*hd-1]
	_ = v[(len(p)-1)*vstride+hd-1]
	axpyLanesF16(acc, lanes, v, vstride, p, hd)
}

// ReduceLanes sets out[i] to the sum of the lanes of output i in acc
// (lane-major, as AxpyLanesF16 leaves it) in ggml's order: Hsum8 for 8
// lanes, Reduce32 for 32.
func ReduceLanes(out, acc []float32, lanes int) {
	if lanes != 8 && lanes != 32 {
		panic("vecmath: ReduceLanes needs 8 or 32 lanes")
	}
	if len(out) == 0 {
		return
	}
	reduceLanes(out, acc[:lanes*len(out)], lanes)
}

// RotatePairs applies ggml's rope in normal mode to each head of x (len(x)
// a multiple of len(cache), the head dimension): pair (2i, 2i+1) becomes
// (x0*cs - x1*sn, x0*sn + x1*cs) with (cs, sn) = (cache[2i], cache[2i+1]),
// each an FMA over the first product with the second rounded, as GCC
// contracts ggml_rope_cache's users.
func RotatePairs(x, cache []float32) {
	hd := len(cache)
	if hd == 0 || len(x)%hd != 0 || hd%2 != 0 {
		panic("vecmath: RotatePairs needs whole heads of an even dimension")
	}
	rotatePairs(x, cache)
}

// RotateHalves applies NEOX-mode rope to each head of x (head dimension
// 2*len(cos)): element i pairs with i+len(cos), rotated by (cos[i], sin[i])
// with the roundings of RotatePairs.
func RotateHalves(x, cos, sin []float32) {
	half := len(cos)
	if half == 0 || len(sin) != half || len(x)%(2*half) != 0 {
		panic("vecmath: RotateHalves needs whole heads and matching cos and sin")
	}
	rotateHalves(x, cos, sin)
}
