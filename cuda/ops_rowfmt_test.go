package cuda_test

import (
	"encoding/binary"
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

// The row formats (W8, FP8 E4M3, TERNARY, BINARY) must give host/quant's
// bits on the device: activations quantized as quant.QuantizeTokenInt8
// (or ...Static with the weight's ActScale), outputs
// quant.RowScaleDot(quant.RowIntSum(...)). The references below use
// nothing else.

// rowActs quantizes ntok tokens of cols (row t at x[t*cols:]) as the
// reference does: the int8 codes of each token and its scale.
func rowActs(t *testing.T, x []float32, ntok, cols int, actScale float32) ([][]int8, []float32) {
	t.Helper()
	q, s := make([][]int8, ntok), make([]float32, ntok)
	for tk := range q {
		q[tk] = make([]int8, cols)
		row := x[tk*cols : (tk+1)*cols]
		if actScale != 0 {
			require.NoError(t, quant.QuantizeTokenInt8Static(row, actScale, q[tk]))
			s[tk] = actScale
		} else {
			s[tk] = quant.QuantizeTokenInt8(row, q[tk])
		}
	}
	return q, s
}

// rowActsBytes is rowActs in QuantizedForTest's layout: the int8 rows,
// then the scales as float32.
func rowActsBytes(t *testing.T, x []float32, ntok, cols int, actScale float32) []byte {
	t.Helper()
	q, s := rowActs(t, x, ntok, cols, actScale)
	var out []byte
	for _, row := range q {
		for _, v := range row {
			out = append(out, byte(v))
		}
	}
	for _, v := range s {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	return out
}

// rowRef is the reference product of row-format weight w with ntok
// tokens x: y[t][r] = RowScaleDot(RowIntSum(row r, q[t])).
func rowRef(t *testing.T, w *backend.Weight, x []float32, ntok int) []float32 {
	t.Helper()
	q, s := rowActs(t, x, ntok, w.Cols, w.ActScale)
	rb, err := backend.RowBytes(w.Type, w.Cols)
	require.NoError(t, err)
	y := make([]float32, ntok*w.Rows)
	for tk := 0; tk < ntok; tk++ {
		for r := 0; r < w.Rows; r++ {
			isum, err := quant.RowIntSum(w.Type, w.Cols, w.Data[r*rb:(r+1)*rb], q[tk])
			require.NoError(t, err)
			y[tk*w.Rows+r] = quant.RowScaleDot(w.Type, isum, w.RowScales[r], s[tk])
		}
	}
	return y
}

// requireSameBits fails unless got and want are the same float32 bits
// (so -0 differs from +0), naming the first element that differs as
// (token, row) of outputs with rows rows.
func requireSameBits(t *testing.T, want, got []float32, rows int, what string) {
	t.Helper()
	requireSameBitsAt(t, want, got, what, func(i int) string { return fmt.Sprintf("token %d row %d", i/rows, i%rows) })
}

func requireSameBitsAt(t *testing.T, want, got []float32, what string, at func(i int) string) {
	t.Helper()
	require.Len(t, got, len(want), what)
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			bad := 0
			for j := range want {
				if math.Float32bits(want[j]) != math.Float32bits(got[j]) {
					bad++
				}
			}
			require.Failf(t, "bits differ", "%s: %s: got %v (%#08x), want %v (%#08x); %d of %d differ",
				what, at(i), got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]), bad, len(want))
		}
	}
}

// rowWeight returns a random rows x cols weight of a row format with
// weights spread over several orders of magnitude (so FP8 uses normal and
// subnormal codes and every digit plane), scaled by actScale's calibration
// when static.
func rowWeight(t *testing.T, rng *rand.Rand, typ backend.DType, rows, cols int, actScale float32) *backend.Weight {
	t.Helper()
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * math.Exp(2*rng.NormFloat64()))
	}
	data, scales, err := quant.QuantizeRows(typ, v, rows, cols)
	require.NoError(t, err)
	return &backend.Weight{Name: fmt.Sprintf("%v %dx%d", typ, rows, cols), Type: typ, Rows: rows, Cols: cols,
		Data: data, RowScales: scales, ActScale: actScale}
}

