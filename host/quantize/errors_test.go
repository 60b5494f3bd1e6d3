package quantize

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/quant"
	"qinfer/host/testenv"
)

// requireNothingWritten checks that a failed Quantize left no file, not
// even a temporary one, in dir.
func requireNothingWritten(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Empty(t, names, "files left behind")
}

func TestBadInputsWriteNothing(t *testing.T) {
	tiny := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-f32.gguf"))
	q8 := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-Q8_0.gguf"))
	keep := func(s string) []Keep {
		k, err := ParseKeep(s)
		require.NoError(t, err)
		return []Keep{k}
	}
	w8 := mustType(t, "W8")
	q4 := mustType(t, "Q4_0")
	cases := []struct {
		name string
		in   *gguf.File
		opt  Options
		want string
	}{
		{"quantized input", q8, Options{Type: q4}, "input tensor output.weight is Q8_0: the input must be an unquantized (F32, F16 or BF16) model"},
		{"no type", tiny, Options{}, "no type given"},
		{"unknown type", tiny, Options{Type: FileType{Name: "Q3_K_XL"}}, `unknown quantization type "Q3_K_XL"`},
		{"keep matches nothing", tiny, Options{Type: q4, Keep: keep("blk.9.*=Q8_0")}, "keep rule blk.9.*=Q8_0 matches no quantizable tensor"},
		{"keep only a norm", tiny, Options{Type: q4, Keep: keep("output_norm.weight=Q8_0")}, "matches no quantizable tensor"},
		{"keep type does not fit", tiny, Options{Type: q4, Keep: keep("blk.0.attn_q.weight=Q4_K")}, "tensor blk.0.attn_q.weight has rows of 64 elements, not a multiple of the Q4_K block size 256"},
		{"static needs calibration", tiny, Options{Type: w8, Method: Static}, "--method static needs a calibration text"},
		{"static on block type", tiny, Options{Type: q4, Method: Static, Calibration: "x"}, "static scales would not be used"},
		{"calibration too short", tiny, Options{Type: w8, Method: Static, Calibration: "Hello world, this is short."}, "calibration text too short"},
		{"mixed without budget", tiny, Options{Type: q4, Method: Mixed, Calibration: "x"}, "--method mixed needs a budget"},
		{"budget on dynamic", tiny, Options{Type: q4, Budget: Budget{Size: 1 << 20}}, "applies to --method mixed only"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Quantize(c.in, filepath.Join(dir, "out.gguf"), c.opt, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			requireNothingWritten(t, dir)
		})
	}
}

func TestRowFormatInputRefused(t *testing.T) {
	s := synthSpec{layers: 1, dim: 64, kvDim: 64, ffn: 64, vocab: 64}
	dir := t.TempDir()
	out := filepath.Join(dir, "w8.gguf")
	_, err := Quantize(synthFile(t, s), out, Options{Type: mustType(t, "W8")}, nil)
	require.NoError(t, err)
	in := openGGUF(t, out)
	dir2 := t.TempDir()
	_, err = Quantize(in, filepath.Join(dir2, "again.gguf"), Options{Type: mustType(t, "Q8_0")}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already quantized (a qinfer row format)")
	requireNothingWritten(t, dir2)
}

// TestFailureMidwayWritesNothing: a tensor that cannot be quantized (a
// NaN weight, which the row formats reject) fails after others were
// quantized, and still leaves nothing behind.
func TestFailureMidwayWritesNothing(t *testing.T) {
	s := synthSpec{layers: 2, dim: 64, kvDim: 64, ffn: 64, vocab: 64}
	f := synthFile(t, s)
	b := gguf.FromFile(f)
	ti, _ := f.Tensor("blk.1.ffn_down.weight")
	x := make([]float32, ti.Elements())
	x[5] = float32(math.NaN())
	raw := make([]byte, 4*len(x))
	require.NoError(t, quant.Quantize(backend.F32, x, raw))
	require.NoError(t, b.ReplaceTensor(ti.Name, backend.F32, ti.Dims, raw))
	var buf bytes.Buffer
	_, err := b.WriteTo(&buf)
	require.NoError(t, err)
	bad, err := gguf.Parse(buf.Bytes())
	require.NoError(t, err)

	dir := t.TempDir()
	_, err = Quantize(bad, filepath.Join(dir, "out.gguf"), Options{Type: mustType(t, "W8")}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "blk.1.ffn_down.weight")
	assert.Contains(t, err.Error(), "NaN")
	requireNothingWritten(t, dir)
}

func TestParseOptionErrors(t *testing.T) {
	for in, want := range map[string]string{
		"blk.[.weight=Q8_0":  "bad pattern",
		"output.weight":      "want PATTERN=TYPE",
		"=Q8_0":              "want PATTERN=TYPE",
		"output.weight=Q9_9": `unknown tensor type "Q9_9"`,
		"output.weight=Q8_1": "cannot be written",
	} {
		_, err := ParseKeep(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), want, in)
	}
	for in, want := range map[string]string{
		"size":       "want size=N[MiB] or kld=X",
		"size=-3":    "positive number",
		"kld=0":      "positive number",
		"speed=fast": "unknown kind",
	} {
		_, err := ParseBudget(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), want, in)
	}
	b, err := ParseBudget("size=3.5")
	require.NoError(t, err)
	assert.Equal(t, int64(3.5*(1<<20)), b.Size)
	b, err = ParseBudget("size=2MB")
	require.NoError(t, err)
	assert.Equal(t, int64(2e6), b.Size)
	b, err = ParseBudget("kld=0.01")
	require.NoError(t, err)
	assert.Equal(t, 0.01, b.KLD)
	_, err = ParseMethod("adaptive")
	assert.ErrorContains(t, err, `unknown method "adaptive"`)
	_, err = ParseObserver("kl")
	assert.ErrorContains(t, err, `unknown observer "kl"`)
}
