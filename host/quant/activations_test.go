package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
)

func TestActivationType(t *testing.T) {
	want := map[backend.DType]backend.DType{
		backend.F32: backend.F32, backend.F16: backend.F16, backend.BF16: backend.BF16,
		backend.Q4_0: backend.Q8_0, backend.Q5_0: backend.Q8_0, backend.Q8_0: backend.Q8_0,
		backend.Q4_1: backend.Q8_1, backend.Q5_1: backend.Q8_1,
		backend.Q2_K: backend.Q8_K, backend.Q3_K: backend.Q8_K, backend.Q4_K: backend.Q8_K,
		backend.Q5_K: backend.Q8_K, backend.Q6_K: backend.Q8_K,
	}
	for w, a := range want {
		got, err := ActivationType(w)
		require.NoError(t, err, w.String())
		require.Equal(t, a, got, w.String())
	}
	for _, w := range []backend.DType{backend.Q8_1, backend.Q8_K, backend.I8, backend.W8, backend.DType(77)} {
		_, err := ActivationType(w)
		require.Error(t, err, w.String())
	}
}

func blockAmax(x []float32) float32 {
	var m float32
	for _, v := range x {
		m = max(m, float32(math.Abs(float64(v))))
	}
	return m
}

// TestActivationsQ8_0 checks llama.cpp's AVX2 activation quantization:
// scale fp16(amax/127), every quant within half a step of x*127/amax, and
// halfway cases rounded to even, which is where it differs from the
// reference weight quantizer (roundf, away from zero).
func TestActivationsQ8_0(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	x := randNormal(r, 32*9, 2)
	q := make([]byte, 34*9)
	require.NoError(t, QuantizeActivations(backend.Q8_0, x, q))
	for b := 0; b < 9; b++ {
		blk, y := x[32*b:32*b+32], q[34*b:34*b+34]
		amax := blockAmax(blk)
		require.Equal(t, FP32ToFP16(amax/127), binary.LittleEndian.Uint16(y), "block %d scale", b)
		for j, v := range blk {
			exact := float64(v) * 127 / float64(amax)
			require.InDelta(t, exact, float64(int8(y[2+j])), 0.5+1e-4, "block %d element %d", b, j)
		}
	}

	// Ties: half-integers with a block maximum of 127 make id exactly 1.
	ties := make([]float32, 32)
	for j := range ties {
		ties[j] = float32(j-16) + 0.5 // -15.5 ... 15.5
	}
	ties[31] = 127
	act := make([]byte, 34)
	ref := make([]byte, 34)
	require.NoError(t, QuantizeActivations(backend.Q8_0, ties, act))
	require.NoError(t, Quantize(backend.Q8_0, ties, ref))
	for j := 0; j < 31; j++ {
		even := math.RoundToEven(float64(ties[j]))
		away := math.Round(float64(ties[j]))
		assert.Equal(t, even, float64(int8(act[2+j])), "activation element %g rounds to even", ties[j])
		assert.Equal(t, away, float64(int8(ref[2+j])), "weight element %g rounds away from zero", ties[j])
	}
}

func TestActivationsQ8_1(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	x := randNormal(r, 32*5, 0.7)
	q1 := make([]byte, 36*5)
	q0 := make([]byte, 34*5)
	require.NoError(t, QuantizeActivations(backend.Q8_1, x, q1))
	require.NoError(t, QuantizeActivations(backend.Q8_0, x, q0))
	for b := 0; b < 5; b++ {
		y, y0 := q1[36*b:36*b+36], q0[34*b:34*b+34]
		require.Equal(t, y0[:2], y[:2], "block %d: same scale as Q8_0", b)
		require.Equal(t, y0[2:], y[4:], "block %d: same quants as Q8_0", b)
		sum := 0
		for _, v := range y[4:] {
			sum += int(int8(v))
		}
		d := blockAmax(x[32*b:32*b+32]) / 127
		require.Equal(t, FP32ToFP16(d*float32(sum)), binary.LittleEndian.Uint16(y[2:]), "block %d: s = fp16(d*sum)", b)
	}
}

func TestActivationsQ8_K(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	x := randNormal(r, 256*3, 1.3)
	x[300] = -9 // block 1's extreme is negative
	q := make([]byte, 292*3)
	require.NoError(t, QuantizeActivations(backend.Q8_K, x, q))
	for b := 0; b < 3; b++ {
		blk, y := x[256*b:256*b+256], q[292*b:292*b+292]
		d := math.Float32frombits(binary.LittleEndian.Uint32(y))
		amax := blockAmax(blk)
		require.InDelta(t, float64(amax)/127, math.Abs(float64(d)), float64(amax)*1e-7, "block %d |d|", b)
		for j, v := range blk {
			qv := int8(y[4+j])
			require.LessOrEqual(t, qv, int8(127))
			require.InDelta(t, float64(v)/float64(d), float64(qv), 0.5+1e-4, "block %d element %d", b, j)
			if abs32(v) == amax {
				require.Equal(t, int8(-127), qv, "the extreme maps to -127 (d has the opposite sign)")
			}
		}
		for g := 0; g < 16; g++ {
			sum := 0
			for _, v := range y[4+16*g : 4+16*g+16] {
				sum += int(int8(v))
			}
			require.Equal(t, int16(sum), int16(binary.LittleEndian.Uint16(y[260+2*g:])), "block %d bsum %d", b, g)
		}
	}
	require.NoError(t, QuantizeActivations(backend.Q8_K, make([]float32, 256), q))
	require.Equal(t, make([]byte, 292), q[:292], "all-zero block encodes as zeros")
}

func TestActivationsFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	x := randNormal(r, 40, 5)
	for _, dt := range []backend.DType{backend.F32, backend.F16, backend.BF16} {
		rb, _ := rowBytes(dt, len(x))
		a, w := make([]byte, rb), make([]byte, rb)
		require.NoError(t, QuantizeActivations(dt, x, a))
		require.NoError(t, Quantize(dt, x, w))
		require.Equal(t, w, a, dt.String())
	}
}

func TestActivationsErrors(t *testing.T) {
	x := make([]float32, 64)
	assert.ErrorContains(t, QuantizeActivations(backend.Q4_0, x, make([]byte, 64)), "not an activation type")
	assert.ErrorContains(t, QuantizeActivations(backend.Q8_K, x, make([]byte, 292)), "block size 256")
	assert.ErrorContains(t, QuantizeActivations(backend.Q8_1, x, make([]byte, 71)), "need 72 bytes, have 71")
	assert.ErrorContains(t, QuantizeActivations(backend.DType(500), x, nil), "unknown tensor type")
}
