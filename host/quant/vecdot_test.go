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

var weightTypes = []backend.DType{
	backend.F32, backend.F16, backend.BF16,
	backend.Q4_0, backend.Q4_1, backend.Q5_0, backend.Q5_1, backend.Q8_0,
	backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K,
}

// actErrorBound bounds |x - dequantized activation| for element i of x
// quantized to act: half a step plus the fp16 rounding of the block scale.
func actErrorBound(act backend.DType, x []float32, i int) float64 {
	blockOf := func(bs int) []float32 { b := i / bs * bs; return x[b : b+bs] }
	switch act {
	case backend.F32:
		return 0
	case backend.F16:
		return math.Max(math.Abs(float64(x[i]))/2048, math.Ldexp(1, -25))
	case backend.BF16:
		return math.Abs(float64(x[i])) / 256
	case backend.Q8_0, backend.Q8_1:
		a := float64(blockAmax(blockOf(32)))
		return a/127/2 + a/2048 + 1e-6*a
	case backend.Q8_K:
		a := float64(blockAmax(blockOf(256)))
		return a/127/2 + 1e-6*a
	}
	panic(act)
}

type vecCase struct {
	w      backend.DType
	n      int
	wf     []float32 // dequantized weight row
	wq, xq []byte
	x, xd  []float32 // activations and their dequantized quantization
}

func makeVecCase(t *testing.T, r *rand.Rand, w backend.DType, n int, randomBits bool) vecCase {
	t.Helper()
	c := vecCase{w: w, n: n}
	tr, _ := backend.TraitsOf(w)
	if randomBits && tr.Quantized {
		c.wq = randomBlocks(r, w, n/tr.BlockSize)
	} else {
		rb, _ := rowBytes(w, n)
		c.wq = make([]byte, rb)
		require.NoError(t, Quantize(w, randNormal(r, n, 0.05), c.wq))
	}
	c.wf = make([]float32, n)
	require.NoError(t, Dequantize(w, c.wq, c.wf))
	act, err := ActivationType(w)
	require.NoError(t, err)
	c.x = randNormal(r, n, 1.5)
	rb, _ := rowBytes(act, n)
	c.xq = make([]byte, rb)
	require.NoError(t, QuantizeActivations(act, c.x, c.xq))
	c.xd = make([]float32, n)
	if act == backend.Q8_1 { // no Dequantize for Q8_1 in the reference set: d*q
		for i := range c.xd {
			blk := c.xq[i/32*36:]
			c.xd[i] = h2f(blk) * float32(int8(blk[4+i%32]))
		}
	} else {
		require.NoError(t, Dequantize(act, c.xq, c.xd))
	}
	return c
}

// TestVecDot compares VecDot with float64 dots of the dequantized rows:
// with the dequantized activations it must agree to float32 rounding
// (plus, for Q4_1/Q5_1, the fp16 rounding of the stored s = d*sum(q) that
// llama.cpp uses for the min term); with the original activations it must
// agree within sum |w_i| * (activation quantization error bound of x_i).
func TestVecDot(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for _, w := range weightTypes {
		for _, randomBits := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/randombits=%v", w, randomBits), func(t *testing.T) {
				c := makeVecCase(t, r, w, 768, randomBits)
				got, err := VecDot(w, c.n, c.wq, c.xq)
				require.NoError(t, err)

				var exact, abs, quantErr, vsOriginal float64
				for i := range c.wf {
					exact += float64(c.wf[i]) * float64(c.xd[i])
					vsOriginal += float64(c.wf[i]) * float64(c.x[i])
					abs += math.Abs(float64(c.wf[i]) * float64(c.xd[i]))
					act, _ := ActivationType(w)
					quantErr += math.Abs(float64(c.wf[i])) * actErrorBound(act, c.x, i)
				}
				tol := 1e-6*abs + 1e-30
				if w == backend.Q4_1 || w == backend.Q5_1 {
					wsz := typeSize(w)
					for b := 0; b < c.n/32; b++ {
						m := math.Abs(float64(h2f(c.wq[b*wsz+2:])))
						s := math.Abs(float64(h2f(c.xq[b*36+2:])))
						tol += m * s / 2048
					}
				}
				require.InDelta(t, exact, float64(got), tol, "VecDot vs dequantized dot")
				require.InDelta(t, vsOriginal, float64(got), quantErr+tol, "VecDot vs dot with unquantized activations")
				require.NotZero(t, got)
			})
		}
	}
}