// rowCols draws a row length for typ that is a whole number of its blocks
// but not a multiple of 64 (so every tile and warp has a tail).
func rowCols(rng *rand.Rand, typ backend.DType) int {
	tr, _ := backend.TraitsOf(typ)
	for {
		c := tr.BlockSize * (1 + rng.Intn(300/tr.BlockSize))
		if c%64 != 0 {
			return c
		}
	}
}

// rowTokens returns ntok activation rows of cols: normal values with a
// per-token scale, one token of zeros and one with an outlier.
func rowTokens(rng *rand.Rand, ntok, cols int) []float32 {
	x := make([]float32, ntok*cols)
	for tk := 0; tk < ntok; tk++ {
		sc := math.Exp(rng.NormFloat64())
		for k := 0; k < cols; k++ {
			x[tk*cols+k] = float32(rng.NormFloat64() * sc)
		}
	}
	if ntok > 2 {
		clear(x[cols : 2*cols])
		x[2*cols+rng.Intn(cols)] = 40
	}
	return x
}

var rowTypes = []backend.DType{backend.W8, backend.FP8, backend.Ternary, backend.Binary}

// TestParityMatMulRowFormats: every row format, dynamic and static
// activations, every GEMV variant (1..8 tokens) and the GEMM (9, 17..33
// tokens), random rows (1..37) and columns (not a multiple of 64): the
// device, the CPU backend and the reference agree bit for bit.
func TestParityMatMulRowFormats(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		for _, typ := range rowTypes {
			for _, static := range []bool{false, true} {
				rng := rand.New(rand.NewSource(int64(typ) + map[bool]int64{false: 0, true: 100}[static]))
				rows, cols := 1+rng.Intn(37), rowCols(rng, typ)
				var actScale float32
				if static {
					// Calibrated for about two standard deviations: the
					// larger activations saturate at ±127.
					actScale = 2.5 / 127
				}
				w := rowWeight(t, rng, typ, rows, cols, actScale)
				for _, ntok := range []int{1, 2, 3, 4, 6, 8, 9, 17, 26, 33} {
					t.Run(fmt.Sprintf("%v_static=%v_%dx%d_t%d", typ, static, rows, cols, ntok), func(t *testing.T) {
						p := newPair(t, d)
						wt := p.weight(w)
						x := rowTokens(rng, ntok, cols)
						// A strided view: rows of cols+3, starting at column 2.
						wide := make([]float32, ntok*(cols+3))
						for tk := 0; tk < ntok; tk++ {
							copy(wide[tk*(cols+3)+2:], x[tk*cols:(tk+1)*cols])
						}
						xa := p.view(p.act("x", ntok, cols+3, wide), 0, ntok, 2, cols)
						y := p.act("y", ntok, rows, nil)
						p.poison(y)
						require.NoError(t, p.gpu.MatMul(y.g, wt.g, xa.g))
						require.NoError(t, p.cpu.MatMul(y.c, wt.c, xa.c))
						gv, cv := p.read(y)
						want := rowRef(t, w, x, ntok)
						requireSameBits(t, want, cv, rows, "cpu vs reference")
						requireSameBits(t, want, gv, rows, "gpu vs reference")
					})
				}
			}
		}
	})
}

