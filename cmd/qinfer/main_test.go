package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/testenv"
)

// qinfer runs the CLI in-process and returns exit status, stdout, stderr.
func qinfer(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageAndUnknownCommand(t *testing.T) {
	code, out, _ := qinfer(t, "", "help")
	assert.Equal(t, 0, code)
	for _, c := range []string{"run", "devices", "tokenize", "detokenize", "info", "eval", "synth", "bench"} {
		assert.Contains(t, out, "  "+c+" ", "usage lists %s", c)
	}
	code, _, errs := qinfer(t, "", "frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, `unknown command "frobnicate"`)
}

func TestProfileFlagsExcludeEachOther(t *testing.T) {
	dir := t.TempDir()
	code, _, errs := qinfer(t, "", "devices", "--cpuprofile", filepath.Join(dir, "c"), "--trace", filepath.Join(dir, "t"))
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "exclude each other")
}

func TestProfileWritten(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cpu.pprof")
	code, _, errs := qinfer(t, "", "devices", "--quiet", "--cpuprofile", p)
	require.Equal(t, 0, code, errs)
	st, err := os.Stat(p)
	require.NoError(t, err)
	assert.Greater(t, st.Size(), int64(0))
}

func TestDevicesForcedCPUChoiceIsExplained(t *testing.T) {
	code, out, errs := qinfer(t, "", "devices", "--json", "--cuda-lib", "libcuda-does-not-exist.so.1")
	require.Equal(t, 0, code, errs)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	assert.Contains(t, out, "libcuda-does-not-exist.so.1")
}

func TestSynthInfoRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.gguf")
	code, _, errs := qinfer(t, "", "synth", "--quiet", "--dim", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--ffn", "96", "--vocab", "300", "--type", "Q8_0", p)
	require.Equal(t, 0, code, errs)
	code, out, errs := qinfer(t, "", "info", p, "--json")
	require.Equal(t, 0, code, errs)
	var info modelInfo
	require.NoError(t, json.Unmarshal([]byte(out), &info))
	require.NotNil(t, info.Config, info.ConfigError)
	assert.Equal(t, 64, info.Config.Dim)
	assert.Equal(t, 2, info.Config.Layers)
	assert.Equal(t, 4, info.Config.Heads)
	assert.Equal(t, 2, info.Config.KVHeads)
	assert.Equal(t, 96, info.Config.FFN)
	assert.Equal(t, 300, info.Config.Vocab)
	// Closed form: embeddings and output 300x64 each, per layer q,o 64x64,
	// k,v 32x64, three 96x64 FFN matrices, two norms; one final norm.
	wantParams := uint64(2*300*64 + 2*(2*64*64+2*32*64+3*96*64+2*64) + 64)
	assert.Equal(t, wantParams, info.Params)
	// Q8_0 is 8.5 bits per weight; the F32 norms raise the average a bit.
	assert.InDelta(t, 8.5, info.BitsPerWeight, 0.2)
}

func TestSynthRejectsBadShapes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.gguf")
	code, _, errs := qinfer(t, "", "synth", "--dim", "60", "--heads", "7", p)
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "not a multiple of heads")
	code, _, errs = qinfer(t, "", "synth", "--type", "Q9_9", p)
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "Q9_9")
	_, err := os.Stat(p)
	assert.True(t, os.IsNotExist(err), "nothing written on error")
}

type refLine struct {
	Prompt    string  `json:"prompt"`
	PromptIDs []int32 `json:"prompt_ids"`
	GenIDs    []int32 `json:"gen_ids"`
}

