//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

// q8TileData returns rows Q8_0 weight rows and ntok Q8_0 activation rows of
// cols elements: weights with random quants over the whole int8 range
// (-128 included: |w| is then 128, still exact) and random fp16 scales of
// both signs across six orders of magnitude; activations quantized by
// QuantizeActs from random floats, as a forward pass has them.
func q8TileData(t testing.TB, rng *rand.Rand, p *Pool, rows, cols, ntok int) (w, x []byte) {
	w = make([]byte, rows*cols/qk*q8_0Bytes)
	for b := 0; b < len(w)/q8_0Bytes; b++ {
		blk := w[b*q8_0Bytes : (b+1)*q8_0Bytes]
		d := float32(math.Pow(10, -4+6*rng.Float64()))
		if rng.IntN(2) == 0 {
			d = -d
		}
		binary.LittleEndian.PutUint16(blk, quant.FP32ToFP16(d))
		for i := 2; i < q8_0Bytes; i++ {
			blk[i] = byte(rng.Uint32())
		}
	}
	x = make([]byte, ntok*cols/qk*q8_0Bytes)
	require.NoError(t, QuantizeActs(p, backend.Q8_0, randFloats(rng, ntok*cols, 3), cols, ntok, cols, x))
	return w, x
}

// q8TileWant is dotQ8_0Generic (llama.cpp's vec_dot order, in Go) for
// every row and token: want[t*rows+r].
func q8TileWant(w, x []byte, rows, cols, ntok int) []float32 {
	nb := cols / qk
	want := make([]float32, rows*ntok)
	for t := 0; t < ntok; t++ {
		for r := 0; r < rows; r++ {
			want[t*rows+r] = dotQ8_0Generic(w[r*nb*q8_0Bytes:], x[t*nb*q8_0Bytes:], nb)
		}
	}
	return want
}

// TestQ8TileKernel lays out activations with q8TileActsAVX2 (checked
// against the blocks' bytes and scales) and calls the assembly tile
// directly for each of its shapes, on weight rows spaced further apart
// than their length (the stride must be honoured) and an output stride
// with guard values, comparing every output bit for bit with
// dotQ8_0Generic.
func TestQ8TileKernel(t *testing.T) {
	if !hasAVX2 {
		t.Skip("CPU lacks AVX2/FMA/F16C: AVX2 tile not tested")
	}
	rng := rand.New(rand.NewPCG(51, 52))
	p := NewPool(1)
	defer p.Close()
	for _, cols := range []int{32, 64, 288, 1056} {
		nb := cols / qk
		rb := nb * q8_0Bytes
		w, x := q8TileData(t, rng, p, q8TileRows, cols, q8TileTok)
		want := q8TileWant(w, x, q8TileRows, cols, q8TileTok)

		n := q8TileTok * nb
		qs := align64(make([]byte, n*qk+64))[:n*qk]
		xd := make([]int32, n)
		q8TileActsAVX2(&x[0], n, &qs[0], &xd[0])
		for b := 0; b < n; b++ {
			require.Equal(t, x[b*q8_0Bytes+2:(b+1)*q8_0Bytes], qs[b*qk:(b+1)*qk], "block %d quants", b)
			require.Equal(t, math.Float32bits(fp16At(x[b*q8_0Bytes:])), uint32(xd[b]), "block %d scale", b)
		}

		// Row r at r*ws, padded with bytes that would change any result
		// they leaked into.
		ws := rb + 7
		wp := make([]byte, q8TileRows*ws)
		for i := range wp {
			wp[i] = 0x5a
		}
		for r := 0; r < q8TileRows; r++ {
			copy(wp[r*ws:], w[r*rb:(r+1)*rb])
		}
		for nr := 1; nr <= q8TileRows; nr++ {
			for nt := 1; nt <= q8TileTok; nt++ {
				const ldd = q8TileRows + 2
				dst := make([]float32, q8TileTok*ldd)
				for i := range dst {
					dst[i] = -12345
				}
				q8TileAVX2(&wp[0], ws, nr, &qs[0], nt, &xd[0], nb, &dst[0], ldd)
				for tk := 0; tk < q8TileTok; tk++ {
					for r := 0; r < ldd; r++ {
						got := dst[tk*ldd+r]
						if r >= nr || tk >= nt {
							require.Equal(t, float32(-12345), got, "%d cols %dx%d tile: wrote row %d token %d", cols, nr, nt, r, tk)
							continue
						}
						require.Equal(t, math.Float32bits(want[tk*q8TileRows+r]), math.Float32bits(got),
							"%d cols %dx%d tile: row %d token %d is %g, vec_dot gives %g", cols, nr, nt, r, tk, got, want[tk*q8TileRows+r])
					}
				}
			}
		}
	}
}

