package quantize

import (
	"encoding/json"
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/fallback"
	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/qformat"
	"qinfer/host/testenv"
)

func testGreedy(topKLD float64) *greedy {
	mk := func(name string, klds ...float64) *candidate {
		ti := &gguf.TensorInfo{Name: name}
		return &candidate{p: &tensorPlan{info: ti}, rungs: []rung{
			{backend.Q4_0, 100, klds[0]}, {backend.Q8_0, 200, klds[1]}, {backend.F16, 400, klds[2]},
		}}
	}
	return &greedy{fixed: 50, cands: []*candidate{mk("a", 0.5, 0.1, topKLD), mk("b", 0.05, 0.01, topKLD)}}
}

func levels(g *greedy) []backend.DType {
	var out []backend.DType
	for _, c := range g.cands {
		out = append(out, c.rungs[c.level].t)
	}
	return out
}

// TestGreedyPlanner works the planner through by hand: upgrades are taken
// by KLD gained per byte, within the budget.
func TestGreedyPlanner(t *testing.T) {
	// Size 350: a to Q8_0 gains 0.4 for 100 bytes, the best ratio; then
	// nothing fits.
	g := testGreedy(0)
	require.NoError(t, g.plan(Budget{Size: 350}))
	assert.Equal(t, []backend.DType{backend.Q8_0, backend.Q4_0}, levels(g))
	assert.Equal(t, int64(350), g.size())
	assert.InDelta(t, 0.15, g.estimate(), 1e-12)

	// KLD 0.2 is met by the same first upgrade.
	g = testGreedy(0)
	require.NoError(t, g.plan(Budget{KLD: 0.2}))
	assert.Equal(t, []backend.DType{backend.Q8_0, backend.Q4_0}, levels(g))

	// KLD 0.005: a to F16 (0.1 for 200 bytes), then b to Q8_0 (0.04 for
	// 100), then b to F16 (0.01 for 200).
	g = testGreedy(0)
	require.NoError(t, g.plan(Budget{KLD: 0.005}))
	assert.Equal(t, []backend.DType{backend.F16, backend.F16}, levels(g))

	g = testGreedy(0)
	err := g.plan(Budget{Size: 249})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot meet the budget size=")
	assert.Contains(t, err.Error(), "takes 0.000 MiB")

	g = testGreedy(0.001)
	err = g.plan(Budget{KLD: 0.0001})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the lowest KLD the ladder allows, estimated from each tensor's own, is 0.002")
}

// mixedOpts calibrates on one 64-token chunk so that the ~30 sensitivity
// runs of the tiny model stay quick.
func mixedOpts(t *testing.T, b Budget) Options {
	return Options{
		Type: mustType(t, "Q4_0"), Method: Mixed, Budget: b,
		Ladder:      []backend.DType{backend.Q4_0, backend.Q8_0},
		Calibration: calibText(t),
		Calib:       CalibOptions{Ctx: 64, MinTokens: 64, MaxTokens: 64},
	}
}

// refKLD computes, in float64 with a plain softmax, the mean KL divergence
// of cand's next-token distributions from base's over the positions of
// one chunk.
func refKLD(t *testing.T, base, cand *gguf.File, ids []int32) float64 {
	t.Helper()
	be, err := fallback.New(0)
	require.NoError(t, err)
	defer be.Close()
	logits := func(f *gguf.File) []float32 {
		r, m, err := loadRunner(f, be, len(ids))
		require.NoError(t, err)
		defer closeRunner(r, m)
		l, err := r.run(ids, allPositions(len(ids)))
		require.NoError(t, err)
		return append([]float32(nil), l...)
	}
	lb, lc := logits(base), logits(cand)
	softmax := func(x []float32) []float64 {
		m := math.Inf(-1)
		for _, v := range x {
			m = math.Max(m, float64(v))
		}
		p := make([]float64, len(x))
		var s float64
		for i, v := range x {
			p[i] = math.Exp(float64(v) - m)
			s += p[i]
		}
		for i := range p {
			p[i] /= s
		}
		return p
	}
	vocab := len(lb) / len(ids)
	var sum float64
	for r := range ids {
		p := softmax(lb[r*vocab : (r+1)*vocab])
		q := softmax(lc[r*vocab : (r+1)*vocab])
		for i := range p {
			if p[i] > 0 {
				sum += p[i] * math.Log(p[i]/q[i])
			}
		}
	}
	return sum / float64(len(ids))
}