func readRefs(t *testing.T, name string) []refLine {
	f, err := os.Open(testenv.Path(t, "llamacpp", "refs", name+".greedy.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var refs []refLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r refLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
		refs = append(refs, r)
	}
	return refs
}

// The CLI's jsonl output reproduces llama.cpp's greedy generations: the
// whole data path from flags to tokens, against an independent engine.
func TestRunJSONLMatchesLlamaCpp(t *testing.T) {
	model := testenv.Path(t, "llamacpp", "tiny-Q8_0.gguf")
	prompts := testenv.Path(t, "llamacpp", "prompts.txt")
	refs := readRefs(t, "tiny-Q8_0")
	dir := t.TempDir()
	logits := filepath.Join(dir, "logits.f32")
	code, out, errs := qinfer(t, "", "run", "-m", model, "-f", prompts, "-n", "32", "--temp", "0",
		"--device", "cpu", "--threads", "2", "--ctx", "256", "--format", "jsonl", "--quiet", "--dump-logits", logits)
	require.Equal(t, 0, code, errs)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, len(refs))
	for i, line := range lines {
		var got jsonResult
		require.NoError(t, json.Unmarshal([]byte(line), &got))
		assert.Equal(t, refs[i].Prompt, got.Prompt)
		assert.Equal(t, refs[i].PromptIDs, got.PromptIDs, "prompt %d ids", i)
		assert.Equal(t, refs[i].GenIDs, got.GenIDs, "prompt %d greedy tokens", i)
	}
	raw, err := os.ReadFile(logits)
	require.NoError(t, err)
	require.Len(t, raw, len(refs)*32000*4)
	for i := range refs {
		ref, err := os.ReadFile(testenv.Path(t, "llamacpp", "refs", "tiny-Q8_0.p"+strconv.Itoa(i)+".logits.f32"))
		require.NoError(t, err)
		var maxErr float64
		for j := 0; j < 32000; j++ {
			a := math.Float32frombits(binary.LittleEndian.Uint32(raw[(i*32000+j)*4:]))
			b := math.Float32frombits(binary.LittleEndian.Uint32(ref[j*4:]))
			maxErr = math.Max(maxErr, math.Abs(float64(a-b)))
		}
		// Same activation quantization as llama.cpp; what differs is float
		// summation order, so logits (of order 1..10) agree to ~1e-3.
		assert.Less(t, maxErr, 0.02, "prompt %d logits max abs error", i)
	}
}

func TestTokenizeDetokenize(t *testing.T) {
	model := testenv.Path(t, "llamacpp", "tiny-Q8_0.gguf")
	refs := readRefs(t, "tiny-Q8_0")
	code, out, errs := qinfer(t, refs[0].Prompt, "tokenize", "-m", model, "--json")
	require.Equal(t, 0, code, errs)
	var got struct {
		IDs []int32 `json:"ids"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	assert.Equal(t, refs[0].PromptIDs, got.IDs)
	// Without BOS the first piece's added space is dropped again, as
	// llama.cpp's detokenizer does, so the prompt comes back as it was.
	ids := make([]string, 0, len(got.IDs))
	for _, id := range got.IDs[1:] {
		ids = append(ids, strconv.Itoa(int(id)))
	}
	code, out, errs = qinfer(t, "", append([]string{"detokenize", "-m", model}, ids...)...)
	require.Equal(t, 0, code, errs)
	assert.Equal(t, refs[0].Prompt, strings.TrimSuffix(out, "\n"))
	code, _, errs = qinfer(t, "", "detokenize", "-m", model, "99999999")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "outside the vocabulary")
}

func TestRunErrors(t *testing.T) {
	model := testenv.Path(t, "llamacpp", "tiny-Q8_0.gguf")
	code, _, errs := qinfer(t, "", "run", "-m", model, "--device", "cpu")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "no prompt")
	code, _, errs = qinfer(t, "", "run", "-m", filepath.Join(t.TempDir(), "missing.gguf"), "-p", "x")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "missing.gguf")
	long := strings.Repeat("hello world ", 200)
	code, _, errs = qinfer(t, "", "run", "-m", model, "-p", long, "--ctx", "64", "--device", "cpu", "--quiet")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "context")
}
