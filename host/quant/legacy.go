package quant

import (
	"encoding/binary"
	"math"
)

// Legacy 32-element block formats (ggml-common.h):
//
//	Q4_0: d fp16, qs[16]            value = (q-8)*d, q = nibble
//	Q4_1: d fp16, m fp16, qs[16]    value = q*d + m
//	Q5_0: d fp16, qh u32, qs[16]    value = (q-16)*d, q = nibble | bit<<4
//	Q5_1: d fp16, m fp16, qh u32, qs[16]
//	Q8_0: d fp16, qs int8[32]       value = q*d
//	Q8_1: d fp16, s fp16, qs int8[32], s = d*sum(qs)
//
// In the nibble formats byte j holds element j in its low nibble and element
// j+16 in its high nibble; bit j of qh is the fifth bit of element j.
const (
	q4_0Size = 18
	q4_1Size = 20
	q5_0Size = 22
	q5_1Size = 24
	q8_0Size = 34
	q8_1Size = 36
)

// absMaxSigned returns the element of largest magnitude (the first one on
// ties) and its magnitude, as the C loops `if (amax < fabsf(v))` do.
func absMaxSigned(x []float32) (maxv, amax float32) {
	for _, v := range x {
		if a := abs32(v); amax < a {
			amax, maxv = a, v
		}
	}
	return maxv, amax
}

