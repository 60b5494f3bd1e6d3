package fallback

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"

	"qinfer/fallback/vecmath"
)

// The scalar code the backend ran before qinfer/fallback/vecmath took over
// its row kernels, kept as an independent reference: the tests check it
// against closed forms and llama.cpp, and check vecmath (assembly and
// pure Go alike) against it bit for bit.

// expf is C's expf; glibc's is correctly rounded in practice, as is
// rounding the double result.
func expf(x float32) float32 { return float32(math.Exp(float64(x))) }

// vExpf is one lane of ggml_v_expf, the AVX2+FMA exponential that ggml uses
// for softmax and SiLU in blocks of 8 (adapted from ARM's optimized
// routines; max error 1.45 ulp + 0.5). Matching it instead of expf keeps
// our probabilities bit-identical to llama.cpp's.
func vExpf(x float32) float32 {
	const r = 0x1.8p23
	z := vecmath.FMA32(x, 0x1.715476p+0, r)
	n := z - r
	b := vecmath.FMA32(-n, 0x1.7f7d1cp-20, vecmath.FMA32(-n, 0x1.62e4p-1, x))
	e := math.Float32bits(z) << 23
	k := math.Float32frombits(e + math.Float32bits(1))
	u := float32(b * b)
	j := vecmath.FMA32(vecmath.FMA32(vecmath.FMA32(0x1.0e4020p-7, b, 0x1.573e2ep-5), u, vecmath.FMA32(0x1.555e66p-3, b, 0x1.fffdb6p-2)),
		u, float32(0x1.ffffecp-1*b))
	an := abs32(n)
	if !(an > 126) {
		return vecmath.FMA32(j, k, k)
	}
	var g uint32
	if n <= 0 {
		g = 0x82000000
	}
	s1 := math.Float32frombits(g + 0x7f000000)
	s2 := math.Float32frombits(e - g)
	if an > 192 {
		return float32(s1 * s1)
	}
	return float32(vecmath.FMA32(s2, j, s2) * s1)
}

func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

// silu8 is ggml_v_silu: x / (1 + v_expf(-x)).
func silu8(x float32) float32 { return x / (1 + vExpf(0-x)) }

// siluScalar is ggml_silu_f32, used for the elements past the last full
// block of 8.
func siluScalar(x float32) float32 { return x / (1 + expf(-x)) }

// fp16Table maps every half to its float32 value, as ggml's
// ggml_table_f32_f16: a lookup is far cheaper than decoding the bits in the
// attention inner loops.
var (
	fp16Once  sync.Once
	fp16Table []float32
)

func halfTable() []float32 {
	fp16Once.Do(func() {
		t := make([]float32, 1<<16)
		for i := range t {
			t[i] = quant.FP16ToFP32(uint16(i))
		}
		fp16Table = t
	})
	return fp16Table
}

// roundF16 rounds f to the nearest half (ties to even), as F16C's
// VCVTPS2PH does when ggml converts an operand to F16.
func roundF16(tab []float32, f float32) float32 { return tab[quant.FP32ToFP16(f)] }

// dotTiny is llamafile's tinyBLAS<8> dot (used by ggml's mul_mat for a
// batch of two or more tokens when k is a multiple of 8): one 8-lane FMA
// accumulator, element i in lane i%8, then hsum8. len(a) must be a
// multiple of 8.
func dotTiny(a, b []float32) float32 {
	var acc [8]float32
	b = b[:len(a)]
	for i := 0; i+8 <= len(a); i += 8 {
		for l := 0; l < 8; l++ {
			acc[l] += float32(a[i+l] * b[i+l])
		}
	}
	return vecmath.Hsum8(&acc)
}

// dotVecF16 is ggml_vec_dot_f16 on AVX2: four 8-lane FMA accumulators over
// the first n&^31 elements, reduce32, then the rest as float products
// summed in double.
func dotVecF16(a, b []float32) float32 {
	var acc [32]float32
	b = b[:len(a)]
	np := len(a) &^ 31
	for i := 0; i < np; i += 32 {
		for l := 0; l < 32; l++ {
			acc[l] += float32(a[i+l] * b[i+l])
		}
	}
	sum := float64(vecmath.Reduce32(&acc))
	for i := np; i < len(a); i++ {
		sum += float64(float32(a[i] * b[i]))
	}
	return float32(sum)
}

