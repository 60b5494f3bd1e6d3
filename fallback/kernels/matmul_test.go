package kernels

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

// Row and token counts are chosen around the 16-row panels and their
// 8-row halves, 4-row GEMV groups, the 4- and 12-token tiles and the
// GEMV/GEMM switch, never all multiples.
var (
	testRows = []int{1, 5, 13, 37}
	testToks = []int{1, 2, 5, 14}
)

// layout is a way to run a product: MatMul on the GGUF weights, or
// MatMulPacked on the Prepared ones.
type layout struct {
	name string
	run  func(p *Pool, wt backend.DType, w []byte, rows, cols int, x []byte, ntok int, dst []float32, ldd int) error
}

var layouts = []layout{
	{"gguf", MatMul},
	{"packed", func(p *Pool, wt backend.DType, w []byte, rows, cols int, x []byte, ntok int, dst []float32, ldd int) error {
		pw, err := Prepare(wt, w, rows, cols)
		if err != nil {
			return err
		}
		return MatMulPacked(p, pw, x, ntok, dst, ldd)
	}},
}

// runMatMul returns the product on each layout, by layout name.
func runMatMul(t testing.TB, p *Pool, wt backend.DType, w []byte, rows, cols int, x []byte, ntok int) map[string][]float32 {
	outs := map[string][]float32{}
	for _, l := range layouts {
		// A stride above rows, with guard values, checks that nothing is
		// written outside the rows of each token.
		ldd := rows + 3
		dst := make([]float32, ntok*ldd)
		for i := range dst {
			dst[i] = -12345
		}
		require.NoError(t, l.run(p, wt, w, rows, cols, x, ntok, dst, ldd), l.name)
		out := make([]float32, 0, rows*ntok)
		for tk := 0; tk < ntok; tk++ {
			out = append(out, dst[tk*ldd:tk*ldd+rows]...)
			for i := tk*ldd + rows; i < (tk+1)*ldd; i++ {
				require.Equal(t, float32(-12345), dst[i], "%s token %d: write past the rows", l.name, tk)
			}
		}
		outs[l.name] = out
	}
	return outs
}

// TestMatMulExactIntegers checks the integer sums bit for bit: with every
// float scale 1.0 the exact dot product is an integer below 2^24, which
// every path must return exactly (float32 holds it, and every partial sum,
// without rounding).
func TestMatMulExactIntegers(t *testing.T) {
	featureCases(t, func(t *testing.T) {
		p := NewPool(2)
		defer p.Close()
		rng := rand.New(rand.NewPCG(1, 2))
		for _, wt := range weightTypes {
			amp := 127
			if wt == backend.Q4_K || wt == backend.Q5_K || wt == backend.Q6_K {
				amp = 15 // keeps |sum| of a K-quant row below 2^24
			}
			for _, cols := range colsFor(wt) {
				for _, rows := range testRows {
					for _, ntok := range testToks {
						name := fmt.Sprintf("%v/%dx%d/%dtok", wt, rows, cols, ntok)
						w := unitWeights(t, rng, wt, rows, cols, false)
						x := unitActs(t, rng, wt, ntok, cols, amp)
						ref, mag := reference(t, wt, w, rows, cols, x, ntok)
						sums := integerSums(t, wt, w, rows, cols, x, ntok)
						for l, got := range runMatMul(t, p, wt, w, rows, cols, x, ntok) {
							for i := range ref {
								require.Less(t, mag[i], float64(1<<24), "%s: test data too large to be exact", name)
								require.Equal(t, float32(ref[i]), got[i], "%s %s: output %d (row %d, token %d)", name, l, i, i%rows, i/rows)
								if sums != nil {
									require.Equal(t, float32(sums[i]), got[i], "%s %s: output %d against host/quant's integer sums", name, l, i)
								}
							}
						}
					}
				}
			}
		}
	})
}

