package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

const fp16One = 0x3c00 // 1.0 as IEEE half

// weightTypes are the formats with kernels of their own.
var weightTypes = []backend.DType{backend.Q8_0, backend.Q4_0, backend.Q4_K, backend.Q5_K, backend.Q6_K, backend.F16, backend.F32}

// colsFor returns test row lengths for wt: whole blocks, not multiples of
// any SIMD width in blocks.
func colsFor(wt backend.DType) []int {
	switch wt {
	case backend.Q8_0, backend.Q4_0:
		return []int{32, 96, 224, 1056}
	case backend.F16, backend.F32:
		return []int{1, 7, 37, 300}
	}
	return []int{256, 768}
}

// unitWeights returns rows of random quants with every float scale 1.0,
// so that a dot product is an exact integer.
//
// With extreme set, quant bytes are drawn from the largest values instead
// (all-ones nibbles and bit fields, extreme scales), which would expose any
// saturation or overflow of the narrow SIMD intermediates.
func unitWeights(t testing.TB, rng *rand.Rand, wt backend.DType, rows, cols int, extreme bool) []byte {
	rb, err := backend.RowBytes(wt, cols)
	require.NoError(t, err)
	w := make([]byte, rows*rb)
	for i := range w {
		if extreme {
			w[i] = []byte{0x00, 0xff, 0xff, 0xf0, 0x0f, 0x80, 0x7f}[rng.IntN(7)]
		} else {
			w[i] = byte(rng.Uint32())
		}
	}
	put16 := func(off int, v uint16) { binary.LittleEndian.PutUint16(w[off:], v) }
	switch wt {
	case backend.Q8_0:
		for b := 0; b < len(w)/q8_0Bytes; b++ {
			put16(b*q8_0Bytes, fp16One)
			for j := 2; j < q8_0Bytes; j++ {
				v := rng.IntN(255) - 127 // quantizers never emit -128
				if extreme {
					v = []int{-127, 127}[rng.IntN(2)]
				}
				w[b*q8_0Bytes+j] = byte(int8(v))
			}
		}
	case backend.Q4_0:
		for b := 0; b < len(w)/q4_0Bytes; b++ {
			put16(b*q4_0Bytes, fp16One)
		}
	case backend.Q4_K, backend.Q5_K:
		bs := q4KBytes
		if wt == backend.Q5_K {
			bs = q5KBytes
		}
		for b := 0; b < len(w)/bs; b++ {
			put16(b*bs, fp16One)
			put16(b*bs+2, fp16One)
		}
	case backend.Q6_K:
		for b := 0; b < len(w)/q6KBytes; b++ {
			put16(b*q6KBytes+208, fp16One)
		}
	case backend.F16:
		for i := 0; i < rows*cols; i++ {
			put16(2*i, quant.FP32ToFP16(float32(rng.IntN(61)-30)))
		}
	case backend.F32:
		for i := 0; i < rows*cols; i++ {
			binary.LittleEndian.PutUint32(w[4*i:], math.Float32bits(float32(rng.IntN(61)-30)))
		}
	}
	return w
}

// unitActs returns ntok activation rows for wt with random quants in
// [-amp, amp] (only ±amp when amp < 0) and scale 1.0 (Q8_K block sums
// computed here).
func unitActs(t testing.TB, rng *rand.Rand, wt backend.DType, ntok, cols, amp int) []byte {
	at, err := quant.ActivationType(wt)
	require.NoError(t, err)
	rb, err := backend.RowBytes(at, cols)
	require.NoError(t, err)
	x := make([]byte, ntok*rb)
	q := func() byte { return byte(int8(rng.IntN(2*amp+1) - amp)) }
	if amp < 0 { // extremes only
		amp = -amp
		q = func() byte { return byte(int8([]int{-amp, amp}[rng.IntN(2)])) }
	}
	switch at {
	case backend.Q8_0:
		for b := 0; b < len(x)/q8_0Bytes; b++ {
			binary.LittleEndian.PutUint16(x[b*q8_0Bytes:], fp16One)
			for j := 2; j < q8_0Bytes; j++ {
				x[b*q8_0Bytes+j] = q()
			}
		}
	case backend.Q8_K:
		for b := 0; b < len(x)/q8KBytes; b++ {
			blk := x[b*q8KBytes : (b+1)*q8KBytes]
			binary.LittleEndian.PutUint32(blk, math.Float32bits(1))
			for j := 0; j < qkK; j++ {
				blk[4+j] = q()
			}
			for j := 0; j < 16; j++ {
				var s int16
				for _, v := range blk[4+16*j : 4+16*j+16] {
					s += int16(int8(v))
				}
				binary.LittleEndian.PutUint16(blk[4+qkK+2*j:], uint16(s))
			}
		}
	case backend.F16:
		for i := 0; i < ntok*cols; i++ {
			binary.LittleEndian.PutUint16(x[2*i:], quant.FP32ToFP16(float32(rng.IntN(2*amp+1)-amp)))
		}
	case backend.F32:
		for i := 0; i < ntok*cols; i++ {
			binary.LittleEndian.PutUint32(x[4*i:], math.Float32bits(float32(rng.IntN(2*amp+1)-amp)))
		}
	}
	return x
}

// reference computes every output in float64 from values dequantized by
// host/quant, and the scale of its rounding: sum |w_i x_i| per output.
func reference(t testing.TB, wt backend.DType, w []byte, rows, cols int, x []byte, ntok int) (ref, mag []float64) {
	at, err := quant.ActivationType(wt)
	require.NoError(t, err)
	wf, err := quant.DequantizeRows(wt, w, rows, cols)
	require.NoError(t, err)
	xf, err := quant.DequantizeRows(at, x, ntok, cols)
	require.NoError(t, err)
	ref = make([]float64, rows*ntok)
	mag = make([]float64, rows*ntok)
	for tk := 0; tk < ntok; tk++ {
		for r := 0; r < rows; r++ {
			var s, m float64
			for i := 0; i < cols; i++ {
				p := float64(wf[r*cols+i]) * float64(xf[tk*cols+i])
				s += p
				m += math.Abs(p)
			}
			ref[tk*rows+r], mag[tk*rows+r] = s, m
		}
	}
	return ref, mag
}

// randFloats returns n values of a normal distribution with outliers, as
// activations and weights have.
func randFloats(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		f := rng.NormFloat64() * scale
		if rng.IntN(50) == 0 {
			f *= 8
		}
		v[i] = float32(f)
	}
	return v
}