// TestBlockSums recomputes the per-block integer sums from the reference
// decoders' integer decomposition and requires exact equality.
func TestBlockSums(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	for _, w := range []backend.DType{backend.Q4_0, backend.Q4_1, backend.Q5_0, backend.Q5_1, backend.Q8_0} {
		c := makeVecCase(t, r, w, 32*11, true)
		got, err := BlockSums(w, c.n, c.wq, c.xq)
		require.NoError(t, err, w.String())
		require.Len(t, got, 11)
		act, _ := ActivationType(w)
		wsz, xsz := typeSize(w), typeSize(act)
		for b := range got {
			_, we := refDequantBlock(w, c.wq[b*wsz:(b+1)*wsz])
			_, xe := refDequantBlock(act, c.xq[b*xsz:(b+1)*xsz])
			var want int32
			for i := range we {
				want += int32(we[i].q * xe[i].q)
			}
			require.Equal(t, want, got[b], "%v block %d", w, b)
		}
		switch w {
		case backend.Q8_0:
			require.Equal(t, got, Q8_0BlockSums(c.wq, c.xq))
		case backend.Q4_0:
			require.Equal(t, got, Q4_0BlockSums(c.wq, c.xq))
		}
	}
	require.Nil(t, Q8_0BlockSums(make([]byte, 33), make([]byte, 34)), "no whole block")
}

// TestKBlockSums recomputes the K-quant super-block sums from the
// reference decoders' (q, scale, min) per element and the activation
// quants, and checks that they reproduce the dequantized dot.
func TestKBlockSums(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	for _, w := range []backend.DType{backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K} {
		for _, randomBits := range []bool{false, true} {
			c := makeVecCase(t, r, w, 256*3, randomBits)
			got, err := KBlockSums(w, c.n, c.wq, c.xq)
			require.NoError(t, err, w.String())
			require.Len(t, got, 3)
			wsz := typeSize(w)
			sub := 16
			if w == backend.Q4_K || w == backend.Q5_K {
				sub = 32
			}
			for b := range got {
				_, we := refDequantBlock(w, c.wq[b*wsz:(b+1)*wsz])
				xb := c.xq[b*292 : (b+1)*292]
				var want KSums
				for j := 0; j < 256/sub; j++ {
					var isum, bsum int32
					for i := j * sub; i < (j+1)*sub; i++ {
						qx := int32(int8(xb[4+i]))
						isum += int32(we[i].q) * qx
						bsum += qx
					}
					want.Sub[j] = isum
					want.Scaled += int32(we[j*sub].scale) * isum
					want.Mins += int32(we[j*sub].min) * bsum
				}
				require.Equal(t, want, got[b], "%v block %d (random bits %v)", w, b, randomBits)

				// The sums rebuild the block's dot of dequantized rows.
				var dot, abs float64
				for i := 0; i < 256; i++ {
					p := float64(c.wf[256*b+i]) * float64(c.xd[256*b+i])
					dot += p
					abs += math.Abs(p)
				}
				xd := float64(math.Float32frombits(binary.LittleEndian.Uint32(xb)))
				d, dmin := kScales(w, c.wq[b*wsz:])
				rebuilt := xd * (float64(d)*float64(got[b].Scaled) - float64(dmin)*float64(got[b].Mins))
				require.InDelta(t, dot, rebuilt, 1e-6*abs+1e-30, "%v block %d rebuilt dot", w, b)
			}
		}
	}
}

func TestVecDotErrors(t *testing.T) {
	_, err := VecDot(backend.Q8_K, 256, make([]byte, 292), make([]byte, 292))
	assert.ErrorContains(t, err, "no dot product for weight type Q8_K")
	_, err = VecDot(backend.Q4_0, 48, make([]byte, 36), make([]byte, 68))
	assert.ErrorContains(t, err, "block size 32")
	_, err = VecDot(backend.Q4_0, 64, make([]byte, 35), make([]byte, 68))
	assert.ErrorContains(t, err, "Q4_0 weight row of 64 elements needs 36 bytes, have 35")
	_, err = VecDot(backend.Q4_K, 256, make([]byte, 144), make([]byte, 291))
	assert.ErrorContains(t, err, "Q8_K activation row of 256 elements needs 292 bytes, have 291")
	_, err = BlockSums(backend.Q4_K, 256, nil, nil)
	assert.ErrorContains(t, err, "not a 32-element block weight type")
	_, err = KBlockSums(backend.Q8_0, 256, nil, nil)
	assert.ErrorContains(t, err, "not a K-quant weight type")
	_, err = KBlockSums(backend.Q6_K, 256, make([]byte, 209), make([]byte, 292))
	assert.ErrorContains(t, err, "needs 210 bytes, have 209")
}