// softmaxGGML is the core of ggml_compute_forward_soft_max_f32 after
// scaling and masking: x[i] -= max, exponentials by v_expf in blocks of 8
// whose horizontal sums (hsum8) are accumulated in double, scalar expf for
// a tail shorter than 8 (none when padded is true: llama.cpp pads the KV
// length to a multiple of 32 with masked cells, which contribute exact
// zeros to the last block), then y *= (float)(1/sum).
func softmaxGGML(y, x []float32, padded bool) {
	n := len(x)
	y = y[:n]
	maxv := float32(math.Inf(-1))
	for _, v := range x {
		maxv = max32(maxv, v)
	}
	var sum float64
	i := 0
	for ; i+8 <= n; i += 8 {
		var blk [8]float32
		for l := 0; l < 8; l++ {
			blk[l] = vExpf(x[i+l] - maxv)
			y[i+l] = blk[l]
		}
		sum += float64(vecmath.Hsum8(&blk))
	}
	if padded && i < n {
		var blk [8]float32
		for l := 0; i+l < n; l++ {
			blk[l] = vExpf(x[i+l] - maxv)
			y[i+l] = blk[l]
		}
		sum += float64(vecmath.Hsum8(&blk))
		i = n
	}
	for ; i < n; i++ {
		v := expf(x[i] - maxv)
		y[i] = v
		sum += float64(v)
	}
	inv := float32(1 / sum)
	for i := range y {
		y[i] *= inv
	}
}

// max32 is C's MAX(a, b) as ggml_vec_max_f32 uses it: ((a) > (b) ? (a) : (b)).
func max32(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

// exact computes one token's attention output over positions 0..pos of seq
// with the scalar code the backend used before vecmath (one element at a
// time, half-to-float by table, position j in lane j%lanes of an
// output-major accumulator): the backend must equal it bit for bit.
// multi says whether the token's sequence has two or more tokens in the
// batch (tinyBLAS order where the shape allows).
func (r *attnRef) exact(layer, seq, pos int, qrow []float32, scale float32, typ backend.DType, multi bool) []float32 {
	tab := halfTable()
	hd := r.hd
	f16 := typ == backend.F16
	tinyKQ := multi && f16 && hd%8 == 0
	tinyKQV := multi && hd%4 == 0
	out := make([]float32, r.heads*hd)
	group := r.heads / r.kvHeads
	// The cache holds what the backend stored: halves for an F16 cache.
	row := func(m map[[3]int][]float32, j, kvh int) []float32 {
		x := append([]float32(nil), m[[3]int{layer, seq, j}][kvh*hd:(kvh+1)*hd]...)
		if f16 {
			for i := range x {
				x[i] = roundF16(tab, x[i])
			}
		}
		return x
	}
	for h := 0; h < r.heads; h++ {
		kvh := h / group
		q := append([]float32(nil), qrow[h*hd:(h+1)*hd]...)
		if f16 {
			for i := range q {
				q[i] = roundF16(tab, q[i])
			}
		}
		scores := make([]float32, pos+1)
		for j := range scores {
			kr := row(r.k, j, kvh)
			var dot float32
			switch {
			case !f16:
				dot = dotVecF32(kr, q)
			case tinyKQ:
				dot = dotTiny(kr, q)
			default:
				dot = dotVecF16(kr, q)
			}
			scores[j] = dot * scale
		}
		softmaxGGML(scores, scores, true)
		if f16 {
			for j, x := range scores {
				scores[j] = roundF16(tab, x)
			}
		}
		lanes := 32
		if tinyKQV {
			lanes = 8
		}
		acc := make([]float32, lanes*hd)
		for j, p := range scores {
			l := j % lanes
			for i, x := range row(r.v, j, kvh) {
				if f16 {
					acc[i*lanes+l] += float32(x * p)
				} else {
					acc[i*lanes+l] = vecmath.FMA32(x, p, acc[i*lanes+l])
				}
			}
		}
		for i := 0; i < hd; i++ {
			if tinyKQV {
				out[h*hd+i] = vecmath.Hsum8((*[8]float32)(acc[i*8 : i*8+8]))
			} else {
				out[h*hd+i] = vecmath.Reduce32((*[32]float32)(acc[i*32 : i*32+32]))
			}
		}
	}
	return out
}

// requireSameBits compares float32 slices bit for bit (any two NaNs are
// equal: the sign and payload of an arithmetic NaN carry no meaning).
func requireSameBits(t *testing.T, want, got []float32, what string) {
	t.Helper()
	require.Len(t, got, len(want), what)
	for i := range want {
		if want[i] != want[i] && got[i] != got[i] {
			continue
		}
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			require.Failf(t, "bits differ", "%s[%d]: reference %v (%#08x), backend %v (%#08x)", what, i,
				want[i], math.Float32bits(want[i]), got[i], math.Float32bits(got[i]))
		}
	}
}

