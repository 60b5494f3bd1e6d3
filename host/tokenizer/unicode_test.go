package tokenizer

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCodepointFlags(t *testing.T) {
	for _, c := range []struct {
		r    rune
		want cptFlags
	}{
		{'a', flagLetter}, {'Z', flagLetter}, {'é', flagLetter}, {'中', flagLetter},
		{'5', flagNumber}, {'½', flagNumber}, {'٣', flagNumber}, {'Ⅻ', flagNumber},
		{0x0301, flagAccentMark},
		{'!', flagPunct}, {'\'', flagPunct}, {'、', flagPunct},
		{'$', flagSymbol}, {'~', flagSymbol}, {'€', flagSymbol}, {'🦙', flagSymbol},
		{' ', flagSeparator | flagWhitespace}, {0x00A0, flagSeparator | flagWhitespace}, {0x3000, flagSeparator | flagWhitespace},
		{'\n', flagControl | flagWhitespace}, {0x0085, flagControl | flagWhitespace}, {0x01, flagControl},
		{0x200B, flagControl}, {0xE000, flagControl}, {0xD800, flagControl},
		{0x0378, flagUndefined}, {0x110000, flagUndefined}, {-1, flagUndefined},
	} {
		assert.Equal(t, c.want, flagsOf(c.r), "U+%04X", c.r)
	}
}

// TestDecodeCodepoints checks llama.cpp's lenient UTF-8 reading: overlong
// forms, surrogates and values past U+10FFFF are decoded, each byte that
// starts nothing usable is U+FFFD.
func TestDecodeCodepoints(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []rune
	}{
		{"aé€🦙", []rune{'a', 'é', '€', '🦙'}},
		{"\xC0\x80", []rune{0}},
		{"\xED\xA0\x80", []rune{0xD800}},
		{"\xF4\x90\x80\x80", []rune{0x110000}},
		{"\x80a", []rune{0xFFFD, 'a'}},
		{"\xE2\x82", []rune{0xFFFD, 0xFFFD}},
		{"\xE2a\x82", []rune{0xFFFD, 'a', 0xFFFD}},
		{"\xF8\x88\x80\x80\x80", []rune{0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}},
	} {
		assert.Equal(t, c.want, decodeCodepoints(c.in), "%q", c.in)
	}
	assert.Equal(t, []byte("\xED\xA0\x80"), appendCodepoint(nil, 0xD800))
	assert.Equal(t, []byte("\uFFFD"), appendCodepoint(nil, 0x110000))
	assert.Equal(t, []byte("🦙"), appendCodepoint(nil, '🦙'))
}

func TestByteAlphabet(t *testing.T) {
	// GPT-2's well-known characters: Ġ for space, Ċ for newline, ĉ for
	// tab, Ā for NUL; printable Latin-1 maps to itself.
	assert.Equal(t, 'Ġ', byteToRune[' '])
	assert.Equal(t, 'Ċ', byteToRune['\n'])
	assert.Equal(t, 'ĉ', byteToRune['\t'])
	assert.Equal(t, 'Ā', byteToRune[0])
	assert.Equal(t, 'a', byteToRune['a'])
	assert.Equal(t, 'é', byteToRune[0xE9])
	assert.Equal(t, rune(0x143), byteToRune[0xAD], "soft hyphen is the last remapped byte")
	seen := map[rune]bool{}
	for b := 0; b < 256; b++ {
		require.False(t, seen[byteToRune[b]], "byte %d", b)
		seen[byteToRune[b]] = true
	}
	assert.Equal(t, []byte("a \n\x00"), byteDecode("aĠĊĀ"))
}

// TestBPEMalformedUTF8 checks that byte-level BPE tokenizes what llama.cpp
// decodes from malformed input: an overlong NUL is NUL, a stray byte is
// U+FFFD.
func TestBPEMalformedUTF8(t *testing.T) {
	tok := loadGGUFTokenizer(t, "vocab", "ggml-vocab-gpt-2.gguf")
	for in, want := range map[string]string{"\xC0\x80": "\x00", "a\x80b": "a\uFFFDb", "\xED\xA0\x80": "\xED\xA0\x80"} {
		ids, err := tok.Encode(in, false, false)
		require.NoError(t, err)
		var got []byte
		for _, id := range ids {
			got = append(got, tok.TokenPiece(id)...)
		}
		assert.Equal(t, want, string(got), "%q", in)
	}
}
