package tokenizer

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// smallSPM is a hand-made SentencePiece vocabulary:
//
//	0 <unk>  1 <s>  2 </s>  3 ▁  4 a  5 b  6 ▁a  7 ab  8 ▁ab
//	9 <0xE2>  10 <0x82>  11 <0xAC>  12 <|user|> (user-defined)
//	13 <0x20>  14 <0xFF>  15 <0x41>
//
// "ab" outscores "▁a", so " ab" merges a+b first, then ▁+ab.
func smallSPM(t *testing.T, name string) *Tokenizer {
	t.Helper()
	v, err := NewVocab(ModelSPM, "")
	require.NoError(t, err)
	v.Tokens = []string{"<unk>", "<s>", "</s>", "▁", "a", "b", "▁a", "ab", "▁ab",
		"<0xE2>", "<0x82>", "<0xAC>", "<|user|>", "<0x20>", "<0xFF>", "<0x41>"}
	v.Scores = []float32{0, 0, 0, -5, -6, -7, -3, -1, -2, 0, 0, 0, 0, 0, 0, 0}
	v.Types = []int32{TypeUnknown, TypeControl, TypeControl, TypeNormal, TypeNormal, TypeNormal, TypeNormal,
		TypeNormal, TypeNormal, TypeByte, TypeByte, TypeByte, TypeUserDefined, TypeByte, TypeByte, TypeByte}
	v.Name = name
	tok, err := New(v)
	require.NoError(t, err)
	return tok
}

func TestSPMSmallVocab(t *testing.T) {
	tok := smallSPM(t, "")
	for _, c := range []struct {
		text         string
		parseSpecial bool
		want         []int32
	}{
		{"ab", false, []int32{8}},
		{"a", false, []int32{6}},
		{"ba", false, []int32{3, 5, 4}},
		// € is not in the vocabulary: its three bytes.
		{"€", false, []int32{3, 9, 10, 11}},
		// User-defined tokens are recognised even without parseSpecial,
		// and the text after a special token gets the space prefix too.
		{"a<|user|>b", false, []int32{6, 12, 3, 5}},
		{"<s>a</s>", true, []int32{1, 6, 2}},
		{"", false, []int32{}},
	} {
		got, err := tok.Encode(c.text, false, c.parseSpecial)
		require.NoError(t, err)
		assert.Equal(t, c.want, got, "%q", c.text)
	}
	// Without parseSpecial, "<s>" is text, and this vocabulary cannot
	// spell '<' in bytes.
	_, err := tok.Encode("<s>", false, false)
	assert.ErrorContains(t, err, "0x3C")

	got, err := tok.Encode("ab", true, false)
	require.NoError(t, err)
	assert.Equal(t, []int32{1, 8}, got)
}

func TestSPMDecodeRules(t *testing.T) {
	tok := smallSPM(t, "")
	// The first token loses the space tokenization prefixed...
	assert.Equal(t, "ab", tok.Decode([]int32{8}))
	assert.Equal(t, "ab a", tok.Decode([]int32{8, 6}))
	// ...but after a BOS it stays (llama.cpp's detokenizer), and control
	// tokens produce nothing.
	assert.Equal(t, " ab", tok.Decode([]int32{1, 8, 2}))
	// The unknown token is special too; user-defined tokens show.
	assert.Equal(t, "a<|user|>", tok.Decode([]int32{0, 4, 12}))
	// Byte tokens assemble into UTF-8; only a leading space is stripped,
	// even when it comes from a byte token.
	assert.Equal(t, "€", tok.Decode([]int32{9, 10, 11}))
	assert.Equal(t, "A", tok.Decode([]int32{13, 15}))
	// Invalid ids are skipped.
	assert.Equal(t, "a", tok.Decode([]int32{-1, 4, 99}))

	assert.Equal(t, []byte("<s>"), tok.TokenPiece(1))
	assert.Equal(t, []byte(" ab"), tok.TokenPiece(8))
	assert.Equal(t, []byte{0xE2}, tok.TokenPiece(9))
	assert.Nil(t, tok.TokenPiece(16))
	assert.Equal(t, "▁ab", tok.TokenText(8))
}

func TestPhi3SpecialTokensStripWhitespace(t *testing.T) {
	// Phi-3's special tokens swallow the whitespace after them.
	got, err := smallSPM(t, "Phi-3-mini").Encode("<|user|>  \ta", false, false)
	require.NoError(t, err)
	assert.Equal(t, []int32{12, 6}, got)

	got, err = smallSPM(t, "").Encode("<|user|>  a", false, false)
	require.NoError(t, err)
	assert.Equal(t, []int32{12, 3, 3, 6}, got)
}

// bpeVocab builds a byte-level BPE vocabulary: the 256 byte characters
// (ids 0-255 in byte order), then extra entries and merges.
func bpeVocab(t *testing.T, pre string, extra []string, merges []string) *Vocab {
	t.Helper()
	v, err := NewVocab(ModelBPE, pre)
	require.NoError(t, err)
	for b := 0; b < 256; b++ {
		v.Tokens = append(v.Tokens, string(byteToRune[b]))
	}
	v.Tokens = append(v.Tokens, extra...)
	v.Merges = merges
	return v
}

