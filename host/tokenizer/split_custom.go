package tokenizer

import "unicode"

// llama.cpp does not run the two most common pre-tokenizer patterns
// through a regex engine; it hand-codes them (unicode.cpp) and those
// splitters, not the patterns, define its behaviour. They are reproduced
// here decision for decision, including details a regex would not show:
// positions past the end of the piece have no flags at all, while
// unassigned code points carry the "undefined" flag and so count as
// "not space, letter or number".

const (
	patternGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
	patternLlama3 = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// patternLlama3CaseInsensitive is the form in the model's
	// tokenizer.json; llama.cpp maps it to the same splitter.
	patternLlama3CaseInsensitive = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// outOfRange stands for "no character here" in the splitters.
const outOfRange = -1

// pieceView gives a splitter bounded access to one piece.
type pieceView struct {
	cpts     []rune
	ini, end int
}

func (v *pieceView) cpt(pos int) rune {
	if pos >= v.ini && pos < v.end {
		return v.cpts[pos]
	}
	return outOfRange
}

func (v *pieceView) flags(pos int) cptFlags {
	if pos >= v.ini && pos < v.end {
		return flagsOf(v.cpts[pos])
	}
	return 0
}

// splitGPT2 implements `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
// ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
func splitGPT2(cpts []rune, offsets []int) []int {
	return splitPieces(cpts, offsets, func(v pieceView, emit func(end int) int) {
		for pos := v.ini; pos < v.end; {
			c := v.cpt(pos)
			f := v.flags(pos)

			if c == '\'' && pos+1 < v.end {
				next := v.cpt(pos + 1)
				if next == 's' || next == 't' || next == 'm' || next == 'd' {
					pos += emit(pos + 2)
					continue
				}
				if pos+2 < v.end {
					next2 := v.cpt(pos + 2)
					if (next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') || (next == 'l' && next2 == 'l') {
						pos += emit(pos + 3)
						continue
					}
				}
			}

			f2 := f
			if c == ' ' {
				f2 = v.flags(pos + 1)
			}
			lead := 0
			if c == ' ' {
				lead = 1
			}
			if f2.isLetter() {
				pos += lead
				for f2.isLetter() {
					pos++
					f2 = v.flags(pos)
				}
				emit(pos)
				continue
			}
			if f2.isNumber() {
				pos += lead
				for f2.isNumber() {
					pos++
					f2 = v.flags(pos)
				}
				emit(pos)
				continue
			}
			if isOther(f2) {
				pos += lead
				for isOther(f2) {
					pos++
					f2 = v.flags(pos)
				}
				emit(pos)
				continue
			}

			spaces := 0
			for v.flags(pos + spaces).isWhitespace() {
				spaces++
			}
			if spaces > 1 && v.cpt(pos+spaces) != outOfRange {
				pos += spaces - 1
				emit(pos)
				continue
			}
			if spaces > 0 {
				pos += spaces
				emit(pos)
				continue
			}
			pos++
			emit(pos)
		}
	})
}

// isOther is [^\s\p{L}\p{N}] for a position inside the piece.
func isOther(f cptFlags) bool {
	return f&(flagWhitespace|flagLetter|flagNumber) == 0 && f != 0
}

// splitLlama3 implements `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|
// \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
func splitLlama3(cpts []rune, offsets []int) []int {
	return splitPieces(cpts, offsets, func(v pieceView, emit func(end int) int) {
		for pos := v.ini; pos < v.end; {
			c := v.cpt(pos)
			f := v.flags(pos)

			if c == '\'' && pos+1 < v.end {
				next := unicode.ToLower(v.cpt(pos + 1))
				if next == 's' || next == 't' || next == 'm' || next == 'd' {
					pos += emit(pos + 2)
					continue
				}
				if pos+2 < v.end {
					next2 := unicode.ToLower(v.cpt(pos + 2))
					if (next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') || (next == 'l' && next2 == 'l') {
						pos += emit(pos + 3)
						continue
					}
				}
			}

			// [^\r\n\p{L}\p{N}]?\p{L}+
			if !(c == '\r' || c == '\n' || f.isNumber()) {
				if f.isLetter() || v.flags(pos+1).isLetter() {
					pos++
					for v.flags(pos).isLetter() {
						pos++
					}
					emit(pos)
					continue
				}
			}

			// \p{N}{1,3}
			if f.isNumber() {
				ini := pos
				for v.flags(pos).isNumber() {
					pos++
					if pos-ini >= 3 {
						emit(pos)
						ini = pos
					}
				}
				emit(pos)
				continue
			}

			// <space>?[^\s\p{L}\p{N}]+[\r\n]*; llama.cpp tests the current
			// character's flags for being set, not the next one's.
			f2 := f
			if c == ' ' {
				f2 = v.flags(pos + 1)
			}
			if f2&(flagWhitespace|flagLetter|flagNumber) == 0 && f != 0 {
				if c == ' ' {
					pos++
				}
				for isOther(f2) {
					pos++
					f2 = v.flags(pos)
				}
				for c2 := v.cpt(pos); c2 == '\r' || c2 == '\n'; c2 = v.cpt(pos) {
					pos++
				}
				emit(pos)
				continue
			}

			spaces, lastNewline := 0, 0
			for v.flags(pos + spaces).isWhitespace() {
				if c2 := v.cpt(pos + spaces); c2 == '\r' || c2 == '\n' {
					lastNewline = pos + spaces + 1
				}
				spaces++
			}
			// \s*[\r\n]+
			if lastNewline > 0 {
				pos = lastNewline
				emit(pos)
				continue
			}
			// \s+(?!\S)
			if spaces > 1 && v.cpt(pos+spaces) != outOfRange {
				pos += spaces - 1
				emit(pos)
				continue
			}
			if spaces > 0 {
				pos += spaces
				emit(pos)
				continue
			}
			pos++
			emit(pos)
		}
	})
}

// splitPieces runs split over each piece the offsets give (lengths, in
// order) and returns the lengths of the pieces it emits: emit(end) ends
// the current piece at end and returns its length (0 pieces are dropped).
func splitPieces(cpts []rune, offsets []int, split func(v pieceView, emit func(end int) int)) []int {
	out := make([]int, 0, len(offsets))
	start := 0
	for _, n := range offsets {
		v := pieceView{cpts: cpts, ini: start, end: start + n}
		start += n
		prev := v.ini
		split(v, func(end int) int {
			l := end - prev
			if l > 0 {
				out = append(out, l)
			}
			prev = end
			return l
		})
	}
	return out
}
