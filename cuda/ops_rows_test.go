package cuda_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

// The row and elementwise kernels reproduce the CPU backend's float
// operations (see kernels/ops.cu); the only differences allowed are:
//   - RMSNorm and Softmax add double-precision partial sums in another
//     order; rounded to float the result is almost always identical, and
//     at worst one ulp apart: tolerance 2 ulp (2^-22 relative).
//   - cos, sin and exp of a double round to the same float unless the
//     double lands within an ulp of a float midpoint (probability about
//     2^-28): RoPE and SiLU are compared exactly, with 1 ulp allowed for
//     that case.
const ulp = 1.0 / (1 << 23)

func TestParityRMSNorm(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewSource(1))
		p := newPair(t, d)
		const rows, cols = 5, 300
		x := randn(rng, rows*cols, 3)
		wv := randn(rng, cols, 1)
		w32 := &backend.Weight{Name: "norm", Type: backend.F32, Rows: 1, Cols: cols, Data: make([]byte, 4*cols)}
		require.NoError(t, quant.Quantize(backend.F32, wv, w32.Data))
		w16 := &backend.Weight{Name: "norm16", Type: backend.F16, Rows: 1, Cols: cols, Data: make([]byte, 2*cols)}
		require.NoError(t, quant.Quantize(backend.F16, wv, w16.Data))
		for _, w := range []*backend.Weight{w32, w16} {
			wt := p.weight(w)
			xa := p.act("x", rows, cols, x)
			y := p.act("y", rows, cols, nil)
			p.poison(y)
			require.NoError(t, p.gpu.RMSNorm(y.g, xa.g, wt.g, 1e-5))
			require.NoError(t, p.cpu.RMSNorm(y.c, xa.c, wt.c, 1e-5))
			gv, cv := p.read(y)
			within(t, gv, cv, uniformTol(cv, 2*ulp, 0), "rmsnorm "+w.Type.String())
			// In place, through a strided view.
			wide := p.act("wide", rows, cols+4, nil)
			xv := p.view(wide, 0, rows, 2, cols)
			require.NoError(t, p.gpu.Write(xv.g, x))
			require.NoError(t, p.cpu.Write(xv.c, x))
			require.NoError(t, p.gpu.RMSNorm(xv.g, xv.g, wt.g, 1e-5))
			require.NoError(t, p.cpu.RMSNorm(xv.c, xv.c, wt.c, 1e-5))
			gv, cv = p.read(xv)
			within(t, gv, cv, uniformTol(cv, 2*ulp, 0), "rmsnorm in place "+w.Type.String())
		}
	})
}

func TestParityRoPE(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		for _, neox := range []bool{false, true} {
			t.Run(fmt.Sprintf("neox=%v", neox), func(t *testing.T) {
				rng := rand.New(rand.NewSource(2))
				p := newPair(t, d)
				const heads, hd = 3, 10
				in := &backend.BatchInput{IDs: []int32{1, 2, 3, 4}, Pos: []int32{0, 7, 1000, 33}, Seq: []int32{0, 0, 1, 1}}
				bt := p.batch(in)
				x := randn(rng, 4*heads*hd, 1)
				wide := p.act("q", 4, heads*hd+6, nil)
				xv := p.view(wide, 0, 4, 6, heads*hd)
				require.NoError(t, p.gpu.Write(xv.g, x))
				require.NoError(t, p.cpu.Write(xv.c, x))
				rp := backend.RoPE{HeadDim: hd, Heads: heads, FreqBase: 10000, FreqScale: 0.5, Neox: neox}
				require.NoError(t, p.gpu.ApplyRoPE(xv.g, bt.g, rp))
				require.NoError(t, p.cpu.ApplyRoPE(xv.c, bt.c, rp))
				gv, cv := p.read(xv)
				within(t, gv, cv, uniformTol(cv, ulp, 1e-30), "rope")
				t.Logf("max |gpu-cpu| = %g", maxDiff(gv, cv))
				// The rotated vectors keep their norms: an independent check.
				for i := 0; i < 4*heads; i++ {
					var a, b float64
					for j := 0; j < hd; j++ {
						a += float64(x[i*hd+j]) * float64(x[i*hd+j])
						b += float64(gv[i*hd+j]) * float64(gv[i*hd+j])
					}
					assert.InDelta(t, a, b, 1e-5*a)
				}
			})
		}
	})
}

