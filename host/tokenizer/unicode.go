package tokenizer

import (
	"sync"
	"unicode"
)

// cptFlags mirrors llama.cpp's unicode_cpt_flags bit for bit: the
// pre-tokenizers test "any flag set" (as_uint() != 0), so the layout,
// including the undefined bit, is part of the behaviour.
type cptFlags uint16

const (
	flagUndefined  cptFlags = 0x0001
	flagNumber     cptFlags = 0x0002 // \p{N}
	flagLetter     cptFlags = 0x0004 // \p{L}
	flagSeparator  cptFlags = 0x0008 // \p{Z}
	flagAccentMark cptFlags = 0x0010 // \p{M}
	flagPunct      cptFlags = 0x0020 // \p{P}
	flagSymbol     cptFlags = 0x0040 // \p{S}
	flagControl    cptFlags = 0x0080 // \p{C}
	flagCategories cptFlags = 0x00FF
	flagWhitespace cptFlags = 0x0100 // \s
)

func (f cptFlags) isLetter() bool     { return f&flagLetter != 0 }
func (f cptFlags) isNumber() bool     { return f&flagNumber != 0 }
func (f cptFlags) isWhitespace() bool { return f&flagWhitespace != 0 }

// maxCodepoint is one past the last Unicode code point; llama.cpp's flag
// table ends there and reports "undefined" beyond it.
const maxCodepoint = 0x110000

var (
	bmpFlagsOnce sync.Once
	bmpFlags     []cptFlags
)

// flagsOf returns the category flags of a code point. The Basic
// Multilingual Plane is tabulated once because the pre-tokenizers ask for
// every character of every prompt, often several times.
func flagsOf(r rune) cptFlags {
	if r >= 0 && r < 0x10000 {
		bmpFlagsOnce.Do(func() {
			bmpFlags = make([]cptFlags, 0x10000)
			for c := range bmpFlags {
				bmpFlags[c] = computeFlags(rune(c))
			}
		})
		return bmpFlags[r]
	}
	return computeFlags(r)
}

// computeFlags derives llama.cpp's flags from Go's Unicode tables.
// llama.cpp generates its table from UnicodeData.txt: one general category
// per code point (C covers Cc, Cf, Cs and Co; unassigned code points stay
// "undefined"), plus the White_Space property.
func computeFlags(r rune) cptFlags {
	if r < 0 || r >= maxCodepoint {
		return flagUndefined
	}
	var f cptFlags
	switch {
	case unicode.IsLetter(r):
		f = flagLetter
	case unicode.IsNumber(r):
		f = flagNumber
	case unicode.IsMark(r):
		f = flagAccentMark
	case unicode.IsPunct(r):
		f = flagPunct
	case unicode.IsSymbol(r):
		f = flagSymbol
	case unicode.Is(unicode.Z, r):
		f = flagSeparator
	case unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs):
		// Not unicode.C, which also covers unassigned code points.
		f = flagControl
	default:
		f = flagUndefined
	}
	if unicode.Is(unicode.White_Space, r) {
		f |= flagWhitespace
	}
	return f
}

// utf8SeqLen is llama.cpp's unicode_len_utf8: the sequence length implied
// by a lead byte's high nibble, without validating anything. Continuation
// and invalid bytes count as length 1.
func utf8SeqLen(b byte) int {
	switch b >> 4 {
	case 0xC, 0xD:
		return 2
	case 0xE:
		return 3
	case 0xF:
		return 4
	}
	return 1
}

// decodeCodepoints splits text into code points exactly as llama.cpp's
// unicode_cpts_from_utf8 does, which is more lenient than Go's decoder:
// overlong forms, surrogates and values above U+10FFFF are accepted, and
// each byte that starts no valid-looking sequence becomes U+FFFD. The BPE
// pre-tokenizers re-encode words from these code points, so matching
// llama.cpp on malformed input means decoding the way it does.
func decodeCodepoints(s string) []rune {
	out := make([]rune, 0, len(s))
	for i := 0; i < len(s); {
		r, n := decodeCodepoint(s, i)
		out = append(out, r)
		i += n
	}
	return out
}

func decodeCodepoint(s string, i int) (rune, int) {
	b0 := s[i]
	cont := func(k int) bool { return i+k < len(s) && s[i+k]&0xC0 == 0x80 }
	switch {
	case b0&0x80 == 0:
		return rune(b0), 1
	case b0&0x40 == 0:
		return unicode.ReplacementChar, 1
	case b0&0x20 == 0:
		if !cont(1) {
			return unicode.ReplacementChar, 1
		}
		return rune(b0&0x1F)<<6 | rune(s[i+1]&0x3F), 2
	case b0&0x10 == 0:
		if !cont(1) || !cont(2) {
			return unicode.ReplacementChar, 1
		}
		return rune(b0&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F), 3
	case b0&0x08 == 0:
		if !cont(1) || !cont(2) || !cont(3) {
			return unicode.ReplacementChar, 1
		}
		return rune(b0&0x07)<<18 | rune(s[i+1]&0x3F)<<12 | rune(s[i+2]&0x3F)<<6 | rune(s[i+3]&0x3F), 4
	}
	return unicode.ReplacementChar, 1
}

// appendCodepoint encodes a code point the way llama.cpp's
// unicode_cpt_to_utf8 does: surrogates are written as their three-byte
// form (Go's encoder would substitute U+FFFD). llama.cpp throws on values
// above U+10FFFF; those are written as U+FFFD here instead.
func appendCodepoint(b []byte, r rune) []byte {
	switch {
	case r >= 0 && r <= 0x7F:
		return append(b, byte(r))
	case r >= 0x80 && r <= 0x7FF:
		return append(b, 0xC0|byte(r>>6), 0x80|byte(r&0x3F))
	case r >= 0x800 && r <= 0xFFFF:
		return append(b, 0xE0|byte(r>>12), 0x80|byte(r>>6&0x3F), 0x80|byte(r&0x3F))
	case r >= 0x10000 && r <= 0x10FFFF:
		return append(b, 0xF0|byte(r>>18), 0x80|byte(r>>12&0x3F), 0x80|byte(r>>6&0x3F), 0x80|byte(r&0x3F))
	}
	return append(b, 0xEF, 0xBF, 0xBD)
}