// integerSums returns each output's exact integer dot product from
// host/quant's block sums (quant.BlockSums, quant.KBlockSums), which with
// every float scale 1.0 is the whole result; nil for the float formats.
func integerSums(t testing.TB, wt backend.DType, w []byte, rows, cols int, x []byte, ntok int) []int64 {
	wrb, err := backend.RowBytes(wt, cols)
	require.NoError(t, err)
	xrb, err := ActRowBytes(wt, cols)
	require.NoError(t, err)
	out := make([]int64, rows*ntok)
	for tk := 0; tk < ntok; tk++ {
		for r := 0; r < rows; r++ {
			wr, xr := w[r*wrb:(r+1)*wrb], x[tk*xrb:(tk+1)*xrb]
			var s int64
			switch wt {
			case backend.Q8_0, backend.Q4_0:
				bs, err := quant.BlockSums(wt, cols, wr, xr)
				require.NoError(t, err)
				for _, v := range bs {
					s += int64(v)
				}
			case backend.Q4_K, backend.Q5_K, backend.Q6_K:
				ks, err := quant.KBlockSums(wt, cols, wr, xr)
				require.NoError(t, err)
				for _, v := range ks {
					s += int64(v.Scaled) - int64(v.Mins)
				}
			default:
				return nil
			}
			out[tk*rows+r] = s
		}
	}
	return out
}

// TestMatMulExtremes runs the largest quants and activations (±127), where
// a saturating or overflowing int16 intermediate would show, with unit
// scales; sums may exceed 2^24, so the comparison allows float rounding.
func TestMatMulExtremes(t *testing.T) {
	featureCases(t, func(t *testing.T) {
		p := NewPool(2)
		defer p.Close()
		rng := rand.New(rand.NewPCG(3, 4))
		for _, wt := range weightTypes {
			cols := colsFor(wt)[1]
			for _, ntok := range []int{1, 6} {
				rows := 11
				w := unitWeights(t, rng, wt, rows, cols, true)
				x := unitActs(t, rng, wt, ntok, cols, -127)
				ref, mag := reference(t, wt, w, rows, cols, x, ntok)
				for l, got := range runMatMul(t, p, wt, w, rows, cols, x, ntok) {
					for i := range ref {
						assert.InDelta(t, ref[i], float64(got[i]), 1e-6*mag[i], "%v %s ntok %d output %d", wt, l, ntok, i)
					}
				}
			}
		}
	})
}

// TestMatMulQuantized runs realistic data: weights quantized by host/quant
// from random floats, activations by QuantizeActs. The result must be
// within 1e-6 of the float64 dot of the dequantized values, relative to
// the sum of the magnitudes of its terms.
func TestMatMulQuantized(t *testing.T) {
	featureCases(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for _, threads := range []int{1, 3} {
			p := NewPool(threads)
			for _, wt := range weightTypes {
				for _, cols := range colsFor(wt) {
					rows, ntok := 21, 6
					if cols == 1056 {
						rows, ntok = 9, 5
					}
					rb, err := backend.RowBytes(wt, cols)
					require.NoError(t, err)
					w := make([]byte, rows*rb)
					require.NoError(t, quant.Quantize(wt, randFloats(rng, rows*cols, 0.02), w))
					xf := randFloats(rng, ntok*cols, 1)
					xrb, err := ActRowBytes(wt, cols)
					require.NoError(t, err)
					x := make([]byte, ntok*xrb)
					require.NoError(t, QuantizeActs(p, wt, xf, cols, ntok, cols, x))
					ref, mag := reference(t, wt, w, rows, cols, x, ntok)
					for l, got := range runMatMul(t, p, wt, w, rows, cols, x, ntok) {
						for i := range ref {
							require.InDelta(t, ref[i], float64(got[i]), 1e-6*mag[i]+1e-30, "%v %s %dx%d threads %d output %d", wt, l, rows, cols, threads, i)
						}
					}
				}
			}
			p.Close()
		}
	})
}

