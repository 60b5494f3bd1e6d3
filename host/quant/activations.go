package quant

import (
	"fmt"
	"math"

	"qinfer/host/backend"
)

// ActivationType is the type llama.cpp's CPU path quantizes activations to
// before a dot with a weight of type w (its vec_dot_type): Q8_0 for
// Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for Q2_K..Q6_K, and the weight's
// own type for F16, BF16 and F32.
func ActivationType(w backend.DType) (backend.DType, error) {
	switch w {
	case backend.F32, backend.F16, backend.BF16:
		return w, nil
	case backend.Q4_0, backend.Q5_0, backend.Q8_0:
		return backend.Q8_0, nil
	case backend.Q4_1, backend.Q5_1:
		return backend.Q8_1, nil
	case backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K:
		return backend.Q8_K, nil
	}
	return 0, fmt.Errorf("activation type: no dot product for weight type %v", w)
}

// QuantizeActivations quantizes one activation row the way llama.cpp's CPU
// matmul does on x86 with AVX2 (build 4748, type_traits_cpu[act].from_float):
//
//   - Q8_0: quantize_row_q8_0's AVX2 branch, which differs from the
//     reference quantize_row_q8_0_ref used for weight files: it multiplies
//     by id = 127/amax (not 1/d) and rounds halfway cases to even
//     (VROUNDPS, _MM_ROUND_NEAREST), not away from zero (roundf). The
//     repacked Q4_0 GEMM path (quantize_q8_0_4x8) computes the same values
//     in an interleaved layout; here the layout is plain block_q8_0.
//   - Q8_1: quantize_row_q8_1's AVX2 branch: the same rounding, and
//     s = fp16(d * sum of the quants).
//   - Q8_K: quantize_row_q8_K, which on x86 is quantize_row_q8_K_ref.
//   - F16, BF16: round-to-nearest-even conversion; F32: a copy.
//
// len(src) must be a whole number of blocks of act and dst must hold at
// least their bytes.
func QuantizeActivations(act backend.DType, src []float32, dst []byte) error {
	need, err := rowBytes(act, len(src))
	if err != nil {
		return fmt.Errorf("quantize activations: %w", err)
	}
	if len(dst) < need {
		return fmt.Errorf("quantize activations %v: %d elements need %d bytes, have %d", act, len(src), need, len(dst))
	}
	dst = dst[:need]
	switch act {
	case backend.F32:
		quantF32(src, dst)
	case backend.F16:
		quantF16(src, dst)
	case backend.BF16:
		quantBF16(src, dst)
	case backend.Q8_0:
		actQ8_0(src, dst)
	case backend.Q8_1:
		actQ8_1(src, dst)
	case backend.Q8_K:
		quantQ8K(src, dst)
	default:
		return fmt.Errorf("quantize activations: %v is not an activation type", act)
	}
	return nil
}

// avx2Block computes what the AVX2 Q8_0/Q8_1 branches compute for one block
// of 32: the scale d and the int32 quants before packing to int8.
func avx2Block(x []float32, q *[qk]int32) (d float32) {
	// Lane order of the SIMD max reduction only matters for NaN input,
	// whose result is meaningless in llama.cpp too.
	var amax float32
	for _, v := range x {
		a := abs32(v)
		if !(amax > a) {
			amax = a
		}
	}
	d = amax / 127
	var id float32
	if amax != 0 {
		id = 127 / amax
	}
	for j, v := range x {
		q[j] = cvtps2dq(roundEven(v * id))
	}
	return d
}

// cvtps2dq is VCVTPS2DQ on an already integral value: out-of-range and NaN
// give the "integer indefinite" 0x80000000.
func cvtps2dq(f float32) int32 {
	if f != f || f >= 2147483648 || f < -2147483648 {
		return math.MinInt32
	}
	return int32(f)
}

// sat8 is the saturation of VPACKSSDW followed by VPACKSSWB.
func sat8(v int32) byte {
	return byte(int8(max(-128, min(127, v))))
}

func actQ8_0(src []float32, dst []byte) {
	var q [qk]int32
	for b := 0; b*qk < len(src); b++ {
		y := dst[b*q8_0Size : (b+1)*q8_0Size]
		d := avx2Block(src[b*qk:(b+1)*qk], &q)
		putFP16(y, d)
		for j, v := range q {
			y[2+j] = sat8(v)
		}
	}
}

func actQ8_1(src []float32, dst []byte) {
	var q [qk]int32
	for b := 0; b*qk < len(src); b++ {
		y := dst[b*q8_1Size : (b+1)*q8_1Size]
		d := avx2Block(src[b*qk:(b+1)*qk], &q)
		var sum int32 // VPADDD wraps, as int32 addition does in Go
		for j, v := range q {
			y[4+j] = sat8(v)
			sum += v
		}
		putFP16(y, d)
		putFP16(y[2:], d*float32(sum))
	}
}
