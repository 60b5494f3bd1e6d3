package tokenizer

import "unicode/utf8"

// GPT-2's byte-level BPE never sees raw bytes: every byte is first mapped
// to a printable code point (printable Latin-1 bytes to themselves, the
// other 68 bytes to U+0100 onwards, in byte order), so that vocabulary
// entries are valid UTF-8 without spaces or control characters.
var (
	byteToRune [256]rune
	runeToByte map[rune]byte
	// byteToPiece is byteToRune pre-encoded, so encoding a word is one
	// table lookup and append per byte.
	byteToPiece [256]string
)

func init() {
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	runeToByte = make(map[rune]byte, 256)
	next := rune(256)
	for b := 0; b < 256; b++ {
		r := rune(b)
		if !printable(b) {
			r = next
			next++
		}
		byteToRune[b] = r
		runeToByte[r] = byte(b)
		byteToPiece[b] = string(r)
	}
}

// byteEncode maps each byte of word to its GPT-2 code point.
func byteEncode(dst []byte, word []byte) []byte {
	for _, b := range word {
		dst = append(dst, byteToPiece[b]...)
	}
	return dst
}

// byteDecode reverses byteEncode for a vocabulary entry, as llama.cpp's
// llama_decode_text does, including its rendering of characters outside
// the mapping: "[UNK_BYTE_0x" + the character's UTF-8 in hex + the whole
// token text + "]".
func byteDecode(text string) []byte {
	out := make([]byte, 0, len(text))
	for _, r := range decodeCodepoints(text) {
		if b, ok := runeToByte[r]; ok {
			out = append(out, b)
			continue
		}
		out = append(out, "[UNK_BYTE_0x"...)
		var enc [utf8.UTFMax]byte
		for _, c := range appendCodepoint(enc[:0], r) {
			const hex = "0123456789abcdef"
			out = append(out, hex[c>>4], hex[c&15])
		}
		out = append(out, text...)
		out = append(out, ']')
	}
	return out
}