// TestRowFormatKernels runs each row-format kernel directly: every GEMV
// variant with fewer tokens than it holds, and every GEMM tile over
// several blocks with partial tiles in rows and tokens, against the
// reference, static and dynamic.
func TestRowFormatKernels(t *testing.T) {
	gemvs := map[backend.DType][]*kernels.Kernel{
		backend.W8: kernels.GemvW8, backend.FP8: kernels.GemvFP8, backend.Ternary: kernels.GemvTernary, backend.Binary: kernels.GemvBinary,
	}
	gemms := map[backend.DType][]*kernels.Kernel{
		backend.W8:      {kernels.GemmW8, kernels.GemmW8M64},
		backend.FP8:     {kernels.GemmFP8},
		backend.Ternary: {kernels.GemmTernary, kernels.GemmTernaryM64},
		backend.Binary:  {kernels.GemmBinary, kernels.GemmBinaryM64},
	}
	forEachDevice(t, func(t *testing.T, d device) {
		for _, typ := range rowTypes {
			t.Run(typ.String(), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(typ) + 7))
				p := newPair(t, d)
				const rows = 133
				cols := rowCols(rng, typ)
				for _, actScale := range []float32{0, 1.5 / 127} {
					w := rowWeight(t, rng, typ, rows, cols, actScale)
					g, err := p.gpu.Upload(w)
					require.NoError(t, err)
					run := func(k *kernels.Kernel, ntok int) {
						x := rowTokens(rng, ntok, cols)
						xa := p.act("x", ntok, cols, x)
						y := p.act("y", ntok, rows, nil)
						p.poison(y)
						require.NoError(t, d.be.StageForTest(g, xa.g))
						require.NoError(t, d.be.ProductForTest(y.g, g, ntok, k))
						got := make([]float32, ntok*rows)
						require.NoError(t, p.gpu.Read(y.g, got))
						requireSameBits(t, rowRef(t, w, x, ntok), got, rows, fmt.Sprintf("%s act scale %v, %d tokens", k.Name, actScale, ntok))
					}
					for i, k := range gemvs[typ] {
						run(k, max(1, kernels.GEMVTokens[i]-1))
					}
					for _, k := range gemms[typ] {
						run(k, 70)
					}
					require.NoError(t, p.gpu.Free(g))
				}
			})
		}
	})
}

// TestRowFormatAllCodes dequantizes and multiplies rows holding every FP8
// code (NaN aside), every TERNARY code and both BINARY signs in random
// order, so the largest FP8 units (±229376), subnormals and zeros of both
// signs all pass through the digit planes, through a GEMV and the GEMM.
func TestRowFormatAllCodes(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		for _, typ := range []backend.DType{backend.FP8, backend.Ternary, backend.Binary} {
			t.Run(typ.String(), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(typ)))
				const rows, cols = 19, 504
				rb, err := backend.RowBytes(typ, cols)
				require.NoError(t, err)
				w := &backend.Weight{Name: "codes", Type: typ, Rows: rows, Cols: cols, Data: make([]byte, rows*rb),
					RowScales: make([]float32, rows)}
				for r := 0; r < rows; r++ {
					row := w.Data[r*rb : (r+1)*rb]
					switch typ {
					case backend.FP8:
						for k, c := range rng.Perm(cols) {
							row[k] = byte(c % 256)
							if row[k]&0x7f == 0x7f { // NaN: the largest finite code instead
								row[k]--
							}
						}
					case backend.Ternary:
						for k := 0; k < cols; k++ {
							row[k/4] |= byte(rng.Intn(3)) << (2 * (k % 4))
						}
					default:
						rng.Read(row)
					}
					w.RowScales[r] = float32(rng.ExpFloat64())
				}
				p := newPair(t, d)
				wt := p.weight(w)
				// Every code dequantizes (Read, the Embed kernel) to
				// quant.DequantizeRowFormat's bits.
				want, err := quant.DequantizeRowFormat(typ, w.Data, w.RowScales, rows, cols)
				require.NoError(t, err)
				got := make([]float32, rows*cols)
				require.NoError(t, p.gpu.Read(wt.g, got))
				requireSameBitsAt(t, want, got, "dequantized", func(i int) string { return fmt.Sprintf("row %d column %d", i/cols, i%cols) })
				// Large activations push every code's products and the sums
				// of the top digit plane to their extremes.
				for _, ntok := range []int{1, 5, 20} {
					x := rowTokens(rng, ntok, cols)
					for i := range x {
						if rng.Intn(4) == 0 {
							x[i] = float32(math.Copysign(1e3, float64(x[i])))
						}
					}
					xa := p.act("x", ntok, cols, x)
					y := p.act("y", ntok, rows, nil)
					p.poison(y)
					require.NoError(t, p.gpu.MatMul(y.g, wt.g, xa.g))
					got := make([]float32, ntok*rows)
					require.NoError(t, p.gpu.Read(y.g, got))
					requireSameBits(t, rowRef(t, w, x, ntok), got, rows, fmt.Sprintf("%d tokens", ntok))
				}
			})
		}
	})
}

