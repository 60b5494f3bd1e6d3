package tokenizer

import (
	"fmt"
	"strings"
)

// llama.cpp runs the pre-tokenizer patterns it has no hand-written
// splitter for through C++ std::regex (ECMAScript grammar): a backtracking
// matcher with ordered alternation and lookahead, which Go's regexp lacks
// (`\s+(?!\S)` is in almost every pattern). This file is a small
// backtracking matcher for the ECMAScript subset those patterns use.
//
// It also reproduces how llama.cpp feeds them: std::regex knows no Unicode
// categories, so a pattern that uses \p{..} runs on a "collapsed" text in
// which every non-ASCII code point is replaced by one stand-in per
// category (0xD1 number, 0xD2 letter, 0xD3 punctuation, 0xD4 mark, 0xD5
// symbol, 0xD0 anything else, 0x0B whitespace) and \p{X} becomes a class
// of that stand-in plus the ASCII members of X. Patterns without \p{..}
// run on the code points, with non-ASCII whitespace replaced by 0x0B so
// that \s sees it. Both substitutions shape the results (a non-ASCII
// letter never matches [^a-z]-style ranges by its own value, '~' is not
// \p{S}), so they are kept exactly.

// Stand-ins of the collapsed text.
const (
	collapsedOther  = 0xD0
	collapsedNumber = 0xD1
	collapsedLetter = 0xD2
	collapsedPunct  = 0xD3
	collapsedMark   = 0xD4
	collapsedSymbol = 0xD5
	collapsedSpace  = 0x0B
)

// unicodeCategories are the \p{..} names llama.cpp collapses; any of them
// in a pattern switches it to the collapsed text.
var unicodeCategories = map[string]rune{
	`\p{N}`: collapsedNumber, `\p{L}`: collapsedLetter, `\p{P}`: collapsedPunct,
	`\p{M}`: collapsedMark, `\p{S}`: collapsedSymbol,
	`\p{Lu}`: collapsedLetter, `\p{Ll}`: collapsedLetter, `\p{Lt}`: collapsedLetter,
	`\p{Lm}`: collapsedLetter, `\p{Lo}`: collapsedLetter,
}

// asciiCategoryMembers are the ASCII characters each stand-in's class
// also matches, as llama.cpp spells them (its symbol class omits '~').
var asciiCategoryMembers = map[rune][]runeRange{
	collapsedNumber: {{'0', '9'}},
	collapsedLetter: {{'A', 'Z'}, {'a', 'z'}},
	collapsedPunct: {{0x21, 0x23}, {0x25, 0x2A}, {0x2C, 0x2F}, {0x3A, 0x3B}, {0x3F, 0x40},
		{0x5B, 0x5D}, {0x5F, 0x5F}, {0x7B, 0x7B}, {0x7D, 0x7D}},
	collapsedMark:   nil,
	collapsedSymbol: {{0x24, 0x24}, {0x2B, 0x2B}, {0x3C, 0x3E}, {0x5E, 0x5E}, {0x60, 0x60}, {0x7C, 0x7C}},
}

// collapseCategory maps a non-ASCII code point to its stand-in.
func collapseCategory(r rune) rune {
	f := flagsOf(r)
	if f.isWhitespace() {
		return collapsedSpace
	}
	switch f & flagCategories {
	case flagNumber:
		return collapsedNumber
	case flagLetter:
		return collapsedLetter
	case flagPunct:
		return collapsedPunct
	case flagAccentMark:
		return collapsedMark
	case flagSymbol:
		return collapsedSymbol
	}
	return collapsedOther
}

type runeRange struct{ lo, hi rune }

// charClass is a bracket expression or a single-character escape.
type charClass struct {
	negate bool
	ranges []runeRange
	// ECMAScript class escapes, as std::regex applies them to char and
	// wchar_t in the C locale: \s is ASCII whitespace only (the text
	// substitutions above make it cover Unicode whitespace), \d is 0-9,
	// \w is [A-Za-z0-9_].
	space, notSpace, digit, notDigit, word, notWord bool
}

func isSpaceECMA(r rune) bool { return r == ' ' || (r >= '\t' && r <= '\r') }
func isDigitECMA(r rune) bool { return r >= '0' && r <= '9' }
func isWordECMA(r rune) bool {
	return isDigitECMA(r) || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || r == '_'
}

