package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
)

var blockTypes = []backend.DType{
	backend.Q4_0, backend.Q4_1, backend.Q5_0, backend.Q5_1, backend.Q8_0, backend.Q8_1,
	backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K, backend.Q8_K,
}

// TestDequantizeMatchesReference decodes random blocks and requires the
// exact float32 values of the llama.cpp-structured reference decoder.
func TestDequantizeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, dt := range blockTypes {
		t.Run(dt.String(), func(t *testing.T) {
			tr, err := backend.TraitsOf(dt)
			require.NoError(t, err)
			const nb = 7
			src := randomBlocks(r, dt, nb)
			got := make([]float32, nb*tr.BlockSize)
			require.NoError(t, Dequantize(dt, src, got))
			nonzero := 0
			for b := 0; b < nb; b++ {
				want, _ := refDequantBlock(dt, src[b*tr.TypeSize:(b+1)*tr.TypeSize])
				for j, w := range want {
					g := got[b*tr.BlockSize+j]
					require.Equal(t, math.Float32bits(w), math.Float32bits(g), "block %d element %d: want %g got %g", b, j, w, g)
					if g != 0 {
						nonzero++
					}
				}
			}
			require.Greater(t, nonzero, nb*tr.BlockSize/2, "random blocks decoded mostly to zero")
		})
	}
}

func TestDequantizeFloatTypes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := randNormal(r, 67, 3)
	f32 := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(v))
	}
	got := make([]float32, len(x))
	require.NoError(t, Dequantize(backend.F32, f32, got))
	require.Equal(t, x, got)

	out := make([]byte, 4*len(x))
	require.NoError(t, Quantize(backend.F32, x, out))
	require.Equal(t, f32, out, "F32 quantize is a little-endian copy")

	h := make([]byte, 2*len(x))
	bf := make([]byte, 2*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint16(h[2*i:], uint16(i*977+13))
		binary.LittleEndian.PutUint16(bf[2*i:], uint16(math.Float32bits(v)>>16))
	}
	require.NoError(t, Dequantize(backend.F16, h, got))
	for i := range x {
		want := math.Float32bits(h2f(h[2*i:]))
		if hv := binary.LittleEndian.Uint16(h[2*i:]); hv&0x7c00 == 0x7c00 && hv&0x3ff != 0 {
			// NaN: sign and payload kept, made quiet (as F16C does).
			want = uint32(hv&0x8000)<<16 | 0x7fc00000 | uint32(hv&0x3ff)<<13
		}
		require.Equal(t, want, math.Float32bits(got[i]), "F16 element %d", i)
	}
	require.NoError(t, Dequantize(backend.BF16, bf, got))
	for i, v := range x {
		require.Equal(t, math.Float32bits(v)&0xffff0000, math.Float32bits(got[i]), "BF16 element %d", i)
	}
}

func TestDequantizeErrors(t *testing.T) {
	dst := make([]float32, 64)
	assert.ErrorContains(t, Dequantize(backend.I32, make([]byte, 256), dst), "unsupported type I32")
	assert.ErrorContains(t, Dequantize(backend.Q4_0, make([]byte, 36), dst[:33]), "not a multiple of the block size 32")
	assert.ErrorContains(t, Dequantize(backend.Q4_0, make([]byte, 35), dst), "need 36 bytes, have 35")
	assert.ErrorContains(t, Dequantize(backend.DType(999), nil, dst), "unsupported type")
	require.NoError(t, Dequantize(backend.Q4_K, nil, nil), "zero elements is a no-op")

	assert.ErrorContains(t, Quantize(backend.Q8_1, dst, make([]byte, 72)), "unsupported type Q8_1")
	assert.ErrorContains(t, Quantize(backend.Q6_K, dst, make([]byte, 210)), "not a multiple of the block size 256")
	assert.ErrorContains(t, Quantize(backend.Q8_0, dst, make([]byte, 67)), "need 68 bytes, have 67")

	_, err := DequantizeRows(backend.Q8_0, make([]byte, 67), 2, 32)
	assert.ErrorContains(t, err, "needs 68 bytes, have 67")
	_, err = DequantizeRows(backend.Q8_0, make([]byte, 68), 2, 31)
	assert.ErrorContains(t, err, "block size")
}

// TestDequantizeRows checks the row helper against per-row Dequantize.
func TestDequantizeRows(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	src := randomBlocks(r, backend.Q6_K, 6)
	got, err := DequantizeRows(backend.Q6_K, src, 3, 512)
	require.NoError(t, err)
	for row := 0; row < 3; row++ {
		want := make([]float32, 512)
		require.NoError(t, Dequantize(backend.Q6_K, src[row*420:], want))
		require.Equal(t, want, got[row*512:(row+1)*512], fmt.Sprint("row ", row))
	}
}
