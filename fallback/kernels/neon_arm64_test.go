//go:build !purego

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

// neonCases runs fn under each NEON setting the CPU supports (SDOT, then
// Advanced SIMD alone), for tests of the assembly itself.
func neonCases(t *testing.T, fn func(t *testing.T)) {
	for _, c := range featureSettings {
		if !c.asimd {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			if r := skipReason(c.asimd, c.sdot); r != "" {
				t.Skip(r)
			}
			defer setFeatures(c.asimd, c.sdot)()
			fn(t)
		})
	}
}

// randBlocks returns n Q8_0 (bs 34) or Q4_0 (bs 18) blocks of random
// bytes with random finite fp16 scales: normal ones of either sign over a
// wide range, subnormals and zeros, so that the scale products round in
// every way. Quant bytes include -128, which no quantizer writes but a
// file may hold.
func randBlocks(rng *rand.Rand, n, bs int) []byte {
	b := make([]byte, n*bs)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	for k := 0; k < n; k++ {
		var h uint16
		switch rng.IntN(10) {
		case 0:
			h = uint16(rng.IntN(0x400)) // zero or subnormal
		default:
			h = uint16(0x0400 + rng.IntN(0x7800-0x0400)) // normal, below 2^15
		}
		if rng.IntN(2) == 0 {
			h |= 0x8000
		}
		binary.LittleEndian.PutUint16(b[k*bs:], h)
	}
	return b
}

// TestNEONRowKernels runs the GGUF-layout kernels directly on every row
// count from 1 to 13 (all tails of the four-row groups) and checks each
// output bit for bit against the pure-Go dot of its row.
func TestNEONRowKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	neonCases(t, func(t *testing.T) {
		for _, wt := range []backend.DType{backend.Q8_0, backend.Q4_0} {
			kern, bs, dot := gemvQ8_0ASIMD, q8_0Bytes, dotQ8_0Generic
			if useSDOT {
				kern = gemvQ8_0SDOT
			}
			if wt == backend.Q4_0 {
				kern, bs, dot = gemvQ4_0ASIMD, q4_0Bytes, dotQ4_0Generic
				if useSDOT {
					kern = gemvQ4_0SDOT
				}
			}
			for _, nb := range []int{1, 3, 33} {
				for rows := 1; rows <= 13; rows++ {
					w := randBlocks(rng, rows*nb, bs)
					x := randBlocks(rng, nb, q8_0Bytes)
					// Guards after the rows catch stores past them.
					dst := make([]float32, rows+4)
					for i := range dst {
						dst[i] = -7
					}
					kern(&w[0], nb*bs, rows, &x[0], nb, &dst[0])
					for r := 0; r < rows; r++ {
						want := dot(w[r*nb*bs:], x, nb)
						require.Equal(t, math.Float32bits(want), math.Float32bits(dst[r]), "%v %d rows, %d blocks: row %d is %g, Go gives %g", wt, rows, nb, r, dst[r], want)
					}
					for _, g := range dst[rows:] {
						require.Equal(t, float32(-7), g, "%v %d rows: store past the rows", wt, rows)
					}
				}
			}
		}
	})
}

// TestNEONPanelKernels runs the panel kernels on panels of 1 to 16 real
// rows (packed by the pure-Go packer, padded with zero rows as Prepare
// does) and checks each output bit for bit against the pure-Go dot of the
// GGUF row, and that nothing is written past the rows.
func TestNEONPanelKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(53, 54))
	neonCases(t, func(t *testing.T) {
		for _, wt := range []backend.DType{backend.Q8_0, backend.Q4_0} {
			f := simdPanelFuncs(wt)
			require.NotNil(t, f)
			bs, dot := q8_0Bytes, dotQ8_0Generic
			if wt == backend.Q4_0 {
				bs, dot = q4_0Bytes, dotQ4_0Generic
			}
			qb := panelQBytes(wt)
			for _, nb := range []int{1, 2, 35} {
				for _, rows := range []int{1, 2, 3, 4, 5, 7, 8, 11, 15, 16} {
					const ntok = 3
					w := make([]byte, panelRows*nb*bs)
					copy(w, randBlocks(rng, rows*nb, bs))
					q, s := make([]byte, nb*qb), make([]byte, nb*panelS)
					f.pack(w, nb*bs, nb, q, s)
					x := randBlocks(rng, ntok*nb, q8_0Bytes)
					ldd := rows + 2
					dst := make([]float32, ntok*ldd)
					for i := range dst {
						dst[i] = -7
					}
					f.gemm(q, s, nb, x, nb*q8_0Bytes, ntok, dst, ldd, rows)
					for tk := 0; tk < ntok; tk++ {
						for r := 0; r < rows; r++ {
							want := dot(w[r*nb*bs:], x[tk*nb*q8_0Bytes:], nb)
							got := dst[tk*ldd+r]
							require.Equal(t, math.Float32bits(want), math.Float32bits(got), "%v %d rows, %d blocks: token %d row %d is %g, Go gives %g", wt, rows, nb, tk, r, got, want)
						}
						require.Equal(t, []float32{-7, -7}, dst[tk*ldd+rows:tk*ldd+rows+2], "%v %d rows: store past the rows", wt, rows)
					}
				}
			}
		}
	})
}

