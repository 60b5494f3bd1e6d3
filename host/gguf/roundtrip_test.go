package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/testenv"
)

// TestRoundTripTestdata rewrites every shared GGUF file (llama.cpp's
// model files, which pad after the header and every tensor, and gguf-py's
// vocab files, which end right after the metadata) and expects the
// original bytes back.
func TestRoundTripTestdata(t *testing.T) {
	dir := testenv.Dir(t)
	var files []string
	for _, sub := range []string{"llamacpp", "vocab"} {
		m, err := filepath.Glob(filepath.Join(dir, sub, "*.gguf"))
		require.NoError(t, err)
		files = append(files, m...)
	}
	require.NotEmpty(t, files, "no .gguf files under %s", dir)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			f, err := Open(path)
			require.NoError(t, err)
			defer f.Close()

			var buf bytes.Buffer
			n, err := FromFile(f).WriteTo(&buf)
			require.NoError(t, err)
			assert.Equal(t, int64(len(want)), n)
			requireSameBytes(t, want, buf.Bytes())

			// Parse over a byte slice agrees with Open.
			g, err := Parse(want)
			require.NoError(t, err)
			assert.Equal(t, f.KVs, g.KVs)
			assert.Equal(t, f.Tensors, g.Tensors)
			assert.Equal(t, f.DataOffset, g.DataOffset)
		})
	}
}

func TestWriteFileRoundTrip(t *testing.T) {
	path := testenv.Path(t, "llamacpp", "tiny-Q4_0.gguf")
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()

	out := filepath.Join(t.TempDir(), "copy.gguf")
	require.NoError(t, os.WriteFile(out, []byte("old contents"), 0o644))
	require.NoError(t, FromFile(f).WriteFile(out))
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	requireSameBytes(t, want, got)
	entries, err := os.ReadDir(filepath.Dir(out))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")
}

func requireSameBytes(t *testing.T, want, got []byte) {
	t.Helper()
	if bytes.Equal(want, got) {
		return
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	t.Fatalf("output differs from the original at byte %d (lengths %d and %d)", i, len(want), len(got))
}
