package kernels

import (
	"encoding/binary"
	"fmt"
	"math"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

const (
	qk  = 32  // elements per Q8_0/Q4_0 block
	qkK = 256 // elements per K-quant super-block

	q8_0Bytes = 34  // fp16 d + 32 int8
	q4_0Bytes = 18  // fp16 d + 16 bytes of nibbles
	q8KBytes  = 292 // f32 d + 256 int8 + 16 int16 block sums
	q4KBytes  = 144
	q5KBytes  = 176
	q6KBytes  = 210
)

// actType is the activation format llama.cpp's CPU matmul quantizes the
// input into for weight type w (its vec_dot_type).
func actType(w backend.DType) (backend.DType, error) {
	switch w {
	case backend.Q8_0, backend.Q4_0:
		return backend.Q8_0, nil
	case backend.Q4_K, backend.Q5_K, backend.Q6_K:
		return backend.Q8_K, nil
	case backend.F16:
		return backend.F16, nil
	case backend.F32:
		return backend.F32, nil
	}
	t, err := quant.ActivationType(w)
	if err != nil {
		return 0, fmt.Errorf("kernels: activation type for %v: %w", w, err)
	}
	return t, nil
}

// ActRowBytes is the size of one quantized activation row of cols elements
// for weight type w.
func ActRowBytes(w backend.DType, cols int) (int, error) {
	at, err := actType(w)
	if err != nil {
		return 0, err
	}
	n, err := backend.RowBytes(at, cols)
	if err != nil {
		return 0, fmt.Errorf("kernels: activations for %v weights: %w", w, err)
	}
	return n, nil
}

// QuantizeActs quantizes ntok activation rows (row t at x[t*ldx:], cols
// elements) for weight type w into dst (row t at dst[t*ActRowBytes(w, cols):]),
// in parallel on p. The bytes are those of quant.QuantizeActivations
// (llama.cpp's CPU path, rounding included); the one exception is a Q8_0
// block holding NaN, whose scale depends on the order in which the
// maximum is reduced (the AVX2 quantizer follows llama.cpp's lanes, the
// pure-Go one reads the block in order).
func QuantizeActs(p *Pool, w backend.DType, x []float32, ldx, ntok, cols int, dst []byte) error {
	if p == nil {
		return fmt.Errorf("kernels: quantize activations for %v: nil pool", w)
	}
	at, err := actType(w)
	if err != nil {
		return err
	}
	rb, err := backend.RowBytes(at, cols)
	if err != nil {
		return fmt.Errorf("kernels: quantize activations for %v: %w", w, err)
	}
	if ntok <= 0 {
		return nil
	}
	if ldx < cols {
		return fmt.Errorf("kernels: quantize activations: row stride %d below %d columns", ldx, cols)
	}
	if need := (ntok-1)*ldx + cols; len(x) < need {
		return fmt.Errorf("kernels: quantize activations: %d rows of %d (stride %d) need %d floats, have %d", ntok, cols, ldx, need, len(x))
	}
	if need := ntok * rb; len(dst) < need {
		return fmt.Errorf("kernels: quantize activations: %d rows of %v need %d bytes, have %d", ntok, at, need, len(dst))
	}
	row := simdQuantRow(at)
	switch {
	case row != nil:
	case at == backend.Q8_0:
		row = quantizeRowQ8_0
	case at == backend.Q8_K:
		row = quantizeRowQ8K
	case at == backend.F16:
		row = quantizeRowF16
	case at == backend.F32:
		row = quantizeRowF32
	default:
		// Formats without a kernel here go through the reference; errors
		// are impossible after the size checks above, but are reported.
		var firstErr error
		for t := 0; t < ntok; t++ {
			if err := quant.QuantizeActivations(at, x[t*ldx:t*ldx+cols], dst[t*rb:(t+1)*rb]); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("kernels: quantize activations row %d as %v: %w", t, at, err)
			}
		}
		return firstErr
	}
	// Rows are independent; small batches run on the caller alone.
	p.actMu.Lock()
	defer p.actMu.Unlock()
	j := &p.act
	j.row, j.x, j.ldx, j.cols, j.dst, j.rb = row, x, ldx, cols, dst, rb
	p.For(ntok, max(1, 8192/cols), p.actFn)
	j.x, j.dst = nil, nil
	return nil
}