// TestMatMulPathsAgree compares the SIMD path with the pure-Go one on the
// same quantized data of a realistic shape, where they differ only in the
// order of the float accumulation.
func TestMatMulPathsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	p := NewPool(2)
	defer p.Close()
	for _, wt := range weightTypes {
		rows, cols, ntok := 67, 1024, 7
		rb, err := backend.RowBytes(wt, cols)
		require.NoError(t, err)
		w := make([]byte, rows*rb)
		require.NoError(t, quant.Quantize(wt, randFloats(rng, rows*cols, 0.02), w))
		xrb, err := ActRowBytes(wt, cols)
		require.NoError(t, err)
		x := make([]byte, ntok*xrb)
		require.NoError(t, QuantizeActs(p, wt, randFloats(rng, ntok*cols, 1), cols, ntok, cols, x))
		_, mag := reference(t, wt, w, rows, cols, x, ntok)
		var outs [][]float32
		featureCases(t, func(t *testing.T) {
			for _, o := range runMatMul(t, p, wt, w, rows, cols, x, ntok) {
				outs = append(outs, o)
			}
		})
		for _, o := range outs[1:] {
			for i := range o {
				require.InDelta(t, outs[0][i], o[i], 1e-6*mag[i], "%v output %d", wt, i)
			}
		}
	}
}

// TestMatMulMatchesVecDot checks each output against host/quant's
// reference dot product (llama.cpp's vec_dot order of operations).
func TestMatMulMatchesVecDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	p := NewPool(2)
	defer p.Close()
	featureCases(t, func(t *testing.T) {
		for _, wt := range weightTypes {
			cols := colsFor(wt)[len(colsFor(wt))-1]
			rows, ntok := 10, 5
			rb, _ := backend.RowBytes(wt, cols)
			w := make([]byte, rows*rb)
			require.NoError(t, quant.Quantize(wt, randFloats(rng, rows*cols, 0.02), w))
			xrb, _ := ActRowBytes(wt, cols)
			x := make([]byte, ntok*xrb)
			require.NoError(t, QuantizeActs(p, wt, randFloats(rng, ntok*cols, 1), cols, ntok, cols, x))
			_, mag := reference(t, wt, w, rows, cols, x, ntok)
			for l, got := range runMatMul(t, p, wt, w, rows, cols, x, ntok) {
				for tk := 0; tk < ntok; tk++ {
					for r := 0; r < rows; r++ {
						want, err := refDot(wt, cols, w[r*rb:(r+1)*rb], x[tk*xrb:(tk+1)*xrb])
						require.NoError(t, err)
						require.InDelta(t, want, got[tk*rows+r], 1e-6*mag[tk*rows+r], "%v %s row %d token %d", wt, l, r, tk)
					}
				}
			}
		}
	})
}

// TestMatMulReferenceTypes runs a weight type without a kernel of its own
// (Q5_0) through the reference path.
func TestMatMulReferenceTypes(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	p := NewPool(2)
	defer p.Close()
	wt := backend.Q5_0
	rows, cols, ntok := 9, 96, 3
	rb, err := backend.RowBytes(wt, cols)
	require.NoError(t, err)
	w := make([]byte, rows*rb)
	require.NoError(t, quant.Quantize(wt, randFloats(rng, rows*cols, 0.02), w))
	xrb, err := ActRowBytes(wt, cols)
	require.NoError(t, err)
	x := make([]byte, ntok*xrb)
	require.NoError(t, QuantizeActs(p, wt, randFloats(rng, ntok*cols, 1), cols, ntok, cols, x))
	ref, mag := reference(t, wt, w, rows, cols, x, ntok)
	for l, got := range runMatMul(t, p, wt, w, rows, cols, x, ntok) {
		for i := range ref {
			require.InDelta(t, ref[i], float64(got[i]), 1e-6*mag[i], "%s output %d", l, i)
		}
	}
}