func TestParitySiLUMulAddSoftmax(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewSource(3))
		p := newPair(t, d)
		const rows, cols = 3, 45 // not a multiple of 8: the tail takes expf
		g := p.act("g", rows, cols, randn(rng, rows*cols, 4))
		u := p.act("u", rows, cols, randn(rng, rows*cols, 1))
		y := p.act("y", rows, cols, nil)
		p.poison(y)
		require.NoError(t, p.gpu.SiLUMul(y.g, g.g, u.g))
		require.NoError(t, p.cpu.SiLUMul(y.c, g.c, u.c))
		gv, cv := p.read(y)
		within(t, gv, cv, uniformTol(cv, ulp, 1e-30), "silumul")
		// In place on gate.
		require.NoError(t, p.gpu.SiLUMul(g.g, g.g, u.g))
		require.NoError(t, p.cpu.SiLUMul(g.c, g.c, u.c))
		gv, cv = p.read(g)
		within(t, gv, cv, uniformTol(cv, ulp, 1e-30), "silumul in place")

		// Add: full, broadcast of one row, in place.
		a := p.act("a", rows, cols, randn(rng, rows*cols, 1))
		b1 := p.act("b1", 1, cols, randn(rng, cols, 1))
		p.poison(y)
		require.NoError(t, p.gpu.Add(y.g, a.g, u.g))
		require.NoError(t, p.cpu.Add(y.c, a.c, u.c))
		gv, cv = p.read(y)
		assert.Equal(t, cv, gv, "add")
		require.NoError(t, p.gpu.Add(a.g, a.g, b1.g))
		require.NoError(t, p.cpu.Add(a.c, a.c, b1.c))
		gv, cv = p.read(a)
		assert.Equal(t, cv, gv, "add broadcast in place")

		// Softmax on a view, rows long enough for several blocks of 8.
		sm := p.act("s", 4, 300, randn(rng, 4*300, 5))
		sv := p.view(sm, 1, 3, 7, 251)
		require.NoError(t, p.gpu.Softmax(sv.g))
		require.NoError(t, p.cpu.Softmax(sv.c))
		gv, cv = p.read(sm)
		within(t, gv, cv, uniformTol(cv, 2*ulp, 1e-38), "softmax")
		for r := 1; r < 4; r++ {
			var s float64
			for k := 7; k < 258; k++ {
				s += float64(gv[r*300+k])
			}
			assert.InDelta(t, 1, s, 1e-5, "row %d sums to 1", r)
		}
	})
}

// TestParityEmbedAndRead dequantizes every weight format on the device,
// by Embed (gathering rows by token id) and by Read, and compares with
// quant.Dequantize bit for bit.
func TestParityEmbedAndRead(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		for _, c := range []struct {
			typ  backend.DType
			cols int
		}{{backend.F32, 37}, {backend.F16, 70}, {backend.Q8_0, 96}, {backend.Q4_0, 160}, {backend.Q4_K, 256},
			{backend.Q5_K, 512}, {backend.Q6_K, 256}, {backend.W8, 100}, {backend.FP8, 100}, {backend.Ternary, 36},
			{backend.Binary, 136}} {
			t.Run(c.typ.String(), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(c.cols)))
				p := newPair(t, d)
				const rows = 11
				w := randomWeight(t, rng, c.typ, rows, c.cols)
				wt := p.weight(w)
				want := make([]float32, rows*c.cols)
				require.NoError(t, p.cpu.Read(wt.c, want)) // quant.Dequantize; row formats: quant.DequantizeRow
				got := make([]float32, rows*c.cols)
				require.NoError(t, p.gpu.Read(wt.g, got))
				assert.Equal(t, want, got, "read")

				ids := []int32{10, 0, 3, 3, 7}
				in := &backend.BatchInput{IDs: ids, Pos: make([]int32, len(ids)), Seq: make([]int32, len(ids))}
				bt := p.batch(in)
				y := p.act("emb", len(ids), c.cols, nil)
				p.poison(y)
				require.NoError(t, p.gpu.Embed(y.g, wt.g, bt.g))
				gv := make([]float32, len(ids)*c.cols)
				require.NoError(t, p.gpu.Read(y.g, gv))
				for i, id := range ids {
					assert.Equal(t, want[int(id)*c.cols:int(id+1)*c.cols], gv[i*c.cols:(i+1)*c.cols], "token %d id %d", i, id)
				}
			})
		}
	})
}

