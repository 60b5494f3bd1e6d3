package cuda_test

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
	"qinfer/kernels"
)

// u is float32's unit roundoff.
const u = 1.0 / (1 << 24)

// dequantActs returns the activation values the dot product sees after
// the quantization for weight type typ (the CPU's), as float64.
func dequantActs(t *testing.T, typ backend.DType, x []float32) []float64 {
	t.Helper()
	out := make([]float64, len(x))
	if typ == backend.F32 {
		for i, v := range x {
			out[i] = float64(v)
		}
		return out
	}
	act, err := quant.ActivationType(typ)
	require.NoError(t, err)
	rb, err := backend.RowBytes(act, len(x))
	require.NoError(t, err)
	q := make([]byte, rb)
	require.NoError(t, quant.QuantizeActivations(act, x, q))
	f := make([]float32, len(x))
	require.NoError(t, quant.Dequantize(act, q, f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out
}

// matmulRef returns sum_k w[r][k]*xhat[t][k] in float64 and a rigorous
// float32 error bound for it: (terms + 8) * u * sum|w*xhat|, terms being
// the number of float additions on the longest path (blocks, or elements
// for F16/F32).
func matmulRef(t *testing.T, w *backend.Weight, x []float32, ntok int) (ref, tol []float32) {
	t.Helper()
	wd, err := quant.DequantizeRows(w.Type, w.Data, w.Rows, w.Cols)
	require.NoError(t, err)
	terms := w.Cols
	if tr, _ := backend.TraitsOf(w.Type); tr.BlockSize > 1 {
		terms = w.Cols / tr.BlockSize
	}
	ref, tol = make([]float32, ntok*w.Rows), make([]float32, ntok*w.Rows)
	for tk := 0; tk < ntok; tk++ {
		xh := dequantActs(t, w.Type, x[tk*w.Cols:(tk+1)*w.Cols])
		for r := 0; r < w.Rows; r++ {
			var s, a float64
			for k := 0; k < w.Cols; k++ {
				p := float64(wd[r*w.Cols+k]) * xh[k]
				s += p
				a += math.Abs(p)
			}
			ref[tk*w.Rows+r] = float32(s)
			tol[tk*w.Rows+r] = float32(float64(terms+8)*u*a + 1e-30)
		}
	}
	return ref, tol
}

var matmulCases = []struct {
	typ        backend.DType
	rows, cols int
}{
	{backend.Q8_0, 37, 96}, {backend.Q8_0, 130, 320},
	{backend.Q4_0, 37, 96}, {backend.Q4_0, 130, 160},
	{backend.Q4_K, 37, 256}, {backend.Q5_K, 37, 512}, {backend.Q6_K, 130, 256}, {backend.Q6_K, 21, 512},
	{backend.F16, 37, 70}, {backend.F32, 130, 37},
}

// matmulTokens cover every GEMV variant (1, 2, 4, 8 tokens) and the GEMM
// with a partial token tile (9) and two tiles (70).
var matmulTokens = []int{1, 3, 8, 9, 70}

// TestParityMatMul compares every weight format and token count with the
// CPU backend and a float64 reference, on random normal weights and
// activations, through a strided view, with a poisoned output.
func TestParityMatMul(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		for _, c := range matmulCases {
			for _, ntok := range matmulTokens {
				t.Run(fmt.Sprintf("%v_%dx%d_t%d", c.typ, c.rows, c.cols, ntok), func(t *testing.T) {
					rng := rand.New(rand.NewSource(int64(ntok*1000 + c.rows + c.cols)))
					p := newPair(t, d)
					w := randomWeight(t, rng, c.typ, c.rows, c.cols)
					wt := p.weight(w)
					x := randn(rng, ntok*c.cols, 2)
					// The input is a view of a wider activation: rows stride cols+5.
					wide := make([]float32, ntok*(c.cols+5))
					for tk := 0; tk < ntok; tk++ {
						copy(wide[tk*(c.cols+5)+3:], x[tk*c.cols:(tk+1)*c.cols])
					}
					xa := p.view(p.act("x", ntok, c.cols+5, wide), 0, ntok, 3, c.cols)
					y := p.act("y", ntok, c.rows, nil)
					p.poison(y)
					require.NoError(t, p.gpu.MatMul(y.g, wt.g, xa.g))
					require.NoError(t, p.cpu.MatMul(y.c, wt.c, xa.c))
					gv, cv := p.read(y)
					ref, tol := matmulRef(t, w, x, ntok)
					within(t, cv, ref, tol, "cpu vs float64 reference")
					within(t, gv, ref, tol, "gpu vs float64 reference")
					t.Logf("max |gpu-cpu| = %.3g", maxDiff(gv, cv))
				})
			}
		}
	})
}

