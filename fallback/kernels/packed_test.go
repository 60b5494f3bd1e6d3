package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
)

// unpanel reads element e of row r back from a Prepared matrix as the
// signed integer quant and the fp16 scale bits, following the layout as
// panel.go documents it.
func unpanel(pw *Packed, r, e int) (q int, scale uint16) {
	nb := pw.cols / qk
	qb := panelQBytes(pw.wt)
	p, pr, b, i := r/panelRows, r%panelRows, e/qk, e%qk
	blk := pw.q[(p*nb+b)*qb:]
	sc := pw.s[(p*nb+b)*panelS:]
	scale = uint16(sc[2*pr]) | uint16(sc[2*pr+1])<<8
	if pw.wt == backend.Q8_0 {
		return int(int8(blk[(i/4)*panelLine+4*pr+i%4] ^ 0x80)), scale
	}
	j := i % 16 // nibble byte
	v := blk[(j/4)*panelLine+4*pr+j%4]
	if i < 16 {
		return int(v&15) - 8, scale
	}
	return int(v>>4) - 8, scale
}

// TestPrepareLayout checks every quant and scale of Prepared Q8_0 and Q4_0
// matrices against the GGUF rows, with every feature switch (the layout
// must not depend on them), on row counts that leave a partial panel.
func TestPrepareLayout(t *testing.T) {
	// Whether Q8_0 is repacked at all depends on the switches
	// (TestQ8TileDispatch on amd64); the layout, when it is, must not.
	defer func(f func(backend.DType) bool) { preferGGUF = f }(preferGGUF)
	preferGGUF = nil
	rng := rand.New(rand.NewPCG(31, 32))
	for _, wt := range []backend.DType{backend.Q8_0, backend.Q4_0} {
		for _, shape := range [][2]int{{37, 96}, {16, 1056}, {3, 32}} {
			rows, cols := shape[0], shape[1]
			w := unitWeights(t, rng, wt, rows, cols, false)
			for i := range w { // random scales too
				if rng.IntN(3) == 0 {
					w[i] = byte(rng.Uint32())
				}
			}
			wrb, err := backend.RowBytes(wt, cols)
			require.NoError(t, err)
			bs := wrb / (cols / qk)
			var layouts [][2][]byte
			featureCases(t, func(t *testing.T) {
				pw, err := Prepare(wt, w, rows, cols)
				require.NoError(t, err)
				assert.Equal(t, wt, pw.Type())
				assert.Equal(t, rows, pw.Rows())
				assert.Equal(t, cols, pw.Cols())
				for r := 0; r < rows; r++ {
					for e := 0; e < cols; e++ {
						b := e / qk
						blk := w[r*wrb+b*bs : r*wrb+(b+1)*bs]
						var want int
						if wt == backend.Q8_0 {
							want = int(int8(blk[2+e%qk]))
						} else if i := e % qk; i < 16 {
							want = int(blk[2+i]&15) - 8
						} else {
							want = int(blk[2+i-16]>>4) - 8
						}
						q, sc := unpanel(pw, r, e)
						require.Equal(t, want, q, "%v %dx%d row %d element %d", wt, rows, cols, r, e)
						require.Equal(t, uint16(blk[0])|uint16(blk[1])<<8, sc, "%v row %d block %d scale", wt, r, b)
					}
				}
				layouts = append(layouts, [2][]byte{pw.q, pw.s})
			})
			for _, l := range layouts[1:] {
				require.Equal(t, layouts[0], l, "%v %dx%d: layout differs between feature switches", wt, rows, cols)
			}
		}
	}
}

// TestPrepareOtherTypes checks that types without a panel layout keep the
// caller's bytes and multiply through MatMul.
func TestPrepareOtherTypes(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	for _, wt := range []backend.DType{backend.Q4_K, backend.F16, backend.Q5_0} {
		rows, cols := 5, 256
		w := make([]byte, 0)
		rb, err := backend.RowBytes(wt, cols)
		require.NoError(t, err)
		for i := 0; i < rows*rb; i++ {
			w = append(w, byte(rng.Uint32()))
		}
		pw, err := Prepare(wt, w, rows, cols)
		require.NoError(t, err)
		assert.Nil(t, pw.q, "%v", wt)
		assert.Same(t, &w[0], &pw.raw[0], "%v: Prepare copied the weights", wt)
	}
}

func TestPrepareAndMatMulPackedErrors(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	w := make([]byte, 4*34)
	for name, args := range map[string]struct {
		wt         backend.DType
		w          []byte
		rows, cols int
	}{
		"short weights": {backend.Q8_0, w[:100], 4, 32},
		"partial block": {backend.Q8_0, w, 4, 31},
		"no rows":       {backend.Q8_0, w, 0, 32},
		"no cols":       {backend.Q8_0, w, 4, 0},
		"unknown type":  {backend.DType(77), w, 4, 32},
	} {
		_, err := Prepare(args.wt, args.w, args.rows, args.cols)
		assert.Error(t, err, name)
	}
	pw, err := Prepare(backend.Q8_0, w, 4, 32)
	require.NoError(t, err)
	x := make([]byte, 2*34)
	dst := make([]float32, 8)
	require.NoError(t, MatMulPacked(p, pw, x, 2, dst, 4))
	for name, err := range map[string]error{
		"nil packed":  MatMulPacked(p, nil, x, 2, dst, 4),
		"short acts":  MatMulPacked(p, pw, x[:40], 2, dst, 4),
		"short dst":   MatMulPacked(p, pw, x, 2, dst[:7], 4),
		"small ldd":   MatMulPacked(p, pw, x, 2, dst, 3),
		"no tokens":   MatMulPacked(p, pw, x, 0, dst, 4),
		"nil pool":    MatMulPacked(nil, pw, x, 2, dst, 4),
		"nil pool K4": MatMulPacked(nil, mustPrepare(t, backend.Q4_K, make([]byte, 144), 1, 256), x, 1, dst, 1),
	} {
		assert.Error(t, err, name)
	}
}

func mustPrepare(t *testing.T, wt backend.DType, w []byte, rows, cols int) *Packed {
	pw, err := Prepare(wt, w, rows, cols)
	require.NoError(t, err, fmt.Sprintf("%v", wt))
	return pw
}