func TestParityGatherOutputs(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewSource(4))
		p := newPair(t, d)
		in := &backend.BatchInput{IDs: []int32{1, 2, 3, 4, 5}, Pos: []int32{0, 1, 2, 3, 4}, Seq: make([]int32, 5), Outputs: []int32{4, 0, 2}}
		bt := p.batch(in)
		src := p.act("src", 5, 33, randn(rng, 5*33, 1))
		dst := p.act("dst", 3, 33, nil)
		p.poison(dst)
		require.NoError(t, p.gpu.GatherOutputs(dst.g, src.g, bt.g))
		require.NoError(t, p.cpu.GatherOutputs(dst.c, src.c, bt.c))
		gv, cv := p.read(dst)
		assert.Equal(t, cv, gv)
	})
}

// TestOpErrors: shape and argument errors name the op and are the same
// kind of error the CPU backend returns.
func TestOpErrors(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		be := d.be
		rng := rand.New(rand.NewSource(5))
		x, err := be.NewActivation("x", 3, 64)
		require.NoError(t, err)
		defer be.Free(x)
		y, err := be.NewActivation("y", 3, 10)
		require.NoError(t, err)
		defer be.Free(y)
		w, err := be.Upload(randomWeight(t, rng, backend.Q8_0, 10, 96))
		require.NoError(t, err)
		defer be.Free(w)
		assert.ErrorContains(t, be.MatMul(y, w, x), "matmul: weight Q8_0 (Q8_0 10x96) times input 3x64")
		assert.ErrorContains(t, be.MatMul(x, w, x), "matmul")
		assert.ErrorContains(t, be.Add(y, x, x), "add: shape 3x10 does not match 3x64")
		v, err := be.View(x, 0, 2, 0, 64)
		require.NoError(t, err)
		assert.ErrorContains(t, be.Add(v, x, x), "add")
		assert.ErrorContains(t, be.SiLUMul(x, x, y), "silumul")
		_, err = be.View(x, 2, 2, 0, 64)
		assert.ErrorContains(t, err, "outside 3x64")
		// Partial overlap of an in-place op.
		v1, _ := be.View(x, 0, 2, 0, 64)
		v2, _ := be.View(x, 1, 2, 0, 64)
		assert.ErrorContains(t, be.SiLUMul(v1, v2, v2), "partially overlaps")
		_, err = be.Upload(&backend.Weight{Name: "q2", Type: backend.Q2_K, Rows: 1, Cols: 256, Data: make([]byte, 84)})
		assert.ErrorContains(t, err, "Q2_K weights are not supported by the CUDA backend")
		_, err = be.Upload(&backend.Weight{Name: "short", Type: backend.Q8_0, Rows: 2, Cols: 32, Data: make([]byte, 34)})
		assert.ErrorContains(t, err, "short")
		bt, err := be.NewBatch(4)
		require.NoError(t, err)
		defer be.Free(bt)
		assert.ErrorContains(t, be.Embed(x, w, bt), "batch is empty")
		require.NoError(t, be.SetBatch(bt, &backend.BatchInput{IDs: []int32{1, 2, 11}, Pos: []int32{0, 1, 2}, Seq: []int32{0, 0, 0}}))
		e3, err := be.NewActivation("e", 3, 96)
		require.NoError(t, err)
		defer be.Free(e3)
		assert.ErrorContains(t, be.Embed(e3, w, bt), "embed: token 2 id 11 outside weight Q8_0")
		assert.NoError(t, be.Synchronize())
	})
}
