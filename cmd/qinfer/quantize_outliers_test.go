package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/testenv"
)

// calibFile writes the first half of the shared evaluation text (the
// calibration half of docs/quantization.md) to a temporary file.
func calibFile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(testenv.Path(t, "llamacpp", "eval.txt"))
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "calib.txt")
	require.NoError(t, os.WriteFile(p, b[:len(b)/2], 0o644))
	return p
}

// TestQuantizeOutlierFlags: --outliers split prints and reports the split
// columns; bad outlier flags are usage or option errors that write
// nothing.
func TestQuantizeOutlierFlags(t *testing.T) {
	f32 := testenv.Path(t, "llamacpp", "tiny-f32.gguf")
	calib := calibFile(t)
	out := filepath.Join(t.TempDir(), "w8.gguf")
	code, stdout, stderr := qinfer(t, "", "quantize", f32, out, "--type", "W8", "--calib", calib, "--calib-tokens", "128", "--outlier-cap", "0.0625")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "outliers: split (LLM.int8()), threshold 6, at most 0.0625")
	assert.Contains(t, stdout, "blk.0.ffn_down.weight")
	assert.Contains(t, stdout, "12: [", "192 inputs, a sixteenth split off")
	assert.Contains(t, stdout, "calibration: 128 of")

	code, stdout, stderr = qinfer(t, "", "quantize", f32, out, "--type", "W8", "--calib", calib, "--calib-tokens", "128", "--json")
	require.Equal(t, 0, code, stderr)
	var rep struct {
		Tensors []struct {
			Name      string  `json:"name"`
			SplitCols []int32 `json:"split_columns"`
		} `json:"tensors"`
		Outliers struct {
			Mode string `json:"mode"`
		} `json:"outliers"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
	assert.Equal(t, "split", rep.Outliers.Mode)
	split := 0
	for _, tr := range rep.Tensors {
		if len(tr.SplitCols) > 0 {
			split++
		}
	}
	assert.Greater(t, split, 0)

	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--type", "W8", "--outliers", "columns"}, 2, `unknown outlier mode "columns"`},
		{[]string{"--type", "W8", "--outlier-cap", "2"}, 2, "--outlier-cap 2: want a fraction in (0, 1]"},
		{[]string{"--type", "W8", "--outliers", "split"}, 1, "--outliers split finds the outlier channels by running a calibration text"},
		{[]string{"--type", "W8", "--outliers", "split", "--calib", calib, "--outlier-threshold", "0"}, 1, "needs an outlier threshold > 0"},
		{[]string{"--type", "Q4_0", "--outliers", "tensor"}, 1, "--outliers tensor finds the outlier channels by running a calibration text"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		args := append([]string{"quantize", f32, filepath.Join(dir, "out.gguf")}, c.args...)
		code, _, stderr := qinfer(t, "", args...)
		assert.Equal(t, c.code, code, "%v: %s", c.args, stderr)
		assert.Contains(t, stderr, c.want, c.args)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Empty(t, entries, "%v left files behind", c.args)
	}
}
