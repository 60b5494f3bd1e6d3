//go:build cgo && linux && !noemu

package emu

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/cuda"
	"qinfer/host/quant"
	"qinfer/kernels"
)

// The kernels of LLM.int8()'s outlier columns (outliers.cu, and
// qi_quant_w8 with a column mask) against host/quant's definition.

// pickCols returns k distinct columns of [0, cols), increasing.
func pickCols(rng *rand.Rand, cols, k int) []int32 {
	out := make([]int32, 0, k)
	for _, c := range rng.Perm(cols)[:k] {
		out = append(out, int32(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// splitCounts are the numbers of outlier columns tried for rows of cols:
// 1, 3 and cols/32 (the default budget), those that fit.
func splitCounts(cols int) []int {
	var ks []int
	for _, k := range []int{1, 3, cols / 32} {
		if k >= 1 && k <= cols && (len(ks) == 0 || ks[len(ks)-1] != k) {
			ks = append(ks, k)
		}
	}
	return ks
}

// maskBytes builds the device column mask bit by bit: bit c%32 of
// little-endian 32-bit word c/32 for each column c, kpad/32 words.
func maskBytes(ocols []int32, kpad int) []byte {
	words := make([]uint32, kpad/32)
	for _, c := range ocols {
		words[c/32] |= 1 << uint(c%32)
	}
	b := make([]byte, 4*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return b
}

func i32bytes(x []int32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return b
}

func f32at(b []byte, i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])) }

// randHalf returns random finite F16 bits: every exponent (subnormals
// and both zeros included) but the one of infinities and NaN.
func randHalf(rng *rand.Rand) uint16 {
	for {
		h := uint16(rng.Intn(1 << 16))
		if h&0x7c00 != 0x7c00 {
			return h
		}
	}
}

// TestQuantW8SplitMatchesCPU runs qi_quant_w8 with an outlier mask on
// both variants against quant.QuantizeTokenInt8Split and
// quant.QuantizeTokenInt8StaticSplit, codes and scale bits, and checks
// the outlier values it copies aside (bit for bit, nothing else written):
// 1, 3 and
// cols/32 outlier columns (and every column), ragged lengths around the
// kernel's 256 threads, outlier channels far larger than the rest, tokens
// whose other channels are all zero, NaN and infinities in outlier and in
// other channels, ties, tiny tokens, saturation under a static scale.
func TestQuantW8SplitMatchesCPU(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, major := range []int{9, 7} {
		v := open(t, major)
		rng := rand.New(rand.NewSource(int64(major) + 40))
		for _, cols := range []int{1, 5, 37, 255, 257, 700} {
			kpad := (cols + 63) / 64 * 64
			ks := splitCounts(cols)
			if ks[len(ks)-1] != cols {
				ks = append(ks, cols) // every column an outlier
			}
			for _, k := range ks {
				ocols := pickCols(rng, cols, k)
				isOut := make([]bool, cols)
				for _, c := range ocols {
					isOut[c] = true
				}
				var other []int // columns that are not outliers
				for c := 0; c < cols; c++ {
					if !isOut[c] {
						other = append(other, c)
					}
				}
				for _, act := range []float32{0, 0.25} {
					gauss := func(sc, outSc float64) []float32 {
						x := make([]float32, cols)
						for i := range x {
							s := sc
							if isOut[i] {
								s = outSc
							}
							x[i] = float32(rng.NormFloat64() * s)
						}
						return x
					}
					toks := [][]float32{gauss(3, 300), gauss(1, 1e4), gauss(0, 50), gauss(1e-39, 10), gauss(200, 1)}
					with := func(cs []int, val float32) {
						if len(cs) > 0 {
							x := gauss(2, 100)
							x[cs[rng.Intn(len(cs))]] = val
							toks = append(toks, x)
						}
					}
					outs := make([]int, k)
					for j, c := range ocols {
						outs[j] = int(c)
					}
					with(outs, nan)
					with(outs, inf)
					with(outs, -inf)
					with(other, nan)
					with(other, -inf)
					// Ties: an extreme of 127 among the other channels makes
					// the inverse scale 1 (dynamic); x*(1/0.25) is exact.
					ties := gauss(0, 1e3)
					for _, c := range other {
						ties[c] = float32(c%11-5) + 0.5
						if act != 0 {
							ties[c] *= act
						}
					}
					if act == 0 && len(other) > 0 {
						ties[other[len(other)-1]] = 127
					}
					toks = append(toks, ties)

					ntok := len(toks)
					ldx := cols + 3
					x := make([]float32, ntok*ldx)
					for tk, row := range toks {
						copy(x[tk*ldx:], row)
					}
					xp, mp, cp := v.upload(f32bytes(x)), v.upload(maskBytes(ocols, kpad)), v.upload(i32bytes(ocols))
					xq, xd := v.alloc((ntok+1)*kpad), v.alloc(4*(ntok+1))
					ldxo := ntok + 3
					xo := v.alloc(4 * k * ldxo)
					require.NoError(t, v.launch(kernels.QuantW8, cuda.Dim3{X: uint32(ntok), Y: 1, Z: 1}, xp, ldx, cols, kpad, act,
						mp, cp, k, xo, ldxo, xq, xd))
					q, d, vals := v.read(xq, (ntok+1)*kpad), v.read(xd, 4*(ntok+1)), v.read(xo, 4*k*ldxo)
					for j, c := range ocols {
						for tk := 0; tk < ldxo; tk++ {
							want := uint32(0xA5A5A5A5)
							if tk < ntok {
								want = math.Float32bits(toks[tk][c])
							}
							require.Equal(t, want, binary.LittleEndian.Uint32(vals[4*(j*ldxo+tk):]),
								"sm %d, %d cols: outlier value of column %d token %d", major, cols, c, tk)
						}
					}
					for tk, row := range toks {
						want := make([]int8, cols)
						scale := act
						if act == 0 {
							scale = quant.QuantizeTokenInt8Split(row, ocols, want)
						} else {
							require.NoError(t, quant.QuantizeTokenInt8StaticSplit(row, act, ocols, want))
						}
						what := fmt.Sprintf("sm %d, %d cols, %d outlier columns, act scale %v, token %d", major, cols, k, act, tk)
						got := q[tk*kpad : (tk+1)*kpad]
						for c := 0; c < cols; c++ {
							if int8(got[c]) != want[c] {
								t.Fatalf("%s: element %d (%v, outlier %v) is %d, want %d", what, c, row[c], isOut[c], int8(got[c]), want[c])
							}
						}
						assert.Equal(t, make([]byte, kpad-cols), got[cols:], "%s: padding", what)
						assert.Equal(t, math.Float32bits(scale), binary.LittleEndian.Uint32(d[4*tk:]), "%s: scale %v", what, scale)
					}
					assert.Equal(t, bytes.Repeat([]byte{0xA5}, kpad), q[ntok*kpad:], "codes past the last token")
					assert.Equal(t, bytes.Repeat([]byte{0xA5}, 4), d[4*ntok:], "scale past the last token")
				}
			}
		}
	}
}

// TestOutlierAddMatchesCPU runs qi_outlier_add on both variants: y, which
// holds random values standing for the int8 part, must become
// float32(y) + quant.OutlierDot over each token and row, bit for bit, for
// a strided output, weights with a row stride past the rows, ragged rows
// (fewer and more than a block's kernels.OutlierRows), 1..9 and 17..33
// tokens (whole and partial groups of kernels.OutlierTokens, NaN in the
// values past the last), 1 to 150 outlier columns (several of the
// kernel's chunks of 64), an infinite and zero outlier channels, every
// finite F16 weight class; nothing outside the rows x tokens is written.
func TestOutlierAddMatchesCPU(t *testing.T) {
	for _, major := range []int{9, 7} {
		v := open(t, major)
		rng := rand.New(rand.NewSource(int64(major) + 50))
		const cols = 230
		for _, rows := range []int{1, 37, 300} {
			for _, k := range append(splitCounts(cols), 150) {
				ocols := pickCols(rng, cols, k)
				// The weights' row stride: a multiple of the kernel's block
				// of rows, here one block more than the rows need.
				ldo := (rows+kernels.OutlierRows-1)/kernels.OutlierRows*kernels.OutlierRows + kernels.OutlierRows
				w16 := make([]uint16, rows*k)
				owDev := make([]byte, 2*k*ldo)
				for r := 0; r < rows; r++ {
					for j := 0; j < k; j++ {
						h := randHalf(rng)
						w16[r*k+j] = h
						binary.LittleEndian.PutUint16(owDev[2*(j*ldo+r):], h)
					}
				}
				op := v.upload(owDev)
				for _, ntok := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 22, 33} {
					ldx, ldy := cols+5, rows+3
					x := make([]float32, ntok*ldx)
					for i := range x {
						x[i] = float32(rng.NormFloat64() * 2)
					}
					for tk := 0; tk < ntok; tk++ {
						for _, c := range ocols {
							x[tk*ldx+int(c)] = float32(rng.NormFloat64() * 1e3)
						}
					}
					if ntok > 2 {
						x[2*ldx+int(ocols[0])] = float32(math.Inf(-1))
					}
					y0 := make([]float32, (ntok+1)*ldy)
					for i := range y0 {
						y0[i] = float32(rng.NormFloat64() * 50)
					}
					if ntok > 1 {
						// Zero outlier channels and an int8 part of -0: the sum
						// starts from +0, so -0 + (+0 + -0 products) is +0.
						for _, c := range ocols {
							x[ldx+int(c)] = 0
						}
						for r := 0; r < rows; r++ {
							y0[ldy+r] = float32(math.Copysign(0, -1))
						}
					}
					// The outlier values as qi_quant_w8 copies them, [k][ldxo]:
					// whole groups of tokens, and NaN past the last token,
					// which must not reach an output.
					ldxo := (ntok + kernels.OutlierTokens - 1) / kernels.OutlierTokens * kernels.OutlierTokens
					xo := make([]float32, k*ldxo)
					for j, c := range ocols {
						for tk := 0; tk < ldxo; tk++ {
							xo[j*ldxo+tk] = float32(math.NaN())
							if tk < ntok {
								xo[j*ldxo+tk] = x[tk*ldx+int(c)]
							}
						}
					}
					xop, yp := v.upload(f32bytes(xo)), v.upload(f32bytes(y0))
					grid := cuda.Dim3{X: uint32((rows + kernels.OutlierRows - 1) / kernels.OutlierRows), Y: uint32((ntok + kernels.OutlierTokens - 1) / kernels.OutlierTokens), Z: 1}
					require.NoError(t, v.launch(kernels.OutlierAdd, grid, xop, ldxo, op, k, ldo, yp, ldy, rows, ntok))
					got := v.read(yp, 4*len(y0))
					for tk := 0; tk <= ntok; tk++ {
						for r := 0; r < ldy; r++ {
							i := tk*ldy + r
							want := y0[i]
							if tk < ntok && r < rows {
								want = y0[i] + quant.OutlierDot(x[tk*ldx:tk*ldx+cols], ocols, w16[r*k:(r+1)*k])
							}
							if g := f32at(got, i); math.Float32bits(g) != math.Float32bits(want) {
								t.Fatalf("sm %d, %d rows, %d outlier columns, %d tokens: token %d row %d is %v (%#08x), want %v (%#08x)",
									major, rows, k, ntok, tk, r, g, math.Float32bits(g), want, math.Float32bits(want))
							}
						}
					}
				}
			}
		}
	}
}

// TestDequantOutliersMatchesCPU runs qi_dequant_outliers on both
// variants with token ids (one outside the table, whose row must be left
// alone) and without (rows 0..n-1): the outlier columns of each row get
// the F16 weights widened exactly (quant.FP16ToFP32), the other columns
// keep what the format's dequantization wrote.
func TestDequantOutliersMatchesCPU(t *testing.T) {
	for _, major := range []int{9, 7} {
		v := open(t, major)
		rng := rand.New(rand.NewSource(int64(major) + 60))
		const rows, cols, ldy = 37, 300, 305
		for _, k := range []int{1, 3, cols / 32, cols} {
			ocols := pickCols(rng, cols, k)
			w16 := make([]uint16, rows*k)
			owDev := make([]byte, 2*k*rows)
			for r := 0; r < rows; r++ {
				for j := 0; j < k; j++ {
					h := randHalf(rng)
					w16[r*k+j] = h
					binary.LittleEndian.PutUint16(owDev[2*(j*rows+r):], h)
				}
			}
			cp, op := v.upload(i32bytes(ocols)), v.upload(owDev)
			for _, ids := range [][]int32{{5, 0, 36, 99, -1, 12}, nil} {
				n := len(ids)
				idp := cuda.DevicePtr(0)
				if ids != nil {
					idp = v.upload(i32bytes(ids))
				} else {
					n = 4
				}
				y := v.alloc(4 * n * ldy) // poisoned: 0xA5 bytes
				grid := cuda.Dim3{X: uint32((k + 255) / 256), Y: uint32(n), Z: 1}
				require.NoError(t, v.launch(kernels.DequantOutliers, grid, idp, cp, op, k, rows, y, ldy, rows))
				got := v.read(y, 4*n*ldy)
				poison := math.Float32frombits(0xA5A5A5A5)
				for i := 0; i < n; i++ {
					r := i
					if ids != nil {
						r = int(ids[i])
					}
					want := make([]float32, ldy)
					for c := range want {
						want[c] = poison
					}
					if r >= 0 && r < rows {
						for j, c := range ocols {
							want[c] = quant.FP16ToFP32(w16[r*k+j])
						}
					}
					for c := 0; c < ldy; c++ {
						require.Equal(t, math.Float32bits(want[c]), math.Float32bits(f32at(got, i*ldy+c)),
							"sm %d, %d outlier columns, ids %v: output %d (row %d) column %d", major, k, ids, i, r, c)
					}
				}
			}
		}
	}
}
