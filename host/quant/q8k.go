package quant

import (
	"encoding/binary"
	"math"
)

// Q8_K super-block (292 bytes): d float32, qs int8[256], bsums int16[16]
// (sum of each 16 consecutive qs, which the K-quant dots use to apply the
// mins). value = d*q. It is the activation format of the K-quant dots.
const (
	q8kSize  = 292
	q8kQs    = 4
	q8kBsums = 260
)

// quantQ8K is quantize_row_q8_K_ref, which is also what llama.cpp's x86
// CPU path runs for activations (quantize_row_q8_K just calls it). For an
// all-zero block the C code leaves bsums unwritten; we write zeros, their
// true value.
func quantQ8K(src []float32, dst []byte) {
	for b := 0; b*qkK < len(src); b++ {
		x := src[b*qkK : (b+1)*qkK]
		y := dst[b*q8kSize : (b+1)*q8kSize]
		maxv, amax := absMaxSigned(x)
		if amax == 0 {
			for i := range y {
				y[i] = 0
			}
			continue
		}
		iscale := -127 / maxv
		qs := y[q8kQs : q8kQs+qkK]
		for j, v := range x {
			qs[j] = uint8(int8(min(127, nearestInt(iscale*v))))
		}
		for j := 0; j < qkK/16; j++ {
			var sum int
			for _, q := range qs[16*j : 16*j+16] {
				sum += int(int8(q))
			}
			binary.LittleEndian.PutUint16(y[q8kBsums+2*j:], uint16(int16(sum)))
		}
		binary.LittleEndian.PutUint32(y, math.Float32bits(1/iscale))
	}
}

func dequantQ8K(src []byte, dst []float32) {
	for b := 0; b*qkK < len(dst); b++ {
		x := src[b*q8kSize : (b+1)*q8kSize]
		y := dst[b*qkK : (b+1)*qkK]
		d := math.Float32frombits(binary.LittleEndian.Uint32(x))
		for j := range y {
			y[j] = d * float32(int8(x[q8kQs+j]))
		}
	}
}