// TestQ8TileMatMul runs the AVX2 switch setting's MatMul and MatMulPacked
// (which keeps GGUF weights there and so runs the tile too) on every row
// count 1..37 and token count 1..33, leaving partial tiles and panels of
// every size, and compares each output bit for bit with dotQ8_0Generic.
// The outputs of one row and token are the same in every call, so one
// reference serves all shapes.
func TestQ8TileMatMul(t *testing.T) {
	if !hasAVX2 {
		t.Skip("CPU lacks AVX2/FMA/F16C: AVX2 tile not tested")
	}
	restored := false
	for _, c := range featureSettings {
		if c.name == "avx2" {
			defer setFeatures(c)()
			restored = true
		}
	}
	require.True(t, restored, "no avx2 feature setting")
	const maxRows, maxTok = 37, 33
	rng := rand.New(rand.NewPCG(53, 54))
	p := NewPool(2)
	defer p.Close()
	colsList := []int{32, 96, 320, 1056}
	if testing.Short() {
		colsList = []int{96, 320}
	}
	for _, cols := range colsList {
		w, x := q8TileData(t, rng, p, maxRows, cols, maxTok)
		want := q8TileWant(w, x, maxRows, cols, maxTok)
		for rows := 1; rows <= maxRows; rows++ {
			pw, err := Prepare(backend.Q8_0, w[:rows*cols/qk*q8_0Bytes], rows, cols)
			require.NoError(t, err)
			for ntok := 1; ntok <= maxTok; ntok++ {
				ldd := rows + 1
				for _, packed := range []bool{false, true} {
					dst := make([]float32, ntok*ldd)
					for i := range dst {
						dst[i] = -12345
					}
					if packed {
						require.NoError(t, MatMulPacked(p, pw, x, ntok, dst, ldd))
					} else {
						require.NoError(t, MatMul(p, backend.Q8_0, w, rows, cols, x, ntok, dst, ldd))
					}
					for tk := 0; tk < ntok; tk++ {
						for r := 0; r < rows; r++ {
							got, want := dst[tk*ldd+r], want[tk*maxRows+r]
							if math.Float32bits(got) != math.Float32bits(want) {
								t.Fatalf("%dx%d, %d tokens, packed %v: row %d token %d is %g, vec_dot gives %g",
									rows, cols, ntok, packed, r, tk, got, want)
							}
						}
						require.Equal(t, float32(-12345), dst[tk*ldd+rows], "%dx%d, %d tokens: wrote past the rows", rows, cols, ntok)
					}
				}
			}
		}
	}
}

// TestQ8TileDispatch checks which kernel each switch setting gives Q8_0:
// with AVX2 alone the tile for two tokens or more and the one-row kernel
// for one; with AVX512-VNNI or without SIMD not the tile. Under every
// setting Prepare keeps GGUF weights exactly when the tile would multiply
// them. A Packed made under one setting must also give the same bits
// under every other.
func TestQ8TileDispatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(55, 56))
	p := NewPool(2)
	defer p.Close()
	const rows, cols, ntok = 21, 160, 7
	w, x := q8TileData(t, rng, p, rows, cols, ntok)
	want := q8TileWant(w, x, rows, cols, ntok)
	var packs []*Packed
	featureCases(t, func(t *testing.T) {
		switch {
		case Features() == "AVX2+FMA+F16C":
			for n := 2; n <= 4; n++ {
				assert.Same(t, &q8_0TileAVX2, simdKernel(backend.Q8_0, n), "AVX2 alone, %d tokens", n)
			}
			assert.Same(t, &q8_0GEMV, simdKernel(backend.Q8_0, 1), "AVX2 alone, one token")
		case !useAVX2 || useVNNI:
			for n := 1; n <= 4; n++ {
				assert.NotSame(t, &q8_0TileAVX2, simdKernel(backend.Q8_0, n), "%s, %d tokens", Features(), n)
			}
		}
		assert.NotSame(t, &q8_0TileAVX2, simdKernel(backend.Q8_0, 1), "one token")
		tile := simdKernel(backend.Q8_0, 2) == &q8_0TileAVX2
		pw, err := Prepare(backend.Q8_0, w, rows, cols)
		require.NoError(t, err)
		if tile {
			assert.Nil(t, pw.q, "%s: Q8_0 repacked for the GGUF tile", Features())
			assert.Same(t, &w[0], &pw.raw[0], "%s: Prepare copied the weights", Features())
		} else {
			assert.NotNil(t, pw.q, "%s: Q8_0 not repacked", Features())
		}
		// Prepare keeps the other formats as they were.
		q4, err := Prepare(backend.Q4_0, make([]byte, rows*cols/qk*q4_0Bytes), rows, cols)
		require.NoError(t, err)
		assert.NotNil(t, q4.q, "Q4_0 not repacked")
		packs = append(packs, pw)
	})
	featureCases(t, func(t *testing.T) {
		for i, pw := range packs {
			dst := make([]float32, rows*ntok)
			require.NoError(t, MatMulPacked(p, pw, x, ntok, dst, rows))
			for o := range dst {
				require.Equal(t, math.Float32bits(want[o]), math.Float32bits(dst[o]), "packed under setting %d: row %d token %d", i, o%rows, o/rows)
			}
		}
	})
}

// BenchmarkQ8Tile measures the tile alone on one thread, on data that
// stays in L1: the kernel's compute rate, apart from the driver, the cache
// and the pool.
func BenchmarkQ8Tile(b *testing.B) {
	if !hasAVX2 {
		b.Skip("CPU lacks AVX2/FMA/F16C")
	}
	rng := rand.New(rand.NewPCG(57, 58))
	p := NewPool(1)
	defer p.Close()
	const cols = 1024
	nb := cols / qk
	w, x := q8TileData(b, rng, p, q8TileRows, cols, q8TileTok)
	n := q8TileTok * nb
	qs := align64(make([]byte, n*qk+64))[:n*qk]
	xd := make([]int32, n)
	q8TileActsAVX2(&x[0], n, &qs[0], &xd[0])
	dst := make([]float32, q8TileTok*q8TileRows)
	for _, shape := range [][2]int{{4, 3}, {4, 1}, {1, 3}, {1, 1}} {
		b.Run(fmt.Sprintf("%dx%d", shape[0], shape[1]), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				q8TileAVX2(&w[0], nb*q8_0Bytes, shape[0], &qs[0], shape[1], &xd[0], nb, &dst[0], q8TileRows)
			}
			b.ReportMetric(2*float64(shape[0]*shape[1]*cols)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOPS")
		})
	}
}