// actJob is one QuantizeActs call, kept in the Pool so that binding the
// worker function allocates nothing per call.
type actJob struct {
	row  func(src []float32, out []byte)
	x    []float32
	ldx  int
	cols int
	dst  []byte
	rb   int
}

func (j *actJob) run(lo, hi int) {
	for t := lo; t < hi; t++ {
		j.row(j.x[t*j.ldx:t*j.ldx+j.cols], j.dst[t*j.rb:(t+1)*j.rb])
	}
}

// quantizeRowQ8_0 is llama.cpp's AVX2 quantize_row_q8_0, which the CPU
// matmul uses on x86: scale 127/amax (not 1/d) and round half to even
// (VROUNDPS), d stored as fp16 of amax/127.
func quantizeRowQ8_0(src []float32, dst []byte) {
	for b := 0; b < len(src)/qk; b++ {
		xs := src[b*qk : b*qk+qk]
		out := dst[b*q8_0Bytes : b*q8_0Bytes+q8_0Bytes]
		// VMAXPS keeps its second operand unless the first is greater, which
		// decides how a NaN propagates; this loop does the same, in element
		// order rather than llama.cpp's lanes (only NaN input can tell).
		var amax float32
		for _, v := range xs {
			if a := abs32(v); !(amax > a) {
				amax = a
			}
		}
		binary.LittleEndian.PutUint16(out, quant.FP32ToFP16(amax/127))
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		for j, v := range xs {
			out[2+j] = byte(satInt8(roundEven(v * id)))
		}
	}
}

// quantizeRowQ8K is llama.cpp's quantize_row_q8_K_ref (used by the x86 CPU
// path): scale -127/max of the signed extreme, ggml's nearest_int rounding,
// clamp at 127, and 16-element block sums.
func quantizeRowQ8K(src []float32, dst []byte) {
	for b := 0; b < len(src)/qkK; b++ {
		xs := src[b*qkK : b*qkK+qkK]
		out := dst[b*q8KBytes : b*q8KBytes+q8KBytes]
		var vmax, amax float32
		for _, v := range xs {
			if a := abs32(v); a > amax {
				amax, vmax = a, v
			}
		}
		if amax == 0 {
			clear(out)
			continue
		}
		iscale := -127 / vmax
		qs := out[4 : 4+qkK]
		for j, v := range xs {
			qs[j] = byte(int8(min(127, max(-128, nearestInt(iscale*v)))))
		}
		for j := 0; j < qkK/16; j++ {
			var s int16
			for _, q := range qs[16*j : 16*j+16] {
				s += int16(int8(q))
			}
			binary.LittleEndian.PutUint16(out[4+qkK+2*j:], uint16(s))
		}
		binary.LittleEndian.PutUint32(out, math.Float32bits(1/iscale))
	}
}

func quantizeRowF16(src []float32, dst []byte) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], quant.FP32ToFP16(v))
	}
}

func quantizeRowF32(src []float32, dst []byte) {
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

// roundEven rounds to the nearest integer, halfway cases to even, as
// VROUNDPS does: below 2^22 in magnitude adding and subtracting 1.5*2^23
// does it in float32 (the sum's unit is 1), larger values are integers
// already or NaN/Inf, which stay as they are.
func roundEven(f float32) float32 {
	if abs32(f) < 1<<22 {
		// float32(f): a caller's product must be rounded before the
		// addition, not fused with it (Go fuses on arm64).
		return (float32(f) + 12582912) - 12582912
	}
	return f
}

// nearestInt is ggml's nearest_int: adding 1.5*2^23 leaves the integer part
// in the low mantissa bits, rounded half to even by the FPU.
func nearestInt(f float32) int {
	v := float32(f) + 12582912 // not fused with a caller's product
	return int(int32(math.Float32bits(v))&0x007fffff) - 0x00400000
}

func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

// satInt8 converts an integral float to int8 as VCVTPS2DQ followed by the
// saturating packs does: NaN becomes the integer indefinite and saturates
// to -128, out-of-range values saturate.
func satInt8(f float32) int8 {
	switch {
	case f != f || f <= -128:
		return -128
	case f >= 127:
		return 127
	}
	return int8(f)
}
