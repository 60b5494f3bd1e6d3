package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/testenv"
)

// TestVocabFiles runs every case of llama.cpp's tokenizer test files
// (tokenized without BOS and without parsing special tokens) and compares
// with the ids llama.cpp produced.
func TestVocabFiles(t *testing.T) {
	dir := testenv.Path(t, "vocab")
	files, err := filepath.Glob(filepath.Join(dir, "*.gguf"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no vocab files in %s", dir)
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			tok := loadGGUFTokenizer(t, "vocab", name)
			cases := readVocabCases(t, path+".inp", path+".out")
			pass := 0
			for i, c := range cases {
				got, err := tok.Encode(c.input, false, false)
				require.NoError(t, err, "case %d %q", i, c.input)
				if assert.Equal(t, c.want, got, "case %d %q", i, c.input) {
					pass++
				}
			}
			t.Logf("%s: %d/%d cases match llama.cpp", name, pass, len(cases))
		})
	}
}

// TestLlamaCppPromptIDs checks the prompt ids llama.cpp computed for the
// reference runs (with BOS, no special-token parsing) for every model.
func TestLlamaCppPromptIDs(t *testing.T) {
	refs, err := filepath.Glob(filepath.Join(testenv.Path(t, "llamacpp", "refs"), "*.greedy.jsonl"))
	require.NoError(t, err)
	require.NotEmpty(t, refs)
	for _, ref := range refs {
		model := strings.TrimSuffix(filepath.Base(ref), ".greedy.jsonl")
		t.Run(model, func(t *testing.T) {
			tok := loadGGUFTokenizer(t, "llamacpp", model+".gguf")
			require.True(t, tok.AddBOS(), "llama SPM vocabularies add BOS by default")
			require.Equal(t, int32(1), tok.BOS())
			require.Equal(t, int32(2), tok.EOS())
			require.True(t, tok.IsEOG(2))
			require.Equal(t, 32000, tok.VocabSize())

			f, err := os.Open(ref)
			require.NoError(t, err)
			defer f.Close()
			n := 0
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var rec struct {
					Prompt    string  `json:"prompt"`
					PromptIDs []int32 `json:"prompt_ids"`
				}
				require.NoError(t, json.Unmarshal(sc.Bytes(), &rec))
				got, err := tok.Encode(rec.Prompt, tok.AddBOS(), false)
				require.NoError(t, err)
				assert.Equal(t, rec.PromptIDs, got, "prompt %q", rec.Prompt)
				// llama.cpp keeps the prefixed space after BOS.
				assert.Equal(t, " "+rec.Prompt, tok.Decode(got), "decode of prompt %q", rec.Prompt)
				n++
			}
			require.NoError(t, sc.Err())
			require.Positive(t, n)
		})
	}
}