// unitWeight builds a weight whose block scales are 1 (and mins 1 for the
// K-quants), so every dequantized value is a small integer.
func unitWeight(rng *rand.Rand, typ backend.DType, rows, cols int) *backend.Weight {
	rb, _ := backend.RowBytes(typ, cols)
	w := &backend.Weight{Name: "unit " + typ.String(), Type: typ, Rows: rows, Cols: cols, Data: make([]byte, rows*rb)}
	one := []byte{0x00, 0x3c}
	fill := func(b []byte) { rng.Read(b) }
	switch typ {
	case backend.Q8_0:
		for i := 0; i < len(w.Data); i += 34 {
			copy(w.Data[i:], one)
			for j := 0; j < 32; j++ {
				w.Data[i+2+j] = byte(int8(rng.Intn(255) - 127))
			}
		}
	case backend.Q4_0:
		for i := 0; i < len(w.Data); i += 18 {
			copy(w.Data[i:], one)
			fill(w.Data[i+2 : i+18])
		}
	case backend.Q4_K, backend.Q5_K:
		size := 144
		maxScale := 63
		if typ == backend.Q5_K {
			size, maxScale = 176, 31
		}
		for i := 0; i < len(w.Data); i += size {
			blk := w.Data[i : i+size]
			copy(blk, one)
			copy(blk[2:], one)
			var sc, m [8]uint8
			for j := range sc {
				sc[j], m[j] = uint8(rng.Intn(maxScale+1)), uint8(rng.Intn(64))
			}
			packScaleMinK4(blk[4:16], sc, m)
			fill(blk[16:])
		}
	case backend.Q6_K:
		for i := 0; i < len(w.Data); i += 210 {
			blk := w.Data[i : i+210]
			fill(blk[:192])
			for j := 0; j < 16; j++ {
				blk[192+j] = byte(int8(rng.Intn(17) - 8))
			}
			copy(blk[208:], one)
		}
	case backend.W8:
		for i := range w.Data {
			w.Data[i] = byte(int8(rng.Intn(255) - 127))
		}
		w.RowScales = make([]float32, rows)
		for i := range w.RowScales {
			w.RowScales[i] = 1
		}
	}
	return w
}

// packScaleMinK4 is the inverse of ggml's get_scale_min_k4: eight 6-bit
// scales and mins into 12 bytes.
func packScaleMinK4(q []byte, sc, m [8]uint8) {
	for j := 0; j < 4; j++ {
		q[j] = sc[j]&63 | (sc[j+4]>>4)<<6
		q[j+4] = m[j]&63 | (m[j+4]>>4)<<6
		q[j+8] = sc[j+4]&15 | (m[j+4]&15)<<4
	}
}

// unitActs returns small integer activations in which every quantization
// block's scale comes out as exactly 1: each block has one element of
// magnitude 127 (for Q8_K the first, and negative: ggml divides -127 by
// the signed extreme) and the rest within ±20, with halves nowhere.
func unitActs(rng *rand.Rand, typ backend.DType, ntok, cols int) []float32 {
	x := make([]float32, ntok*cols)
	for i := range x {
		x[i] = float32(rng.Intn(41) - 20)
	}
	for tk := 0; tk < ntok; tk++ {
		row := x[tk*cols : (tk+1)*cols]
		switch typ {
		case backend.Q8_0, backend.Q4_0:
			for b := 0; b < cols/32; b++ {
				row[32*b+rng.Intn(32)] = float32(127 * (1 - 2*rng.Intn(2)))
			}
		case backend.Q4_K, backend.Q5_K, backend.Q6_K:
			for s := 0; s < cols/256; s++ {
				row[256*s] = -127
			}
		case backend.W8:
			row[rng.Intn(cols)] = 127
		}
	}
	return x
}

// TestParityMatMulExact checks the int32 sums bit for bit: with unit
// scales and integer activations every float operation after the integer
// dot products is exact, so the output must equal the exact integer sum
// computed here from the GGUF bytes, for every format, GEMV and GEMM.
func TestParityMatMulExact(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		for _, c := range []struct {
			typ        backend.DType
			rows, cols int
		}{{backend.Q8_0, 37, 320}, {backend.Q4_0, 37, 160}, {backend.Q4_K, 37, 512}, {backend.Q5_K, 37, 256},
			{backend.Q6_K, 37, 256}, {backend.W8, 37, 200}} {
			for _, ntok := range []int{1, 5, 70} {
				t.Run(fmt.Sprintf("%v_t%d", c.typ, ntok), func(t *testing.T) {
					rng := rand.New(rand.NewSource(int64(7*ntok + int(c.typ))))
					p := newPair(t, d)
					w := unitWeight(rng, c.typ, c.rows, c.cols)
					wt := p.weight(w)
					x := unitActs(rng, c.typ, ntok, c.cols)
					xa := p.act("x", ntok, c.cols, x)
					y := p.act("y", ntok, c.rows, nil)
					p.poison(y)
					require.NoError(t, p.gpu.MatMul(y.g, wt.g, xa.g))
					got := make([]float32, ntok*c.rows)
					require.NoError(t, p.gpu.Read(y.g, got))
					var wd []float32
					if c.typ == backend.W8 {
						wd = make([]float32, len(w.Data))
						for i, v := range w.Data {
							wd[i] = float32(int8(v))
						}
					} else {
						var err error
						wd, err = quant.DequantizeRows(c.typ, w.Data, c.rows, c.cols)
						require.NoError(t, err)
					}
					for tk := 0; tk < ntok; tk++ {
						for r := 0; r < c.rows; r++ {
							var s int64
							for k := 0; k < c.cols; k++ {
								wv := wd[r*c.cols+k]
								require.Equal(t, float32(math.Round(float64(wv))), wv, "weights must be integers")
								s += int64(wv) * int64(x[tk*c.cols+k])
							}
							require.Less(t, math.Abs(float64(s)), float64(1<<24), "test values must keep sums exact in float32")
							require.Equal(t, float32(s), got[tk*c.rows+r], "token %d row %d", tk, r)
						}
					}
				})
			}
		}
	})
}

