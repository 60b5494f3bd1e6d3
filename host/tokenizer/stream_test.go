package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// streamAll pushes ids one by one and checks that every chunk is complete
// UTF-8; it returns the chunks and how many pushes produced nothing.
func streamAll(t *testing.T, tok *Tokenizer, ids []int32) (chunks []string, held int) {
	t.Helper()
	d := tok.NewStreamDecoder()
	for _, id := range ids {
		s := d.Push(id)
		require.True(t, utf8.ValidString(s), "chunk %q after id %d is not complete UTF-8", s, id)
		if s == "" {
			held++
		}
		chunks = append(chunks, s)
	}
	require.Equal(t, "", d.Flush(), "nothing left over")
	return chunks, held
}

func TestStreamDecoderSPMByteTokens(t *testing.T) {
	tok := loadGGUFTokenizer(t, "vocab", "ggml-vocab-llama-spm.gguf")
	// The emoji are not in the vocabulary: each becomes four byte tokens.
	text := "🦙 and 😀, €!"
	ids, err := tok.Encode(text, true, false)
	require.NoError(t, err)
	chunks, held := streamAll(t, tok, ids)
	// BOS contributes nothing, and nothing is stripped while streaming.
	assert.Equal(t, " "+text, strings.Join(chunks, ""))
	assert.GreaterOrEqual(t, held, 1+2*3, "BOS plus three incomplete bytes per emoji")
}

func TestStreamDecoderBPE(t *testing.T) {
	tok := loadGGUFTokenizer(t, "vocab", "ggml-vocab-gpt-2.gguf")
	text := " this is 🦙.cpp, ünïcödé 日本語 😶\u200d🌫\ufe0f"
	ids, err := tok.Encode(text, false, false)
	require.NoError(t, err)
	chunks, held := streamAll(t, tok, ids)
	assert.Equal(t, text, strings.Join(chunks, ""))
	assert.Positive(t, held, "some character spans several tokens")
}

func TestStreamDecoderHoldsAndFlushes(t *testing.T) {
	tok := smallSPM(t, "")
	d := tok.NewStreamDecoder()
	// € is E2 82 AC, tokens 9, 10, 11.
	assert.Equal(t, "", d.Push(9))
	assert.Equal(t, "", d.Push(10))
	assert.Equal(t, "€", d.Push(11))
	// Leading spaces are kept, control tokens dropped.
	assert.Equal(t, " ab", d.Push(8))
	assert.Equal(t, "", d.Push(2))
	// A byte that can never start a character passes through at once, as
	// does a started sequence broken by a non-continuation byte.
	assert.Equal(t, "\xff", d.Push(14))
	assert.Equal(t, "", d.Push(9))
	assert.Equal(t, "\xe2A", d.Push(15))
	// An incomplete sequence at the end comes out of Flush.
	assert.Equal(t, "a", d.Push(4))
	assert.Equal(t, "", d.Push(9))
	assert.Equal(t, "", d.Push(10))
	assert.Equal(t, "\xe2\x82", d.Flush())
	assert.Equal(t, "", d.Flush())
	assert.Equal(t, "a", d.Push(4))
}