func TestMatMulErrors(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	wt := backend.Q8_0
	w := make([]byte, 4*34)
	x := make([]byte, 2*34)
	dst := make([]float32, 8)
	require.NoError(t, MatMul(p, wt, w, 4, 32, x, 2, dst, 4))
	for name, err := range map[string]error{
		"short weights":  MatMul(p, wt, w[:100], 4, 32, x, 2, dst, 4),
		"short acts":     MatMul(p, wt, w, 4, 32, x[:40], 2, dst, 4),
		"short dst":      MatMul(p, wt, w, 4, 32, x, 2, dst[:7], 4),
		"small stride":   MatMul(p, wt, w, 4, 32, x, 2, dst, 3),
		"partial block":  MatMul(p, wt, w, 4, 31, x, 2, dst, 4),
		"no rows":        MatMul(p, wt, w, 0, 32, x, 2, dst, 4),
		"unknown type":   MatMul(p, backend.DType(77), w, 4, 32, x, 2, dst, 4),
		"no dot product": MatMul(p, backend.I8, w, 4, 32, x, 2, dst, 4),
		"nil pool":       MatMul(nil, wt, w, 4, 32, x, 2, dst, 4),
	} {
		assert.Error(t, err, name)
	}
}

func TestMatMulNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	p := NewPool(2)
	defer p.Close()
	featureCases(t, func(t *testing.T) {
		for _, wt := range weightTypes {
			for _, ntok := range []int{1, 8, 20} {
				rows, cols := 64, colsFor(wt)[1]
				w := unitWeights(t, rng, wt, rows, cols, false)
				x := unitActs(t, rng, wt, ntok, cols, 15)
				dst := make([]float32, rows*ntok)
				pw, err := Prepare(wt, w, rows, cols)
				require.NoError(t, err)
				// The first calls size the scratch buffers.
				require.NoError(t, MatMul(p, wt, w, rows, cols, x, ntok, dst, rows))
				require.NoError(t, MatMulPacked(p, pw, x, ntok, dst, rows))
				allocs := testing.AllocsPerRun(20, func() {
					_ = MatMul(p, wt, w, rows, cols, x, ntok, dst, rows)
				})
				assert.Zero(t, allocs, "%v ntok %d", wt, ntok)
				allocs = testing.AllocsPerRun(20, func() {
					_ = MatMulPacked(p, pw, x, ntok, dst, rows)
				})
				assert.Zero(t, allocs, "%v packed ntok %d", wt, ntok)
			}
		}
	})
}

// TestMatMulSmallWeights runs Q8_0 and Q4_0 weights whose quants are all
// within ±1 of zero against full-range activations, with random scales.
// The kernels that add an offset to the weights (q+128, q+8) and subtract
// it through the activation sums must still return each lane's exact
// integer before any float rounding: a correction rounded in float would
// be of the size of 128*sum|x|, far above the 1e-6 tolerance relative to
// sum|w*x|.
func TestMatMulSmallWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	featureCases(t, func(t *testing.T) {
		p := NewPool(2)
		defer p.Close()
		for _, wt := range []backend.DType{backend.Q8_0, backend.Q4_0} {
			rows, cols := 21, 1056
			w := unitWeights(t, rng, wt, rows, cols, false)
			bs := q8_0Bytes
			if wt == backend.Q4_0 {
				bs = q4_0Bytes
			}
			for b := 0; b < len(w)/bs; b++ {
				blk := w[b*bs : (b+1)*bs]
				binary.LittleEndian.PutUint16(blk, quant.FP32ToFP16(0.001+0.05*rng.Float32()))
				for i := 2; i < bs; i++ {
					if wt == backend.Q8_0 {
						blk[i] = byte(int8(rng.IntN(3) - 1))
					} else {
						blk[i] = byte(7+rng.IntN(3)) | byte(7+rng.IntN(3))<<4
					}
				}
			}
			for _, ntok := range testToks {
				xrb, err := ActRowBytes(wt, cols)
				require.NoError(t, err)
				x := make([]byte, ntok*xrb)
				require.NoError(t, QuantizeActs(p, wt, randFloats(rng, ntok*cols, 3), cols, ntok, cols, x))
				ref, mag := reference(t, wt, w, rows, cols, x, ntok)
				for l, got := range runMatMul(t, p, wt, w, rows, cols, x, ntok) {
					for i := range ref {
						require.InDelta(t, ref[i], float64(got[i]), 1e-6*mag[i], "%v %s ntok %d output %d", wt, l, ntok, i)
					}
				}
			}
		}
	})
}