func minMax(x []float32) (lo, hi float32) {
	lo, hi = math.MaxFloat32, -math.MaxFloat32
	for _, v := range x {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi
}

func inv(d float32) float32 {
	if d != 0 {
		return 1 / d
	}
	return 0
}

// minTrunc is MIN(limit, (int8_t)f) stored into a uint8, as the Q4_0,
// Q4_1 and Q5_0 reference quantizers compute their quants.
func minTrunc(f float32, limit int) uint8 {
	return uint8(min(int(int8(cvtt(f))), limit))
}

func quantQ4_0(src []float32, dst []byte) {
	for b := 0; b*qk < len(src); b++ {
		x := src[b*qk : (b+1)*qk]
		y := dst[b*q4_0Size : (b+1)*q4_0Size]
		maxv, _ := absMaxSigned(x)
		d := maxv / -8
		id := inv(d)
		putFP16(y, d)
		for j := 0; j < qk/2; j++ {
			x0 := float32(x[j]*id) + 8.5
			x1 := float32(x[j+qk/2]*id) + 8.5
			y[2+j] = minTrunc(x0, 15) | minTrunc(x1, 15)<<4
		}
	}
}

func dequantQ4_0(src []byte, dst []float32) {
	for b := 0; b*qk < len(dst); b++ {
		x := src[b*q4_0Size:]
		y := dst[b*qk : (b+1)*qk]
		d := fp16At(x)
		for j := 0; j < qk/2; j++ {
			y[j] = float32(int(x[2+j]&0xf)-8) * d
			y[j+qk/2] = float32(int(x[2+j]>>4)-8) * d
		}
	}
}

func quantQ4_1(src []float32, dst []byte) {
	for b := 0; b*qk < len(src); b++ {
		x := src[b*qk : (b+1)*qk]
		y := dst[b*q4_1Size : (b+1)*q4_1Size]
		lo, hi := minMax(x)
		d := (hi - lo) / 15
		id := inv(d)
		putFP16(y, d)
		putFP16(y[2:], lo)
		for j := 0; j < qk/2; j++ {
			x0 := float32((x[j]-lo)*id) + 0.5
			x1 := float32((x[j+qk/2]-lo)*id) + 0.5
			y[4+j] = minTrunc(x0, 15) | minTrunc(x1, 15)<<4
		}
	}
}

func dequantQ4_1(src []byte, dst []float32) {
	for b := 0; b*qk < len(dst); b++ {
		x := src[b*q4_1Size:]
		y := dst[b*qk : (b+1)*qk]
		d, m := fp16At(x), fp16At(x[2:])
		for j := 0; j < qk/2; j++ {
			y[j] = float32(float32(x[4+j]&0xf)*d) + m
			y[j+qk/2] = float32(float32(x[4+j]>>4)*d) + m
		}
	}
}

func quantQ5_0(src []float32, dst []byte) {
	for b := 0; b*qk < len(src); b++ {
		x := src[b*qk : (b+1)*qk]
		y := dst[b*q5_0Size : (b+1)*q5_0Size]
		maxv, _ := absMaxSigned(x)
		d := maxv / -16
		id := inv(d)
		putFP16(y, d)
		var qh uint32
		for j := 0; j < qk/2; j++ {
			xi0 := minTrunc(float32(x[j]*id)+16.5, 31)
			xi1 := minTrunc(float32(x[j+qk/2]*id)+16.5, 31)
			y[6+j] = xi0&0xf | (xi1&0xf)<<4
			qh |= uint32(xi0>>4&1) << j
			qh |= uint32(xi1>>4&1) << (j + qk/2)
		}
		binary.LittleEndian.PutUint32(y[2:], qh)
	}
}

func dequantQ5_0(src []byte, dst []float32) {
	for b := 0; b*qk < len(dst); b++ {
		x := src[b*q5_0Size:]
		y := dst[b*qk : (b+1)*qk]
		d := fp16At(x)
		qh := binary.LittleEndian.Uint32(x[2:])
		for j := 0; j < qk/2; j++ {
			h0 := int(qh>>j&1) << 4
			h1 := int(qh>>(j+qk/2)&1) << 4
			y[j] = float32(int(x[6+j]&0xf)|h0-16) * d
			y[j+qk/2] = float32(int(x[6+j]>>4)|h1-16) * d
		}
	}
}

func quantQ5_1(src []float32, dst []byte) {
	for b := 0; b*qk < len(src); b++ {
		x := src[b*qk : (b+1)*qk]
		y := dst[b*q5_1Size : (b+1)*q5_1Size]
		lo, hi := minMax(x)
		d := (hi - lo) / 31
		id := inv(d)
		putFP16(y, d)
		putFP16(y[2:], lo)
		var qh uint32
		for j := 0; j < qk/2; j++ {
			// No MIN here in the C code: (uint8_t)(x0 + 0.5f).
			xi0 := uint8(cvtt(float32((x[j]-lo)*id) + 0.5))
			xi1 := uint8(cvtt(float32((x[j+qk/2]-lo)*id) + 0.5))
			y[8+j] = xi0&0xf | (xi1&0xf)<<4
			qh |= uint32(xi0>>4&1) << j
			qh |= uint32(xi1>>4&1) << (j + qk/2)
		}
		binary.LittleEndian.PutUint32(y[4:], qh)
	}
}

func dequantQ5_1(src []byte, dst []float32) {
	for b := 0; b*qk < len(dst); b++ {
		x := src[b*q5_1Size:]
		y := dst[b*qk : (b+1)*qk]
		d, m := fp16At(x), fp16At(x[2:])
		qh := binary.LittleEndian.Uint32(x[4:])
		for j := 0; j < qk/2; j++ {
			h0 := int(qh>>j&1) << 4
			h1 := int(qh>>(j+qk/2)&1) << 4
			y[j] = float32(float32(int(x[8+j]&0xf)|h0)*d) + m
			y[j+qk/2] = float32(float32(int(x[8+j]>>4)|h1)*d) + m
		}
	}
}

func quantQ8_0(src []float32, dst []byte) {
	for b := 0; b*qk < len(src); b++ {
		x := src[b*qk : (b+1)*qk]
		y := dst[b*q8_0Size : (b+1)*q8_0Size]
		var amax float32
		for _, v := range x {
			amax = max32(amax, abs32(v))
		}
		d := amax / 127
		id := inv(d)
		putFP16(y, d)
		for j, v := range x {
			y[2+j] = byte(int8(cvtt(roundAway(v * id))))
		}
	}
}

// max32 is C's MAX(a, b) macro, a > b ? a : b, NaN handling included.
func max32(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

func dequantQ8_0(src []byte, dst []float32) {
	for b := 0; b*qk < len(dst); b++ {
		x := src[b*q8_0Size:]
		y := dst[b*qk : (b+1)*qk]
		d := fp16At(x)
		for j := range y {
			y[j] = float32(int8(x[2+j])) * d
		}
	}
}

func dequantQ8_1(src []byte, dst []float32) {
	for b := 0; b*qk < len(dst); b++ {
		x := src[b*q8_1Size:]
		y := dst[b*qk : (b+1)*qk]
		d := fp16At(x)
		for j := range y {
			y[j] = float32(int8(x[4+j])) * d
		}
	}
}