func (c *charClass) matches(r rune) bool {
	in := (c.space && isSpaceECMA(r)) || (c.notSpace && !isSpaceECMA(r)) ||
		(c.digit && isDigitECMA(r)) || (c.notDigit && !isDigitECMA(r)) ||
		(c.word && isWordECMA(r)) || (c.notWord && !isWordECMA(r))
	if !in {
		for _, rg := range c.ranges {
			if r >= rg.lo && r <= rg.hi {
				in = true
				break
			}
		}
	}
	return in != c.negate
}

// Pattern syntax tree.
type (
	reNode   interface{}
	reChar   struct{ cls *charClass } // one character from a class
	reAny    struct{}                 // '.'
	reSeq    []reNode
	reAlt    []reNode
	reRepeat struct {
		sub      reNode
		min, max int // max < 0: unbounded
		greedy   bool
		// oneChar is set when sub always consumes exactly one character
		// without internal choices; the repetition then runs as a loop.
		oneChar charTest
	}
	reLook struct {
		sub    reNode
		negate bool
	}
	reAssert byte // '^', '$', 'b' (word boundary), 'B'
)

// regex is a compiled pattern together with the text transformation
// llama.cpp applies before running it.
type regex struct {
	src       string
	root      reNode
	collapsed bool
	// alts are the top-level alternatives; leads[i] is alts[i]'s leading
	// unbounded single-character repetition, if it has one (see search).
	alts  []reNode
	leads []*reRepeat
}

// compileRegex parses an ECMAScript pattern of the subset llama.cpp's
// pre-tokenizers use.
func compileRegex(src string) (*regex, error) {
	collapsed := false
	for name := range unicodeCategories {
		if strings.Contains(src, name) {
			collapsed = true
			break
		}
	}
	if collapsed {
		for _, r := range src {
			if r >= 0x80 {
				// llama.cpp refuses these too: the collapsed text has no
				// non-ASCII characters left to match them against.
				return nil, fmt.Errorf("pattern %q mixes unicode categories and non-ASCII characters", src)
			}
		}
	}
	p := &reParser{src: []rune(src), collapsed: collapsed}
	root, err := p.disjunction()
	if err == nil && p.pos < len(p.src) {
		err = p.errorf("unexpected %q", p.src[p.pos])
	}
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", src, err)
	}
	re := &regex{src: src, root: root, collapsed: collapsed}
	if alt, ok := root.(reAlt); ok {
		re.alts = alt
	} else {
		re.alts = []reNode{root}
	}
	for _, a := range re.alts {
		first := a
		if seq, ok := a.(reSeq); ok && len(seq) > 0 {
			first = seq[0]
		}
		lead, _ := first.(*reRepeat)
		if lead != nil && (lead.oneChar == nil || lead.max >= 0) {
			lead = nil
		}
		re.leads = append(re.leads, lead)
	}
	return re, nil
}

// prepare returns the text the pattern actually runs on.
func (re *regex) prepare(cpts []rune) []rune {
	out := make([]rune, len(cpts))
	for i, r := range cpts {
		switch {
		case r < 0x80:
			out[i] = r
		case re.collapsed:
			out[i] = collapseCategory(r)
		case flagsOf(r).isWhitespace():
			out[i] = collapsedSpace
		default:
			out[i] = r
		}
	}
	return out
}

// charTest reports whether the character at pos (< len(text)) matches.
type charTest func(text []rune, pos int) bool

// oneCharTest returns a test for nodes that match exactly one character
// with nothing to backtrack into: a class, '.', or lookaheads on that same
// character followed by one of those (the `(?=[\p{L}])([^a-z])` idiom of
// the tekken and gpt-4o patterns, "a letter that is not a-z"). It
// returns nil for anything else.
func oneCharTest(n reNode) charTest {
	switch n := n.(type) {
	case *reChar:
		cls := n.cls
		return func(text []rune, pos int) bool { return cls.matches(text[pos]) }
	case reAny:
		return func(text []rune, pos int) bool { return !isLineTerminator(text[pos]) }
	case reSeq:
		if len(n) == 0 {
			return nil
		}
		last := oneCharTest(n[len(n)-1])
		if last == nil {
			return nil
		}
		tests := []charTest{last}
		for _, item := range n[:len(n)-1] {
			look, ok := item.(*reLook)
			if !ok {
				return nil
			}
			sub := oneCharTest(look.sub)
			if sub == nil {
				return nil
			}
			if look.negate {
				tests = append(tests, func(text []rune, pos int) bool { return !sub(text, pos) })
			} else {
				tests = append(tests, sub)
			}
		}
		return func(text []rune, pos int) bool {
			for _, t := range tests {
				if !t(text, pos) {
					return false
				}
			}
			return true
		}
	}
	return nil
}
