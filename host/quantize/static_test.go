package quantize

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/gguf"
	"qinfer/host/qformat"
	"qinfer/host/testenv"
	"qinfer/host/tokenizer"
)

// calibText returns the first half of the shared evaluation text: tests
// (and docs/quantization.md) calibrate on it and evaluate on the second.
func calibText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(testenv.Path(t, "llamacpp", "eval.txt"))
	require.NoError(t, err)
	return string(b[:len(b)/2])
}

func f32Tensor(t *testing.T, f *gguf.File, name string) []float32 {
	t.Helper()
	ti, ok := f.Tensor(name)
	require.True(t, ok, name)
	d, err := f.TensorData(ti)
	require.NoError(t, err)
	out := make([]float32, len(d)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
	}
	return out
}

// refFirstLayerInput computes, in float64 and independently of the
// model code, the largest magnitude of the first layer's attention input
// rmsnorm(embedding) * attn_norm over the calibration chunks (BOS first).
func refFirstLayerInput(t *testing.T, f *gguf.File, text string, ctx, maxTokens int) float64 {
	t.Helper()
	tok, err := tokenizer.FromGGUF(f)
	require.NoError(t, err)
	ids, err := tok.Encode(text, true, false)
	require.NoError(t, err)
	embd := f32Tensor(t, f, "token_embd.weight")
	norm := f32Tensor(t, f, "blk.0.attn_norm.weight")
	eps, _ := f.Float("llama.attention.layer_norm_rms_epsilon")
	dim := len(norm)
	var m float64
	n := min(len(ids), maxTokens) / ctx
	for c := 0; c < n; c++ {
		for p := 0; p < ctx; p++ {
			id := ids[c*ctx+p]
			if p == 0 {
				id = tok.BOS()
			}
			row := embd[int(id)*dim : (int(id)+1)*dim]
			var ss float64
			for _, v := range row {
				ss += float64(v) * float64(v)
			}
			inv := 1 / math.Sqrt(ss/float64(dim)+eps)
			for i, v := range row {
				m = max(m, math.Abs(float64(v)*inv*float64(norm[i])))
			}
		}
	}
	return m
}

// TestStaticW8Scales quantizes tiny to W8 with static activation scales
// and checks them against an independent computation of the first
// layer's input, and that projections sharing an input share a scale.
func TestStaticW8Scales(t *testing.T) {
	src := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-f32.gguf"))
	text := calibText(t)
	out := filepath.Join(t.TempDir(), "w8s.gguf")
	opt := Options{Type: mustType(t, "W8"), Method: Static, Calibration: text, Calib: CalibOptions{MaxTokens: 512}}
	var last [2]int
	rep, err := Quantize(src, out, opt, func(done, total int) { last = [2]int{done, total} })
	require.NoError(t, err)
	assert.Equal(t, last[1], last[0], "progress ends complete")
	require.NotNil(t, rep.Calibration)
	assert.Equal(t, 4, rep.Calibration.Chunks)
	assert.Equal(t, 128, rep.Calibration.Ctx)

	f := openGGUF(t, out)
	want := refFirstLayerInput(t, src, text, 128, 512) / 127
	w, err := qformat.WeightFromGGUF(f, "blk.0.attn_q.weight")
	require.NoError(t, err)
	assert.InEpsilon(t, want, w.ActScale, 1e-5, "min-max scale of blk.0 attention input")

	scale := func(name string) float32 {
		v, ok := f.Float("qinfer.act_scale." + name)
		require.True(t, ok, name)
		return float32(v)
	}
	for _, l := range []string{"blk.0.", "blk.1."} {
		assert.Equal(t, scale(l+"attn_q.weight"), scale(l+"attn_k.weight"))
		assert.Equal(t, scale(l+"attn_q.weight"), scale(l+"attn_v.weight"))
		assert.Equal(t, scale(l+"ffn_gate.weight"), scale(l+"ffn_up.weight"))
		assert.NotEqual(t, scale(l+"attn_q.weight"), scale(l+"attn_output.weight"))
		assert.Greater(t, scale(l+"ffn_down.weight"), float32(0))
	}
	assert.Greater(t, scale("output.weight"), float32(0))
	_, ok := f.Get("qinfer.act_scale.token_embd.weight")
	assert.False(t, ok, "the embeddings are Q8_0 and read by Embed, not a matmul")
	m, _ := f.String("qinfer.quant.method")
	assert.Equal(t, "static", m)
	o, _ := f.String("qinfer.quant.observer")
	assert.Equal(t, "minmax", o)

	// Percentile and MSE observers clip: their scales never exceed
	// min-max's.
	for _, obs := range []Observer{Percentile, MSE} {
		o2 := opt
		o2.Calib.Observer = obs
		rep2, err := Quantize(src, filepath.Join(t.TempDir(), "o.gguf"), o2, nil)
		require.NoError(t, err)
		for i, ct := range rep2.Calibration.Tensors {
			mm := rep.Calibration.Tensors[i]
			require.Equal(t, mm.Name, ct.Name)
			assert.LessOrEqual(t, ct.Scale, mm.Scale, "%v scale of %s", obs, ct.Name)
			assert.Greater(t, ct.Scale, float32(0))
		}
	}
}