// q8_0Model quantizes one block as llama.cpp's AVX2 quantize_row_q8_0
// does, written from its source: the maximum is reduced over the lanes of
// four 8-float registers with _mm256_max_ps/_mm_max_ps/_mm_max_ss, each
// "a > b ? a : b" (so a NaN in the first operand is dropped and in the
// second kept), then x*id is rounded to float32, rounded half to even and
// converted with VCVTPS2DQ (NaN or a magnitude of 2^31 and more: the
// integer indefinite, INT32_MIN) and saturated to int8 by the packs.
func q8_0Model(x []float32, out []byte) {
	maxps := func(a, b float32) float32 {
		if a > b {
			return a
		}
		return b
	}
	var m [8]float32
	for l := range m {
		m[l] = abs32(x[l])
		for r := 1; r < 4; r++ {
			m[l] = maxps(m[l], abs32(x[8*r+l]))
		}
	}
	var m4 [4]float32
	for l := range m4 {
		m4[l] = maxps(m[4+l], m[l]) // _mm_max_ps(high 128 bits, low)
	}
	m4[0], m4[1] = maxps(m4[0], m4[2]), maxps(m4[1], m4[3]) // movehl
	amax := maxps(m4[0], m4[1])                             // max_ss with movehdup
	binary.LittleEndian.PutUint16(out, quant.FP32ToFP16(amax/127))
	var id float32
	if amax != 0 {
		id = 127 / amax
	}
	for j, v := range x {
		p := float32(v * id) // rounded before the rounding to an integer
		r := math.RoundToEven(float64(p))
		if !(math.Abs(r) < 1<<31) {
			r = math.MinInt32
		}
		out[2+j] = byte(int8(max(-128, min(127, r))))
	}
}

// TestQuantizeQ8_0NaN checks the NEON quantizer on blocks holding NaN,
// where only the lane order of llama.cpp's maximum defines the bytes
// (act.go's pure-Go quantizer reads the block in order instead).
func TestQuantizeQ8_0NaN(t *testing.T) {
	rng := rand.New(rand.NewPCG(55, 56))
	neonCases(t, func(t *testing.T) {
		const nb = 64
		x := randFloats(rng, nb*qk, 1)
		for b := 0; b < nb; b++ {
			for k := rng.IntN(3) + 1; k > 0; k-- {
				x[b*qk+rng.IntN(qk)] = float32(math.NaN())
			}
			if b%4 == 0 {
				x[b*qk+rng.IntN(qk)] = float32(math.Inf(1 - 2*rng.IntN(2)))
			}
		}
		// A block whose maximum drops its NaN and keeps a value of
		// 1e30 (127/amax times it overflows int32), and one whose NaN
		// wins over a later 1e30 in its lane.
		x[5*qk+2], x[5*qk+10], x[5*qk+11] = float32(math.NaN()), 1e30, 1
		x[6*qk+2], x[6*qk+10], x[6*qk+11] = 1e30, float32(math.NaN()), 1
		got := make([]byte, nb*q8_0Bytes)
		quantRowQ8_0NEON(x, got)
		want := make([]byte, nb*q8_0Bytes)
		for b := 0; b < nb; b++ {
			q8_0Model(x[b*qk:(b+1)*qk], want[b*q8_0Bytes:])
		}
		for b := 0; b < nb; b++ {
			require.Equal(t, want[b*q8_0Bytes:(b+1)*q8_0Bytes], got[b*q8_0Bytes:(b+1)*q8_0Bytes], "block %d: %v", b, x[b*qk:(b+1)*qk])
		}
	})
}

