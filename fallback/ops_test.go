package fallback

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

func TestEmbed(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	c := newCPU(t, 2)
	const vocab = 11
	ids := []int32{7, 0, 10, 7}
	b := setBatch(t, c, &backend.BatchInput{IDs: ids, Pos: []int32{0, 1, 2, 3}, Seq: []int32{0, 0, 0, 0}})

	t.Run("F32", func(t *testing.T) {
		const cols = 37
		vals := randVals(rng, vocab*cols, 3)
		tab := uploadF32(t, c, "tok", vocab, cols, vals)
		dst := newStrided(t, c, rng, len(ids), cols, nil)
		require.NoError(t, c.Embed(dst.view, tab, b))
		got := readAll(t, c, dst.view)
		for i, id := range ids {
			require.Equal(t, vals[int(id)*cols:(int(id)+1)*cols], got[i*cols:(i+1)*cols], "token %d", i)
		}
		dst.checkGuard(t, c)
	})

	t.Run("Q8_0", func(t *testing.T) {
		// Built by hand: block = fp16 scale d, then 32 int8 q; value d*q.
		const cols = 64
		data := make([]byte, vocab*2*34)
		want := make([]float32, vocab*cols)
		for r := 0; r < vocab; r++ {
			for blk := 0; blk < 2; blk++ {
				off := (r*2 + blk) * 34
				d := float32(rng.IntN(200)+1) / 1024 // exact in fp16
				binary.LittleEndian.PutUint16(data[off:], quant.FP32ToFP16(d))
				for i := 0; i < 32; i++ {
					q := int8(rng.IntN(255) - 127)
					data[off+2+i] = byte(q)
					want[r*cols+blk*32+i] = d * float32(q)
				}
			}
		}
		tab, err := c.Upload(&backend.Weight{Name: "tok", Type: backend.Q8_0, Rows: vocab, Cols: cols, Data: data})
		require.NoError(t, err)
		dst := newAct(t, c, len(ids), cols, nil)
		require.NoError(t, c.Embed(dst, tab, b))
		got := readAll(t, c, dst)
		for i, id := range ids {
			require.Equal(t, want[int(id)*cols:(int(id)+1)*cols], got[i*cols:(i+1)*cols], "token %d", i)
		}
	})

	t.Run("id beyond table", func(t *testing.T) {
		tab := uploadF32(t, c, "small", 5, 4, randVals(rng, 20, 1))
		dst := newAct(t, c, len(ids), 4, nil)
		err := c.Embed(dst, tab, b)
		require.ErrorContains(t, err, "id 7")
	})
}

func TestRMSNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	c := newCPU(t, 2)
	const rows, cols, eps = 3, 37, 1e-5
	xv := randVals(rng, rows*cols, 2)
	wv := randVals(rng, cols, 1.5)
	w := uploadF32(t, c, "norm", 1, cols, wv)
	want := make([]float64, rows*cols)
	for r := 0; r < rows; r++ {
		var ss float64
		for j := 0; j < cols; j++ {
			ss += float64(xv[r*cols+j]) * float64(xv[r*cols+j])
		}
		inv := 1 / math.Sqrt(ss/cols+eps)
		for j := 0; j < cols; j++ {
			want[r*cols+j] = float64(xv[r*cols+j]) * inv * float64(wv[j])
		}
	}

	t.Run("views", func(t *testing.T) {
		x := newStrided(t, c, rng, rows, cols, xv)
		d := newStrided(t, c, rng, rows, cols, nil)
		require.NoError(t, c.RMSNorm(d.view, x.view, w, eps))
		requireClose(t, want, readAll(t, c, d.view), 1e-6, 1e-6, "rmsnorm")
		d.checkGuard(t, c)
		x.checkGuard(t, c)
	})
	t.Run("in place", func(t *testing.T) {
		x := newAct(t, c, rows, cols, xv)
		require.NoError(t, c.RMSNorm(x, x, w, eps))
		requireClose(t, want, readAll(t, c, x), 1e-6, 1e-6, "rmsnorm in place")
	})
	t.Run("large rows go parallel", func(t *testing.T) {
		const n, m = 40, 1024 // above parallelElems
		xv := randVals(rng, n*m, 2)
		w := uploadF32(t, c, "norm", 1, m, randVals(rng, m, 1))
		wv := readAll(t, c, w)
		x := newAct(t, c, n, m, xv)
		require.NoError(t, c.RMSNorm(x, x, w, eps))
		want := make([]float64, n*m)
		for r := 0; r < n; r++ {
			var ss float64
			for j := 0; j < m; j++ {
				ss += float64(xv[r*m+j]) * float64(xv[r*m+j])
			}
			inv := 1 / math.Sqrt(ss/m+eps)
			for j := 0; j < m; j++ {
				want[r*m+j] = float64(xv[r*m+j]) * inv * float64(wv[j])
			}
		}
		requireClose(t, want, readAll(t, c, x), 1e-6, 1e-6, "rmsnorm parallel")
	})
}