// TestMixedMeetsSizeBudget plans tiny between all-Q4_0 and all-Q8_0 sizes
// and checks the budget, the stored plan, and one measured sensitivity
// against an independent computation.
func TestMixedMeetsSizeBudget(t *testing.T) {
	src := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-Q8_0.gguf"))
	q4 := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-Q4_0.gguf"))
	f32 := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-f32.gguf"))
	// The llama.cpp files give the two ends of the ladder.
	dataBytes := func(f *gguf.File) int64 {
		var n int64
		for i := range f.Tensors {
			b, _ := f.Tensors[i].Bytes()
			n += int64(b)
		}
		return n
	}
	lo, hi := dataBytes(q4), dataBytes(src)
	budget := lo + (hi-lo)/2

	dir := t.TempDir()
	out := filepath.Join(dir, "mixed.gguf")
	rep, err := Quantize(f32, out, mixedOpts(t, Budget{Size: budget}), nil)
	require.NoError(t, err)
	pl := rep.Plan
	require.NotNil(t, pl)
	assert.LessOrEqual(t, rep.OutputBytes, budget)
	assert.Equal(t, rep.OutputBytes, pl.Bytes)
	assert.Greater(t, rep.OutputBytes, lo, "the budget left room for upgrades")
	assert.Greater(t, pl.MeasuredKLD, 0.0)

	f := openGGUF(t, out)
	js, ok := f.String("qinfer.quant.plan")
	require.True(t, ok)
	var stored Plan
	require.NoError(t, json.Unmarshal([]byte(js), &stored))
	assert.Equal(t, *pl, stored)
	upgraded := 0
	for _, pt := range pl.Tensors {
		got, err := qformat.TensorType(f, pt.Name)
		require.NoError(t, err)
		assert.Equal(t, pt.Type, got.String(), pt.Name)
		if pt.Type == "Q8_0" && pt.Name != "output.weight" {
			upgraded++
		}
		// Q8_0 costs more bytes than Q4_0 and, for these random
		// weights, measurably less divergence.
		if len(pt.Options) == 2 {
			assert.Less(t, pt.Options[1].KLD, pt.Options[0].KLD, pt.Name)
		}
	}
	assert.Greater(t, upgraded, 0)

	// One tensor quantized alone, independently: its KLD must be the
	// plan's option.
	var opt PlanOption
	for _, pt := range pl.Tensors {
		if pt.Name == "blk.1.attn_output.weight" {
			opt = pt.Options[0]
		}
	}
	require.Equal(t, "Q4_0", opt.Type)
	alone := filepath.Join(dir, "alone.gguf")
	k, err := ParseKeep("blk.1.attn_output.weight=Q4_0")
	require.NoError(t, err)
	_, err = Quantize(f32, alone, Options{Type: mustType(t, "F32"), Keep: []Keep{k}}, nil)
	require.NoError(t, err)
	chunks, _, err := calibChunks(f32, mixedOpts(t, Budget{}))
	require.NoError(t, err)
	require.Len(t, chunks, 1)
	want := refKLD(t, f32, openGGUF(t, alone), chunks[0])
	assert.InEpsilon(t, want, opt.KLD, 1e-6)
}

func TestMixedKLDBudget(t *testing.T) {
	f32 := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-f32.gguf"))
	dir := t.TempDir()
	// Impossible size: fails at once, before measuring, and writes nothing.
	_, err := Quantize(f32, filepath.Join(dir, "x.gguf"), mixedOpts(t, Budget{Size: 1 << 20}), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot meet the budget size=1.000MiB: the smallest plan")
	requireNothingWritten(t, dir)

	// A KLD budget below what even all-Q8_0 reaches is refused with the
	// lowest achievable value.
	_, err = Quantize(f32, filepath.Join(dir, "x.gguf"), mixedOpts(t, Budget{KLD: 1e-9}), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot meet the budget kld=1e-09")
	requireNothingWritten(t, dir)
}