// TestQuantizeQ8_0Ties checks values whose product x*(127/amax) is not a
// tie but rounds to one in float32: llama.cpp rounds the product first
// (VMULPS, then VROUNDPS), so 100.5+3e-6 becomes 100 and 5.5-2e-7
// becomes 6, where a fused multiply-round would give 101 and 5. The
// operands were found by searching with exact (math/big) products.
func TestQuantizeQ8_0Ties(t *testing.T) {
	cases := []struct{ amax, v uint32 }{
		{0x4011ea24, 0x3fe6ef8c}, // x*id = 100.5 + 3.2e-6
		{0x4052b52e, 0x3e120090}, // x*id = 5.5 - 2.1e-7
	}
	rng := rand.New(rand.NewPCG(57, 58))
	neonCases(t, func(t *testing.T) {
		x := randFloats(rng, 2*qk, 0.1)
		for i, c := range cases {
			blk := x[i*qk : (i+1)*qk]
			blk[3] = math.Float32frombits(c.amax)
			blk[17] = math.Float32frombits(c.v)
			blk[20] = -math.Float32frombits(c.v)
		}
		got := make([]byte, 2*q8_0Bytes)
		quantRowQ8_0NEON(x, got)
		want := make([]byte, 2*q8_0Bytes)
		require.NoError(t, quant.QuantizeActivations(backend.Q8_0, x, want))
		require.Equal(t, want, got)
		require.Equal(t, []int8{100, -100, 6, -6}, []int8{int8(got[2+17]), int8(got[2+20]), int8(got[q8_0Bytes+2+17]), int8(got[q8_0Bytes+2+20])})
	})
}

// TestPrepareQ8_0KeptGGUF checks the layout choice of Prepare on arm64:
// Q8_0 stays in GGUF layout under NEON (ggufPreferred), Q4_0 is always
// repacked; and a Q8_0 matrix packed into panels with NEON off multiplies
// under every setting to the pure-Go row dots bit for bit (through the
// NEON panel kernels when they are on).
func TestPrepareQ8_0KeptGGUF(t *testing.T) {
	rng := rand.New(rand.NewPCG(59, 60))
	const rows, cols, ntok = 21, 96, 3
	nb := cols / qk
	w := randBlocks(rng, rows*nb, q8_0Bytes)
	x := randBlocks(rng, ntok*nb, q8_0Bytes)
	var panels *Packed
	featureCases(t, func(t *testing.T) {
		if !useASIMD {
			var err error
			panels, err = Prepare(backend.Q8_0, w, rows, cols)
			require.NoError(t, err)
		}
	})
	require.NotNil(t, panels)
	require.NotNil(t, panels.q, "Q8_0 without NEON must be repacked")
	p := NewPool(2)
	defer p.Close()
	featureCases(t, func(t *testing.T) {
		pw, err := Prepare(backend.Q8_0, w, rows, cols)
		require.NoError(t, err)
		require.Equal(t, useASIMD, pw.q == nil, "Q8_0 kept in GGUF layout")
		pw4, err := Prepare(backend.Q4_0, randBlocks(rng, rows*nb, q4_0Bytes), rows, cols)
		require.NoError(t, err)
		require.NotNil(t, pw4.q, "Q4_0 repacked")
		dst := make([]float32, ntok*rows)
		require.NoError(t, MatMulPacked(p, panels, x, ntok, dst, rows))
		for tk := 0; tk < ntok; tk++ {
			for r := 0; r < rows; r++ {
				want := dotQ8_0Generic(w[r*nb*q8_0Bytes:], x[tk*nb*q8_0Bytes:], nb)
				require.Equal(t, math.Float32bits(want), math.Float32bits(dst[tk*rows+r]), "token %d row %d", tk, r)
			}
		}
	})
}