// ropeRef rotates x (float64) by theta_i = pos*scale*base^(-2i/d).
func ropeRef(x []float32, pos []int32, heads, hd int, base, scale float64, neox bool) []float64 {
	out := make([]float64, len(x))
	cols := heads * hd
	for t := range pos {
		for h := 0; h < heads; h++ {
			off := t*cols + h*hd
			for i := 0; i < hd/2; i++ {
				th := float64(pos[t]) * scale * math.Pow(base, -2*float64(i)/float64(hd))
				a, b := off+2*i, off+2*i+1
				if neox {
					a, b = off+i, off+i+hd/2
				}
				x0, x1 := float64(x[a]), float64(x[b])
				out[a] = x0*math.Cos(th) - x1*math.Sin(th)
				out[b] = x0*math.Sin(th) + x1*math.Cos(th)
			}
		}
	}
	return out
}

func TestApplyRoPE(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	c := newCPU(t, 2)
	const heads, hd = 3, 10
	pos := []int32{0, 5, 47}
	b := setBatch(t, c, &backend.BatchInput{IDs: []int32{1, 2, 3}, Pos: pos, Seq: []int32{0, 1, 0}})
	for _, neox := range []bool{false, true} {
		for _, scale := range []float32{1, 0.25} {
			name := "normal"
			if neox {
				name = "neox"
			}
			t.Run(name, func(t *testing.T) {
				xv := randVals(rng, len(pos)*heads*hd, 2)
				x := newStrided(t, c, rng, len(pos), heads*hd, xv)
				p := backend.RoPE{HeadDim: hd, Heads: heads, FreqBase: 10000, FreqScale: scale, Neox: neox}
				require.NoError(t, c.ApplyRoPE(x.view, b, p))
				// The float32 angle recurrence drifts by a few ulp per pair.
				requireClose(t, ropeRef(xv, pos, heads, hd, 10000, float64(scale), neox), readAll(t, c, x.view), 2e-5, 2e-5, name)
				x.checkGuard(t, c)
			})
		}
	}
	t.Run("many tokens in parallel", func(t *testing.T) {
		const n, heads, hd = 64, 8, 64 // above parallelElems
		pos := make([]int32, n)
		for i := range pos {
			pos[i] = int32(rng.IntN(200))
		}
		b := setBatch(t, c, &backend.BatchInput{IDs: make([]int32, n), Pos: pos, Seq: make([]int32, n)})
		xv := randVals(rng, n*heads*hd, 1)
		x := newAct(t, c, n, heads*hd, xv)
		require.NoError(t, c.ApplyRoPE(x, b, backend.RoPE{HeadDim: hd, Heads: heads, FreqBase: 500000, FreqScale: 1}))
		requireClose(t, ropeRef(xv, pos, heads, hd, 500000, 1, false), readAll(t, c, x), 5e-5, 5e-5, "parallel")
	})
}

func TestSiLUMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	c := newCPU(t, 2)
	const rows, cols = 3, 37 // 4 blocks of 8 and a tail of 5
	gv := randVals(rng, rows*cols, 6)
	uv := randVals(rng, rows*cols, 2)
	want := make([]float64, rows*cols)
	for i := range want {
		g := float64(gv[i])
		want[i] = g / (1 + math.Exp(-g)) * float64(uv[i])
	}
	t.Run("views", func(t *testing.T) {
		g := newStrided(t, c, rng, rows, cols, gv)
		u := newStrided(t, c, rng, rows, cols, uv)
		d := newStrided(t, c, rng, rows, cols, nil)
		require.NoError(t, c.SiLUMul(d.view, g.view, u.view))
		requireClose(t, want, readAll(t, c, d.view), 1e-6, 1e-6, "silu")
		d.checkGuard(t, c)
	})
	t.Run("in place", func(t *testing.T) {
		g := newAct(t, c, rows, cols, gv)
		u := newAct(t, c, rows, cols, uv)
		require.NoError(t, c.SiLUMul(g, g, u))
		requireClose(t, want, readAll(t, c, g), 1e-6, 1e-6, "silu in place")
	})
}

func TestAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	c := newCPU(t, 2)
	const rows, cols = 3, 37
	av := randVals(rng, rows*cols, 4)
	bv := randVals(rng, rows*cols, 4)
	t.Run("full", func(t *testing.T) {
		a := newStrided(t, c, rng, rows, cols, av)
		b := newStrided(t, c, rng, rows, cols, bv)
		d := newStrided(t, c, rng, rows, cols, nil)
		require.NoError(t, c.Add(d.view, a.view, b.view))
		want := make([]float64, rows*cols)
		for i := range want {
			want[i] = float64(av[i]) + float64(bv[i])
		}
		requireClose(t, want, readAll(t, c, d.view), 0, 1e-7, "add")
		d.checkGuard(t, c)
	})
	t.Run("broadcast in place", func(t *testing.T) {
		a := newAct(t, c, rows, cols, av)
		b := newStrided(t, c, rng, 1, cols, bv[:cols])
		require.NoError(t, c.Add(a, a, b.view))
		want := make([]float64, rows*cols)
		for i := range want {
			want[i] = float64(av[i]) + float64(bv[i%cols])
		}
		requireClose(t, want, readAll(t, c, a), 0, 1e-7, "broadcast add")
		b.checkGuard(t, c)
	})
}

func TestSoftmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	c := newCPU(t, 2)
	const rows, cols = 3, 37
	xv := randVals(rng, rows*cols, 20)
	x := newStrided(t, c, rng, rows, cols, xv)
	require.NoError(t, c.Softmax(x.view))
	want := make([]float64, rows*cols)
	for r := 0; r < rows; r++ {
		var sum float64
		for j := 0; j < cols; j++ {
			want[r*cols+j] = math.Exp(float64(xv[r*cols+j]))
			sum += want[r*cols+j]
		}
		for j := 0; j < cols; j++ {
			want[r*cols+j] /= sum
		}
	}
	requireClose(t, want, readAll(t, c, x.view), 1e-9, 1e-6, "softmax")
	x.checkGuard(t, c)
}

func TestGatherOutputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	c := newCPU(t, 2)
	const cols = 37
	b := setBatch(t, c, &backend.BatchInput{
		IDs: []int32{1, 2, 3, 4}, Pos: []int32{0, 1, 2, 0}, Seq: []int32{0, 0, 0, 1},
		Outputs: []int32{2, 3, 0},
	})
	sv := randVals(rng, 4*cols, 1)
	src := newStrided(t, c, rng, 4, cols, sv)
	dst := newStrided(t, c, rng, 3, cols, nil)
	require.NoError(t, c.GatherOutputs(dst.view, src.view, b))
	got := readAll(t, c, dst.view)
	for i, o := range []int{2, 3, 0} {
		require.Equal(t, sv[o*cols:(o+1)*cols], got[i*cols:(i+1)*cols], "output %d", i)
	}
	dst.checkGuard(t, c)
}
