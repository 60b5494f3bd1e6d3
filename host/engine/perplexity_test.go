package engine

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/model"
	"qinfer/host/testenv"
)

func TestSumExp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	worst := 0.0
	for trial := 0; trial < 200; trial++ {
		l := randomLogits(rng, 1+rng.IntN(5000), 0.5+30*rng.Float64())
		maxL := l[0]
		for _, v := range l {
			maxL = max(maxL, v)
		}
		want := 0.0
		for _, v := range l {
			want += math.Exp(float64(v - maxL))
		}
		worst = math.Max(worst, math.Abs(sumExp(l, maxL)-want)/want)
	}
	assert.Less(t, worst, 1e-9)
	// Single terms across the whole range, down to where they vanish.
	for x := float32(0); x > -708; x -= 0.37 {
		want := math.Exp(float64(x))
		require.InDelta(t, want, sumExp([]float32{x}, 0), 1e-9*want, "exp(%v)", x)
	}
	assert.Zero(t, sumExp([]float32{-1000}, 0))
	assert.Equal(t, 1.0, sumExp([]float32{3}, 3))
	t.Logf("max relative error of the sums %.2e", worst)
}

func TestLogSoftmaxClosedForm(t *testing.T) {
	// log p(i) = l_i - log(sum e^l).
	l := []float32{1, 2, 3, -4}
	z := math.Log(math.E + math.Exp(2) + math.Exp(3) + math.Exp(-4))
	for i := range l {
		assert.InDelta(t, float64(l[i])-z, logSoftmax(l, int32(i)), 1e-9)
	}
}

func TestNLLAccumulator(t *testing.T) {
	// llama.cpp: PPL = exp(mean), +/- = sqrt(var/(n-1)) * PPL with the
	// population variance.
	var a NLLAcc
	vals := []float64{2, 4, 4, 4, 5, 5, 7, 9} // mean 5, population variance 4
	for _, v := range vals {
		a.Add(v)
	}
	p := a.Result(3)
	assert.InDelta(t, 5, p.NLL, 1e-12)
	assert.InDelta(t, math.Exp(5), p.Value, 1e-9)
	assert.InDelta(t, math.Sqrt(4.0/7)*math.Exp(5), p.StdErr, 1e-9)
	assert.Equal(t, 8, p.Tokens)
	assert.Equal(t, 3, p.Chunks)
}

// TestPerplexityBatching: chunks evaluated side by side in one batch, or
// one at a time split over several batches, give the same perplexity; and
// the arguments are checked.
func TestPerplexityBatching(t *testing.T) {
	text, err := os.ReadFile(testenv.Path(t, "llamacpp", "eval.txt"))
	require.NoError(t, err)
	wide, tok := testEngine(t, genModel, model.Options{Ctx: 128, Seqs: 4, MaxBatch: 512, KVType: backend.F16})
	narrow, _ := testEngine(t, genModel, model.Options{Ctx: 128, Seqs: 1, MaxBatch: 48, KVType: backend.F16})
	ids, err := tok.Encode(string(text), true, false)
	require.NoError(t, err)
	ids = ids[:5*128+17]
	a, err := wide.Perplexity(ids, 128)
	require.NoError(t, err)
	b, err := narrow.Perplexity(ids, 128)
	require.NoError(t, err)
	assert.Equal(t, 5, a.Chunks)
	assert.Equal(t, 5*63, a.Tokens)
	assert.InDelta(t, a.NLL, b.NLL, 1e-6*a.NLL)
	assert.Equal(t, a.Chunks, b.Chunks)

	_, err = wide.Perplexity(ids[:255], 128)
	assert.ErrorContains(t, err, "at least 256")
	_, err = wide.Perplexity(ids, 256)
	assert.ErrorContains(t, err, "exceeds the model's context of 128")
	_, err = wide.Perplexity(ids, 2)
	assert.ErrorContains(t, err, "too short")
}
