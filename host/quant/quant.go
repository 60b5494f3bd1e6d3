// Package quant implements GGUF's tensor formats exactly as llama.cpp
// (build 4748) lays them out and computes them: block layouts, the
// reference quantizers llama-quantize uses without an importance matrix
// (bit-identical output), dequantization, the activation quantization of
// llama.cpp's CPU matmul path, and plain reference dot products with their
// integer building blocks, which the SIMD and GPU kernels are tested
// against.
//
// All functions work on little-endian GGUF block bytes and are safe for
// concurrent use. Arithmetic that must match C's float evaluation is written
// with explicit float32 conversions so the Go compiler cannot fuse a
// multiply and an add into an FMA (which it may do on arm64 and others).
package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"qinfer/host/backend"
)

const (
	qk  = 32  // elements per block of the legacy formats (Q4_0 ... Q8_1)
	qkK = 256 // elements per super-block of the K-quants
)

// blockLayout validates that n elements of t fit whole blocks and returns the
// number of blocks and bytes per block.
func blockLayout(t backend.DType, n int) (nblocks, typeSize int, err error) {
	tr, err := backend.TraitsOf(t)
	if err != nil {
		return 0, 0, err
	}
	if n < 0 || n%tr.BlockSize != 0 {
		return 0, 0, fmt.Errorf("%v: %d elements is not a multiple of the block size %d", t, n, tr.BlockSize)
	}
	return n / tr.BlockSize, tr.TypeSize, nil
}

// rowBytes is the size in bytes of n elements of t, n a whole number of
// blocks, or an error naming t. Unlike backend.RowBytes it accepts n == 0,
// so empty rows are no-ops rather than errors.
func rowBytes(t backend.DType, n int) (int, error) {
	nb, ts, err := blockLayout(t, n)
	if err != nil {
		return 0, err
	}
	return nb * ts, nil
}

type dequantFunc func(src []byte, dst []float32)

var dequantizers = map[backend.DType]dequantFunc{
	backend.F32:  dequantF32,
	backend.F16:  dequantF16,
	backend.BF16: dequantBF16,
	backend.Q4_0: dequantQ4_0,
	backend.Q4_1: dequantQ4_1,
	backend.Q5_0: dequantQ5_0,
	backend.Q5_1: dequantQ5_1,
	backend.Q8_0: dequantQ8_0,
	backend.Q8_1: dequantQ8_1,
	backend.Q2_K: dequantQ2K,
	backend.Q3_K: dequantQ3K,
	backend.Q4_K: dequantQ4K,
	backend.Q5_K: dequantQ5K,
	backend.Q6_K: dequantQ6K,
	backend.Q8_K: dequantQ8K,
}

type quantFunc func(src []float32, dst []byte)

var quantizers = map[backend.DType]quantFunc{
	backend.F32:  quantF32,
	backend.F16:  quantF16,
	backend.BF16: quantBF16,
	backend.Q4_0: quantQ4_0,
	backend.Q4_1: quantQ4_1,
	backend.Q5_0: quantQ5_0,
	backend.Q5_1: quantQ5_1,
	backend.Q8_0: quantQ8_0,
	backend.Q2_K: quantQ2K,
	backend.Q3_K: quantQ3K,
	backend.Q4_K: quantQ4K,
	backend.Q5_K: quantQ5K,
	backend.Q6_K: quantQ6K,
	backend.Q8_K: quantQ8K,
}

// Dequantize decodes len(dst) elements of type t from src (GGUF block
// layout). Types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K,
// Q3_K, Q4_K, Q5_K, Q6_K, Q8_K. len(dst) must be a whole number of blocks
// and src must hold at least their bytes; extra bytes are ignored. The
// values are those of llama.cpp's dequantize_row_* (same float operations).
func Dequantize(t backend.DType, src []byte, dst []float32) error {
	f, ok := dequantizers[t]
	if !ok {
		return fmt.Errorf("dequantize: unsupported type %v", t)
	}
	need, err := rowBytes(t, len(dst))
	if err != nil {
		return fmt.Errorf("dequantize: %w", err)
	}
	if len(src) < need {
		return fmt.Errorf("dequantize %v: %d elements need %d bytes, have %d", t, len(dst), need, len(src))
	}
	f(src[:need], dst)
	return nil
}

// Quantize encodes src with llama.cpp's reference quantizer for t
// (quantize_row_*_ref: what llama-quantize does without an importance
// matrix), bit-identical output. Types: F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K; F32 is a copy. len(src) must be
// a whole number of blocks and dst must hold at least their bytes; bytes
// past them are left untouched.
func Quantize(t backend.DType, src []float32, dst []byte) error {
	f, ok := quantizers[t]
	if !ok {
		return fmt.Errorf("quantize: unsupported type %v", t)
	}
	need, err := rowBytes(t, len(src))
	if err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	if len(dst) < need {
		return fmt.Errorf("quantize %v: %d elements need %d bytes, have %d", t, len(src), need, len(dst))
	}
	f(src, dst[:need])
	return nil
}

// DequantizeRows decodes rows rows of cols elements each (GGUF tensor data
// of type t, Dims[0] = cols) into a new slice.
func DequantizeRows(t backend.DType, src []byte, rows, cols int) ([]float32, error) {
	if rows < 0 || cols < 0 {
		return nil, fmt.Errorf("dequantize %v: shape %dx%d", t, rows, cols)
	}
	rb, err := rowBytes(t, cols)
	if err != nil {
		return nil, fmt.Errorf("dequantize: %w", err)
	}
	if rows > 0 && rb > 0 && rows > len(src)/rb {
		return nil, fmt.Errorf("dequantize %v: %dx%d needs %d bytes, have %d", t, rows, cols, rows*rb, len(src))
	}
	dst := make([]float32, rows*cols)
	if err := Dequantize(t, src, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

func dequantF32(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func quantF32(src []float32, dst []byte) {
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

func dequantF16(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = FP16ToFP32(le16(src[2*i:]))
	}
}

func quantF16(src []float32, dst []byte) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], FP32ToFP16(v))
	}
}

func dequantBF16(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = BF16ToFP32(le16(src[2*i:]))
	}
}

func quantBF16(src []float32, dst []byte) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], FP32ToBF16(v))
	}
}
