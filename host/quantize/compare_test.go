package quantize

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/fallback"
	"qinfer/host/backend"
	"qinfer/host/engine"
	"qinfer/host/gguf"
	"qinfer/host/model"
	"qinfer/host/testenv"
	"qinfer/host/tokenizer"
)

func loadForCompare(t *testing.T, f *gguf.File, be backend.Backend, n int) model.Model {
	t.Helper()
	m, err := model.Load(f, be, model.Options{MaxBatch: n, Ctx: n, Seqs: 1, KVType: backend.F16})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func evalIDs(t *testing.T, f *gguf.File) ([]int32, *tokenizer.Tokenizer) {
	t.Helper()
	text, err := os.ReadFile(testenv.Path(t, "llamacpp", "eval.txt"))
	require.NoError(t, err)
	tok, err := tokenizer.FromGGUF(f)
	require.NoError(t, err)
	ids, err := tok.Encode(string(text), true, false)
	require.NoError(t, err)
	return ids, tok
}

// TestCompareWithItself: a model against itself diverges nowhere.
func TestCompareWithItself(t *testing.T) {
	f := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-Q8_0.gguf"))
	be, err := fallback.New(0)
	require.NoError(t, err)
	defer be.Close()
	ids, tok := evalIDs(t, f)
	a := loadForCompare(t, f, be, 64)
	b := loadForCompare(t, f, be, 64)
	c, err := Compare(a, b, be, ids[:64*4], 64, tok.BOS(), nil)
	require.NoError(t, err)
	assert.Equal(t, 4, c.Chunks)
	assert.Equal(t, 4*31, c.Scored)
	assert.InDelta(t, 0, c.KLD.Mean, 1e-12)
	assert.InDelta(t, 0, c.KLD.Max, 1e-12)
	assert.Equal(t, 1.0, c.Top1)
	assert.Equal(t, c.Base, c.Model)
	assert.Greater(t, c.Base.Value, 1.0)

	// host/engine implements llama-perplexity's protocol on its own: the
	// same chunks and positions give the same perplexity.
	e := engine.New(a, tok, be)
	defer e.Close()
	p, err := e.Perplexity(ids[:64*4], 64)
	require.NoError(t, err)
	assert.Equal(t, p.Tokens, c.Scored)
	assert.InEpsilon(t, p.Value, c.Model.Value, 1e-7)
	assert.InEpsilon(t, p.StdErr, c.Model.StdErr, 1e-5)
}

// TestCompareMatchesLlamaPerplexity: both perplexities of tiny-Q4_0
// against tiny-f32 on eval.txt, chunks of 128, agree with
// llama-perplexity's (refs/perplexity-c128.txt), and the quantized model
// diverges a little from its base.
func TestCompareMatchesLlamaPerplexity(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluates the whole text twice")
	}
	base := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-f32.gguf"))
	q := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-Q4_0.gguf"))
	be, err := fallback.New(0)
	require.NoError(t, err)
	defer be.Close()
	ids, tok := evalIDs(t, base)
	calls := 0
	c, err := Compare(loadForCompare(t, base, be, 128), loadForCompare(t, q, be, 128), be, ids, 128, tok.BOS(), func(done, total int) {
		calls++
		assert.Equal(t, calls, done)
	})
	require.NoError(t, err)
	assert.Equal(t, len(ids)/128, c.Chunks)
	assert.Equal(t, calls, c.Chunks)
	// llama.cpp: tiny-f32 99471.2690, tiny-Q4_0 98907.7476.
	assert.InEpsilon(t, 99471.2690, c.Base.Value, 2e-3)
	assert.InEpsilon(t, 98907.7476, c.Model.Value, 2e-3)
	assert.InEpsilon(t, 2412.38929, c.Base.StdErr, 2e-2)
	assert.Greater(t, c.KLD.Mean, 1e-4)
	assert.Less(t, c.KLD.Mean, 0.5)
	assert.LessOrEqual(t, c.KLD.Median, c.KLD.P99)
	assert.LessOrEqual(t, c.KLD.P99, c.KLD.Max)
	// The random weights make nearly flat distributions, whose first
	// choice is fragile.
	assert.Greater(t, c.Top1, 0.2)
	assert.Less(t, c.Top1, 1.0)
}

func TestQuantile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	assert.Equal(t, 6.0, quantile(s, 0.5))
	assert.InDelta(t, 10.9, quantile(s, 0.99), 1e-12)
	assert.Equal(t, 11.0, quantile(s, 1))
	st := summarize([]float64{3, 1, 2})
	assert.Equal(t, KLDStats{Mean: 2, Median: 2, P99: 2.98, Max: 3}, KLDStats{Mean: st.Mean, Median: st.Median, P99: float64(int(st.P99*100+0.5)) / 100, Max: st.Max})
}
