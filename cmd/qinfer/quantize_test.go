package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/testenv"
)

// TestQuantizeCLIMatchesLlamaQuantize: `qinfer quantize` writes the file
// llama-quantize wrote, byte for byte, and reports it as JSON.
func TestQuantizeCLIMatchesLlamaQuantize(t *testing.T) {
	in := testenv.Path(t, "llamacpp", "tiny-f32.gguf")
	want, err := os.ReadFile(testenv.Path(t, "llamacpp", "tiny-Q8_0.gguf"))
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "q8.gguf")
	code, stdout, stderr := qinfer(t, "", "quantize", in, out, "--type", "q8_0", "--json")
	require.Equal(t, 0, code, stderr)
	have, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, have), "differs from llama-quantize's tiny-Q8_0.gguf")

	var rep struct {
		Type    string `json:"type"`
		Method  string `json:"method"`
		Tensors []struct {
			Name, From, To string
		} `json:"tensors"`
		BitsPerWeight float64 `json:"bits_per_weight"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
	assert.Equal(t, "Q8_0", rep.Type)
	assert.Equal(t, "dynamic", rep.Method)
	assert.Len(t, rep.Tensors, 21)
	assert.InDelta(t, 8.5, rep.BitsPerWeight, 0.1)
	assert.Empty(t, stderr, "no progress bar when stderr is not a terminal")
}

func TestQuantizeCLIErrors(t *testing.T) {
	f32 := testenv.Path(t, "llamacpp", "tiny-f32.gguf")
	q8 := testenv.Path(t, "llamacpp", "tiny-Q8_0.gguf")
	short := filepath.Join(t.TempDir(), "short.txt")
	require.NoError(t, os.WriteFile(short, []byte("Too short to calibrate on."), 0o644))
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{f32, "OUT", "--type", "Q7_1"}, 2, `unknown quantization type "Q7_1"`},
		{[]string{f32, "OUT"}, 2, "no --type"},
		{[]string{f32, "OUT", "--type", "Q4_0", "--keep", "blk.[0.*=Q8_0"}, 2, "bad pattern"},
		{[]string{f32, "OUT", "--type", "Q4_0", "--keep", "nothing.here=Q8_0"}, 1, "matches no quantizable tensor"},
		{[]string{q8, "OUT", "--type", "Q4_0"}, 1, "the input must be an unquantized (F32, F16 or BF16) model"},
		{[]string{f32, "OUT", "--type", "W8", "--method", "static", "--calib", short}, 1, "calibration text too short"},
		{[]string{f32, "OUT", "--type", "Q4_0", "--method", "mixed", "--calib", short, "--budget", "size=fast"}, 2, "--budget"},
		{[]string{f32}, 2, "want IN.gguf OUT.gguf"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		args := append([]string{"quantize"}, c.args...)
		for i, a := range args {
			if a == "OUT" {
				args[i] = filepath.Join(dir, "out.gguf")
			}
		}
		code, _, stderr := qinfer(t, "", args...)
		assert.Equal(t, c.code, code, "%v: %s", c.args, stderr)
		assert.Contains(t, stderr, c.want, c.args)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Empty(t, entries, "%v left files behind", c.args)
	}
}

// TestEvalBaseAgainstItself: a model compared with itself has KL
// divergence 0, top-1 agreement 1 and the same perplexity as the plain
// eval command.
func TestEvalBaseAgainstItself(t *testing.T) {
	m := testenv.Path(t, "llamacpp", "tiny-Q8_0.gguf")
	text := filepath.Join(t.TempDir(), "text.txt")
	full, err := os.ReadFile(testenv.Path(t, "llamacpp", "eval.txt"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(text, full[:4000], 0o644))

	code, stdout, stderr := qinfer(t, "", "eval", "-m", m, "--base", m, "-f", text, "-c", "64", "--device", "cpu", "--json", "--quiet")
	require.Equal(t, 0, code, stderr)
	var r struct {
		Model, Base struct {
			Bytes         uint64  `json:"bytes"`
			BitsPerWeight float64 `json:"bits_per_weight"`
		}
		Result struct {
			Chunks int `json:"chunks"`
			Base   struct {
				PPL float64 `json:"ppl"`
			} `json:"base"`
			Model struct {
				PPL float64 `json:"ppl"`
			} `json:"model"`
			KLD struct {
				Mean, Max float64
			} `json:"kld"`
			Top1 float64 `json:"top1_agreement"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &r))
	assert.Greater(t, r.Result.Chunks, 1)
	assert.InDelta(t, 0, r.Result.KLD.Mean, 1e-12)
	assert.InDelta(t, 0, r.Result.KLD.Max, 1e-12)
	assert.Equal(t, 1.0, r.Result.Top1)
	assert.Equal(t, r.Result.Base.PPL, r.Result.Model.PPL)
	assert.Equal(t, r.Base, r.Model)
	assert.InDelta(t, 8.5, r.Model.BitsPerWeight, 0.1)

	code, stdout, stderr = qinfer(t, "", "eval", "-m", m, "-f", text, "-c", "64", "--device", "cpu", "--json", "--quiet")
	require.Equal(t, 0, code, stderr)
	var plain struct {
		Perplexity float64 `json:"perplexity"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &plain))
	// Same model, same text; the two paths accumulate the per-token
	// log-likelihoods in different orders (float64), hence not bit-equal.
	assert.InEpsilon(t, plain.Perplexity, r.Result.Model.PPL, 1e-7)
}