func TestBPESmallVocab(t *testing.T) {
	extra := []string{"he", "ll", "hell", "hello", "xyz", "Ġw", "€x"}
	merges := []string{"l l", "h e", "he ll", "hell o", "Ġ w"}
	ids := func(pre, text string) []int32 {
		tok, err := New(bpeVocab(t, pre, extra, merges))
		require.NoError(t, err)
		got, err := tok.Encode(text, false, false)
		require.NoError(t, err)
		return got
	}
	// hello: l+l (rank 0), h+e (1), he+ll (2), hell+o (3).
	assert.Equal(t, []int32{259}, ids("gpt-2", "hello"))
	assert.Equal(t, []int32{258, 'p'}, ids("gpt-2", "hellp"))
	assert.Equal(t, []int32{261, 'o', 'r', 'l', 'd'}, ids("gpt-2", " world"))
	// "xyz" has no merges: the llama3 family takes whole-word entries as
	// they are, the others spell it out.
	assert.Equal(t, []int32{'x', 'y', 'z'}, ids("gpt-2", "xyz"))
	assert.Equal(t, []int32{260}, ids("llama3", "xyz"))
}

func TestBPEDecodeRules(t *testing.T) {
	text := "I 'm here , ok . 'tis don 't ' a ?"
	gpt2, err := New(bpeVocab(t, "gpt-2", []string{"€x"}, nil))
	require.NoError(t, err)
	ids, err := gpt2.Encode(text, false, false)
	require.NoError(t, err)
	assert.Equal(t, "I'm here, ok. 'tis don 't'a?", gpt2.Decode(ids))

	qwen, err := New(bpeVocab(t, "qwen2", nil, nil))
	require.NoError(t, err)
	ids, err = qwen.Encode(text, false, false)
	require.NoError(t, err)
	assert.Equal(t, text, qwen.Decode(ids))

	// A character outside GPT-2's byte alphabet, rendered as llama.cpp
	// does.
	assert.Equal(t, "[UNK_BYTE_0xe282ac€x]x", gpt2.Decode([]int32{256}))
}

func TestBPESpecialTokens(t *testing.T) {
	tok := loadGGUFTokenizer(t, "vocab", "ggml-vocab-gpt-2.gguf")
	const eot = 50256
	require.Equal(t, "<|endoftext|>", tok.TokenText(eot))
	assert.Equal(t, int32(eot), tok.EOT())
	assert.True(t, tok.IsEOG(eot))
	assert.False(t, tok.IsEOG(64))

	a, err := tok.Encode("Hello", false, false)
	require.NoError(t, err)
	b, err := tok.Encode(" world", false, false)
	require.NoError(t, err)
	got, err := tok.Encode("Hello<|endoftext|> world", false, true)
	require.NoError(t, err)
	assert.Equal(t, append(append(append([]int32{}, a...), eot), b...), got)

	got, err = tok.Encode("Hello<|endoftext|> world", false, false)
	require.NoError(t, err)
	assert.NotContains(t, got, int32(eot))
	assert.Equal(t, "Hello world", tok.Decode(append(append(append([]int32{}, a...), eot), b...)))
}

func TestSPMSpecialTokensRealVocab(t *testing.T) {
	tok := loadGGUFTokenizer(t, "vocab", "ggml-vocab-llama-spm.gguf")
	var hello []int32
	for _, c := range readVocabCases(t, testdataVocab(t, "ggml-vocab-llama-spm.gguf.inp"), testdataVocab(t, "ggml-vocab-llama-spm.gguf.out")) {
		if c.input == "Hello" {
			hello = c.want
		}
	}
	require.NotEmpty(t, hello, "the test file has a \"Hello\" case")

	got, err := tok.Encode("<s>Hello</s>", false, true)
	require.NoError(t, err)
	assert.Equal(t, append(append([]int32{1}, hello...), 2), got)

	got, err = tok.Encode("<s>Hello</s>", false, false)
	require.NoError(t, err)
	assert.NotContains(t, got, int32(1))
	assert.NotContains(t, got, int32(2))
	// The control tokens made of text decode back to that text.
	assert.Equal(t, "<s>Hello</s>", tok.Decode(got))
}

func TestEndOfGenerationDetection(t *testing.T) {
	v, err := NewVocab(ModelBPE, "qwen2")
	require.NoError(t, err)
	v.Tokens = []string{"a", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_pad|>", "b"}
	v.BOS, v.EOS = NoToken, 1
	tok, err := New(v)
	require.NoError(t, err)
	assert.Equal(t, int32(1), tok.EOT(), "lowest id among end-of-turn texts")
	for id, want := range []bool{false, true, false, true, true, false} {
		assert.Equal(t, want, tok.IsEOG(int32(id)), "id %d", id)
	}
	// Detected tokens become control tokens: recognised only with
	// parseSpecial, and dropped by Decode.
	got, err := tok.Encode("a<|im_end|>", false, true)
	require.NoError(t, err)
	assert.Equal(t, []int32{0, 3}, got)
	assert.Equal(t, "a", tok.Decode(got))

	// Harmony (gpt-oss) ends turns with <|return|>/<|call|>; there
	// <|end|> only ends a message.
	v.Tokens = []string{"a", "<|end|>", "<|return|>", "<|call|>", "<|channel|>"}
	v.EOS = 2
	tok, err = New(v)
	require.NoError(t, err)
	assert.False(t, tok.IsEOG(1))
	assert.True(t, tok.IsEOG(2))
	assert.True(t, tok.IsEOG(3))
	// <|channel|> is always shown.
	assert.Equal(t, "<|channel|>a", tok.Decode([]int32{4, 0}))
}