// TestParityActivationQuantization checks the device's activation
// quantization byte for byte against quant.QuantizeActivations (Q8_0 with
// llama.cpp's AVX2 rounding, Q8_K) and quant.QuantizeTokenInt8 (W8), with
// rounding ties and a strided input (TestParityRowActivations covers the
// row formats' edge cases).
func TestParityActivationQuantization(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		for _, c := range []struct {
			typ  backend.DType
			cols int
		}{{backend.Q8_0, 96}, {backend.Q8_0, 320}, {backend.Q4_K, 512}, {backend.Q6_K, 256}, {backend.W8, 100}} {
			t.Run(fmt.Sprintf("%v_%d", c.typ, c.cols), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(c.cols)))
				p := newPair(t, d)
				const ntok = 5
				wt := p.weight(randomWeight(t, rng, c.typ, 3, c.cols))
				x := randn(rng, ntok*c.cols, 1.5)
				// Ties: scale 1 from an extreme of ±127, then halves that round
				// to even (2.5 -> 2), which C's roundf would round away.
				for k := 0; k < 32; k++ {
					x[k] = float32(k%7) - 3.5
				}
				x[0] = -127
				x[c.cols] = 0 // an all-zero first block on token 1
				for k := 1; k < 32 && k < c.cols; k++ {
					x[c.cols+k] = 0
				}
				wide := make([]float32, ntok*(c.cols+7))
				for tk := 0; tk < ntok; tk++ {
					copy(wide[tk*(c.cols+7)+1:], x[tk*c.cols:(tk+1)*c.cols])
				}
				xa := p.view(p.act("x", ntok, c.cols+7, wide), 0, ntok, 1, c.cols)
				got, err := d.be.QuantizedForTest(wt.g, xa.g)
				require.NoError(t, err)
				var want []byte
				if c.typ == backend.W8 {
					want = rowActsBytes(t, x, ntok, c.cols, 0)
				} else {
					act, err := quant.ActivationType(c.typ)
					require.NoError(t, err)
					rb, err := backend.RowBytes(act, c.cols)
					require.NoError(t, err)
					want = make([]byte, ntok*rb)
					for tk := 0; tk < ntok; tk++ {
						require.NoError(t, quant.QuantizeActivations(act, x[tk*c.cols:(tk+1)*c.cols], want[tk*rb:]))
					}
				}
				assert.Equal(t, want, got)
			})
		}
	})
}

// TestGemmW8Tiles: both W8 GEMM tiles (128 and 64 rows per block) give
// MatMul's result bit for bit: the same int32 sums, the same scaling.
func TestGemmW8Tiles(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewSource(11))
		const rows, cols, ntok = 200, 192, 140
		p := newPair(t, d)
		g, err := p.gpu.Upload(randomWeight(t, rng, backend.W8, rows, cols))
		require.NoError(t, err)
		defer p.gpu.Free(g)
		x := p.act("x", ntok, cols, randn(rng, ntok*cols, 1))
		want := p.act("want", ntok, rows, nil)
		require.NoError(t, p.gpu.MatMul(want.g, g, x.g))
		wv := make([]float32, ntok*rows)
		require.NoError(t, p.gpu.Read(want.g, wv))
		for _, k := range []*kernels.Kernel{kernels.GemmW8, kernels.GemmW8M64} {
			y := p.act("y", ntok, rows, nil)
			p.poison(y)
			require.NoError(t, d.be.StageForTest(g, x.g))
			require.NoError(t, d.be.ProductForTest(y.g, g, ntok, k))
			got := make([]float32, ntok*rows)
			require.NoError(t, p.gpu.Read(y.g, got))
			assert.Equal(t, wv, got, k.Name)
		}
	})
}