// TestParityRowActivations checks the row formats' activation
// quantization (one kernel for all four) byte for byte against
// quant.QuantizeTokenInt8 and quant.QuantizeTokenInt8Static on the cases
// the definition singles out: ties at .5 (to even), zero tokens, NaN
// (dynamic: the token is zeroed; static: -127), infinities, tokens so
// small that 127/max|x| overflows, subnormals, saturation under a static
// scale, ragged lengths (more and fewer than the kernel's 256 threads).
func TestParityRowActivations(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	forEachDevice(t, func(t *testing.T, d device) {
		for _, c := range []struct {
			typ  backend.DType
			cols int
		}{{backend.W8, 300}, {backend.FP8, 37}, {backend.Ternary, 516}, {backend.Binary, 8}} {
			for _, actScale := range []float32{0, 0.5} {
				t.Run(fmt.Sprintf("%v_%d_static=%v", c.typ, c.cols, actScale), func(t *testing.T) {
					rng := rand.New(rand.NewSource(int64(c.cols)))
					p := newPair(t, d)
					w := rowWeight(t, rng, c.typ, 3, c.cols, actScale)
					wt := p.weight(w)
					cols := c.cols
					var x []float32
					tok := func(f func(k int) float32) {
						for k := 0; k < cols; k++ {
							x = append(x, f(k))
						}
					}
					gauss := func(sc float64) func(int) float32 {
						return func(int) float32 { return float32(rng.NormFloat64() * sc) }
					}
					tok(gauss(40))
					// Ties: scale 1 from an extreme of -127 (dynamic), or
					// x*(1/0.5) = k+0.5 exactly (static).
					tok(func(k int) float32 {
						if k == 0 && actScale == 0 {
							return -127
						}
						v := float32(k%9-4) + 0.5
						if actScale != 0 {
							v *= actScale
						}
						return v
					})
					tok(func(int) float32 { return 0 })
					tok(gauss(1))
					x[len(x)-1-rng.Intn(cols)] = nan
					tok(gauss(1))
					x[len(x)-1-rng.Intn(cols)] = inf
					tok(gauss(1))
					x[len(x)-cols] = -inf
					x[len(x)-1] = inf
					tok(gauss(1e-39))                                                       // subnormal: 127/max overflows
					tok(func(int) float32 { return float32(rng.NormFloat64()) * 0x1p-121 }) // tiny but invertible
					tok(func(k int) float32 {
						if k%5 == 0 {
							return 1e-40
						}
						return float32(rng.NormFloat64())
					})
					tok(gauss(1e37))
					tok(gauss(300)) // saturates under the static scale
					ntok := len(x) / cols

					wide := make([]float32, ntok*(cols+5))
					for tk := 0; tk < ntok; tk++ {
						copy(wide[tk*(cols+5)+4:], x[tk*cols:(tk+1)*cols])
					}
					xa := p.view(p.act("x", ntok, cols+5, wide), 0, ntok, 4, cols)
					got, err := d.be.QuantizedForTest(wt.g, xa.g)
					require.NoError(t, err)
					want := rowActsBytes(t, x, ntok, cols, actScale)
					require.Len(t, got, len(want))
					for tk := 0; tk < ntok; tk++ {
						assert.Equal(t, want[tk*cols:(tk+1)*cols], got[tk*cols:(tk+1)*cols], "token %d codes", tk)
						off := ntok*cols + 4*tk
						assert.Equal(t, binary.LittleEndian.Uint32(want[off:]), binary.LittleEndian.Uint32(got[off:]),
							"token %d scale: want %v, got %v", tk, f32At(want[off:]), f32At(got[off:]))
					}
				})
			}
		}
	})
}

// TestRowFormatStaticScaleRejected: both backends refuse a static scale
// whose inverse is not finite, with the weight named.
func TestRowFormatStaticScaleRejected(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewSource(9))
		w := rowWeight(t, rng, backend.Ternary, 4, 64, 1e-45)
		p := newPair(t, d)
		_, err := p.gpu.Upload(w)
		assert.ErrorContains(t, err, "upload weight TERNARY 4x64: static activation scale 1e-45")
		_, err = p.cpu.Upload(w)
		assert.Error(t, err)
	})
}
