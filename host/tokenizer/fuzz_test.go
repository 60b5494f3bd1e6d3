package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// FuzzEncode checks, on arbitrary bytes, that encoding never fails or
// panics on the real vocabularies, that ids are in range, that streaming
// yields exactly the tokens' bytes, and, for valid UTF-8, that the tokens'
// pieces spell the input (byte-level BPE is lossless; SPM differs only by
// its space prefix and U+2581 standing for a space).
func FuzzEncode(f *testing.F) {
	spm := loadGGUFTokenizer(f, "vocab", "ggml-vocab-llama-spm.gguf")
	bpe := loadGGUFTokenizer(f, "vocab", "ggml-vocab-gpt-2.gguf")
	for _, s := range textAlphabet {
		f.Add(s, false)
	}
	for _, s := range []string{"", "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～", "\xff\xfe\xe2\x96", "\xed\xa0\x80\xf4\x90\x80\x80\xc0\x80",
		"<s>a</s><unk>", "x<|endoftext|>y", " ▁ ▁▁", "\t\n \r\n   \u3000x"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, text string, special bool) {
		for _, tok := range []*Tokenizer{spm, bpe} {
			ids, err := tok.Encode(text, true, special)
			require.NoError(t, err)
			var want []byte
			for _, id := range ids {
				require.True(t, id >= 0 && int(id) < tok.VocabSize(), "id %d", id)
				want = append(want, tok.piece(id, false)...)
			}
			_ = tok.Decode(ids)
			d := tok.NewStreamDecoder()
			var got strings.Builder
			for _, id := range ids {
				got.WriteString(d.Push(id))
			}
			got.WriteString(d.Flush())
			require.Equal(t, string(want), got.String())
		}
		if !utf8.ValidString(text) {
			return
		}
		pieces := func(tok *Tokenizer) string {
			ids, err := tok.Encode(text, false, false)
			require.NoError(t, err)
			var b []byte
			for _, id := range ids {
				b = append(b, tok.TokenPiece(id)...)
			}
			return string(b)
		}
		require.Equal(t, text, pieces(bpe))
		if text == "" {
			// No text, no fragment to prefix a space to.
			require.Empty(t, pieces(spm))
			return
		}
		require.Equal(t, strings.ReplaceAll(" "+text, "▁", " "), pieces(spm))
	})
}