// TestRowOpsMatchScalarCode runs SiLUMul and Softmax through the backend,
// large enough for the pool, and compares them bit for bit with the
// scalar code, including a tail past the last block of 8 and inputs that
// take v_expf's overflow and underflow paths.
func TestRowOpsMatchScalarCode(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	c := newCPU(t, 2)
	const rows, cols = 40, 1003
	gv := randVals(rng, rows*cols, 6)
	uv := randVals(rng, rows*cols, 2)
	for i := 0; i < len(gv); i += 97 {
		gv[i] = []float32{90, -90, 130, -130, 200, -200, 0}[i%7]
	}
	want := make([]float32, rows*cols)
	for r := 0; r < rows; r++ {
		for j := 0; j < cols; j++ {
			i := r*cols + j
			s := silu8(gv[i])
			if j >= cols&^7 {
				s = siluScalar(gv[i])
			}
			want[i] = float32(s * uv[i])
		}
	}
	g := newStrided(t, c, rng, rows, cols, gv)
	u := newStrided(t, c, rng, rows, cols, uv)
	d := newStrided(t, c, rng, rows, cols, nil)
	require.NoError(t, c.SiLUMul(d.view, g.view, u.view))
	requireSameBits(t, want, readAll(t, c, d.view), "silumul")
	d.checkGuard(t, c)

	xv := randVals(rng, rows*cols, 30)
	for r := 0; r < rows; r++ {
		softmaxGGML(want[r*cols:(r+1)*cols], xv[r*cols:(r+1)*cols], false)
	}
	x := newStrided(t, c, rng, rows, cols, xv)
	require.NoError(t, c.Softmax(x.view))
	requireSameBits(t, want, readAll(t, c, x.view), "softmax")
	x.checkGuard(t, c)
}

// ropeScalar is the old ApplyRoPE of one token's row: the (cos, sin)
// cache by the float32 angle recurrence, then each pair by fma32.
func ropeScalar(row []float32, pos int32, p backend.RoPE) {
	hd := p.HeadDim
	thetaScale := float32(math.Pow(float64(p.FreqBase), float64(float32(-2)/float32(hd))))
	cache := make([]float32, hd)
	theta := float32(pos)
	for i0 := 0; i0 < hd; i0 += 2 {
		a := float64(p.FreqScale * theta)
		cache[i0] = float32(math.Cos(a))
		cache[i0+1] = float32(math.Sin(a))
		theta *= thetaScale
	}
	for h := 0; h < p.Heads; h++ {
		x := row[h*hd : (h+1)*hd]
		half := hd / 2
		for i := 0; i < half; i++ {
			a, b := 2*i, 2*i+1
			if p.Neox {
				a, b = i, i+half
			}
			cs, sn := cache[2*i], cache[2*i+1]
			x0, x1 := x[a], x[b]
			x[a] = vecmath.FMA32(x0, cs, -float32(x1*sn))
			x[b] = vecmath.FMA32(x0, sn, float32(x1*cs))
		}
	}
}

// TestRoPEMatchesScalarCode compares ApplyRoPE bit for bit with the
// scalar code in both modes, for head dimensions that take the vector
// kernels (64, 16) and one that does not (12).
func TestRoPEMatchesScalarCode(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	c := newCPU(t, 2)
	const n = 40
	pos := make([]int32, n)
	for i := range pos {
		pos[i] = int32(rng.IntN(4000))
	}
	b := setBatch(t, c, &backend.BatchInput{IDs: make([]int32, n), Pos: pos, Seq: make([]int32, n)})
	for _, hd := range []int{64, 16, 12} {
		for _, neox := range []bool{false, true} {
			p := backend.RoPE{HeadDim: hd, Heads: 24, FreqBase: 10000, FreqScale: 0.5, Neox: neox}
			xv := randVals(rng, n*p.Heads*hd, 3)
			want := append([]float32(nil), xv...)
			for tok := 0; tok < n; tok++ {
				ropeScalar(want[tok*p.Heads*hd:(tok+1)*p.Heads*hd], pos[tok], p)
			}
			x := newStrided(t, c, rng, n, p.Heads*hd, xv)
			require.NoError(t, c.ApplyRoPE(x.view, b, p))
			requireSameBits(t, want, readAll(t, c, x.view), fmt.Sprintf("rope hd=%d neox=%v", hd, neox))
			x.checkGuard(t, c)
		}
	}
}
