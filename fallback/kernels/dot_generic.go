package kernels

import (
	"encoding/binary"
	"math"

	"qinfer/host/quant"
)

// Pure-Go dot products of one weight row with one quantized activation row,
// in GGUF block layout. They are the portable path (and the path with the
// feature switches off); integer sums are exact and identical to the SIMD
// kernels', only the float accumulation order differs.

func fp16At(b []byte) float32 { return quant.FP16ToFP32(binary.LittleEndian.Uint16(b)) }

func f32At(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

func i16At(b []byte) int32 { return int32(int16(binary.LittleEndian.Uint16(b))) }
