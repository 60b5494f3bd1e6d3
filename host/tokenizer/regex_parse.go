package tokenizer

import (
	"fmt"
	"strconv"
	"strings"
)

// reParser reads the ECMAScript pattern syntax the pre-tokenizers use:
// alternation, groups ((..), (?:..)), lookahead ((?=..), (?!..)),
// greedy and lazy quantifiers (* + ? {n} {n,} {n,m}), classes with
// ranges, the escapes \s \S \d \D \w \W \b \B \r \n \t \f \v \0 \xHH
// \uHHHH, and \p{..} categories in collapsed patterns.
type reParser struct {
	src       []rune
	pos       int
	collapsed bool
}

func (p *reParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *reParser) peek() (rune, bool) {
	if p.pos < len(p.src) {
		return p.src[p.pos], true
	}
	return 0, false
}

func (p *reParser) lookingAt(s string) bool {
	rs := []rune(s)
	if p.pos+len(rs) > len(p.src) {
		return false
	}
	for i, r := range rs {
		if p.src[p.pos+i] != r {
			return false
		}
	}
	return true
}

func (p *reParser) disjunction() (reNode, error) {
	var alts reAlt
	for {
		a, err := p.alternative()
		if err != nil {
			return nil, err
		}
		alts = append(alts, a)
		if r, ok := p.peek(); !ok || r != '|' {
			break
		}
		p.pos++
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return alts, nil
}

func (p *reParser) alternative() (reNode, error) {
	var seq reSeq
	for {
		r, ok := p.peek()
		if !ok || r == '|' || r == ')' {
			break
		}
		t, err := p.term()
		if err != nil {
			return nil, err
		}
		seq = append(seq, t)
	}
	if len(seq) == 1 {
		return seq[0], nil
	}
	return seq, nil
}

func (p *reParser) term() (reNode, error) {
	r, _ := p.peek()
	switch {
	case r == '^' || r == '$':
		p.pos++
		return reAssert(r), nil
	case p.lookingAt(`\b`) || p.lookingAt(`\B`):
		p.pos += 2
		return reAssert(p.src[p.pos-1]), nil
	case p.lookingAt("(?=") || p.lookingAt("(?!"):
		negate := p.src[p.pos+2] == '!'
		p.pos += 3
		sub, err := p.group()
		if err != nil {
			return nil, err
		}
		return &reLook{sub: sub, negate: negate}, nil
	}
	atom, err := p.atom()
	if err != nil {
		return nil, err
	}
	return p.quantifier(atom)
}

// group parses the rest of a parenthesised group after its opening.
func (p *reParser) group() (reNode, error) {
	sub, err := p.disjunction()
	if err != nil {
		return nil, err
	}
	if r, ok := p.peek(); !ok || r != ')' {
		return nil, p.errorf("missing )")
	}
	p.pos++
	return sub, nil
}

func (p *reParser) atom() (reNode, error) {
	r, _ := p.peek()
	switch r {
	case '(':
		// Capturing and non-capturing groups match alike: splitting only
		// needs the whole match.
		p.pos++
		if p.lookingAt("?:") {
			p.pos += 2
		} else if r2, ok := p.peek(); ok && r2 == '?' {
			return nil, p.errorf("unsupported group syntax")
		}
		return p.group()
	case '.':
		p.pos++
		return reAny{}, nil
	case '[':
		p.pos++
		cls, err := p.class()
		if err != nil {
			return nil, err
		}
		return &reChar{cls: cls}, nil
	case '\\':
		p.pos++
		cls, err := p.escape(false)
		if err != nil {
			return nil, err
		}
		return &reChar{cls: cls}, nil
	case '*', '+', '?', ')':
		return nil, p.errorf("nothing to repeat before %q", r)
	case '{':
		if _, _, ok := p.braces(); ok {
			return nil, p.errorf("nothing to repeat before {")
		}
	}
	p.pos++
	return &reChar{cls: single(r)}, nil
}

func single(r rune) *charClass { return &charClass{ranges: []runeRange{{r, r}}} }

// braces parses {n}, {n,} or {n,m} at the current position without
// consuming it.
func (p *reParser) braces() (lo, hi int, ok bool) {
	if r, has := p.peek(); !has || r != '{' {
		return 0, 0, false
	}
	end := p.pos + 1
	for end < len(p.src) && p.src[end] != '}' {
		end++
	}
	if end >= len(p.src) {
		return 0, 0, false
	}
	body := string(p.src[p.pos+1 : end])
	loS, hiS, comma := strings.Cut(body, ",")
	lo, err := strconv.Atoi(loS)
	if err != nil || lo < 0 {
		return 0, 0, false
	}
	hi = lo
	if comma {
		if hiS == "" {
			hi = -1
		} else if hi, err = strconv.Atoi(hiS); err != nil || hi < lo {
			return 0, 0, false
		}
	}
	return lo, hi, true
}

func (p *reParser) quantifier(atom reNode) (reNode, error) {
	r, ok := p.peek()
	if !ok {
		return atom, nil
	}
	var lo, hi int
	switch r {
	case '*':
		lo, hi = 0, -1
		p.pos++
	case '+':
		lo, hi = 1, -1
		p.pos++
	case '?':
		lo, hi = 0, 1
		p.pos++
	case '{':
		var okb bool
		lo, hi, okb = p.braces()
		if !okb {
			return atom, nil
		}
		for p.src[p.pos] != '}' {
			p.pos++
		}
		p.pos++
	default:
		return atom, nil
	}
	greedy := true
	if r2, ok := p.peek(); ok && r2 == '?' {
		greedy = false
		p.pos++
	}
	return &reRepeat{sub: atom, min: lo, max: hi, greedy: greedy, oneChar: oneCharTest(atom)}, nil
}

// escape parses what follows a backslash, in or out of a class.
func (p *reParser) escape(inClass bool) (*charClass, error) {
	r, ok := p.peek()
	if !ok {
		return nil, p.errorf("trailing backslash")
	}
	p.pos++
	switch r {
	case 'd':
		return &charClass{digit: true}, nil
	case 'D':
		return &charClass{notDigit: true}, nil
	case 's':
		return &charClass{space: true}, nil
	case 'S':
		return &charClass{notSpace: true}, nil
	case 'w':
		return &charClass{word: true}, nil
	case 'W':
		return &charClass{notWord: true}, nil
	case 'n':
		return single('\n'), nil
	case 'r':
		return single('\r'), nil
	case 't':
		return single('\t'), nil
	case 'f':
		return single('\f'), nil
	case 'v':
		return single('\v'), nil
	case 'b':
		if inClass {
			return single('\b'), nil
		}
	case '0':
		return single(0), nil
	case 'x', 'u':
		n := 2
		if r == 'u' {
			n = 4
		}
		if p.pos+n > len(p.src) {
			return nil, p.errorf("short \\%c escape", r)
		}
		v, err := strconv.ParseUint(string(p.src[p.pos:p.pos+n]), 16, 32)
		if err != nil {
			return nil, p.errorf("bad \\%c escape", r)
		}
		p.pos += n
		return single(rune(v)), nil
	case 'p':
		return p.category()
	}
	if r >= '1' && r <= '9' {
		return nil, p.errorf("backreferences are not supported")
	}
	if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
		return nil, p.errorf("unsupported escape \\%c", r)
	}
	return single(r), nil
}

// category parses {Name} after \p into the collapsed class.
func (p *reParser) category() (*charClass, error) {
	start := p.pos - 2
	end := start
	for end < len(p.src) && p.src[end] != '}' {
		end++
	}
	if end >= len(p.src) {
		return nil, p.errorf("unterminated \\p{")
	}
	stand, ok := unicodeCategories[string(p.src[start:end+1])]
	if !ok || !p.collapsed {
		return nil, p.errorf("unsupported category %s", string(p.src[start:end+1]))
	}
	p.pos = end + 1
	cls := &charClass{ranges: []runeRange{{stand, stand}}}
	cls.ranges = append(cls.ranges, asciiCategoryMembers[stand]...)
	return cls, nil
}

// class parses a bracket expression after its '['.
func (p *reParser) class() (*charClass, error) {
	cls := &charClass{}
	if r, ok := p.peek(); ok && r == '^' {
		cls.negate = true
		p.pos++
	}
	for {
		r, ok := p.peek()
		if !ok {
			return nil, p.errorf("missing ]")
		}
		if r == ']' {
			p.pos++
			return cls, nil
		}
		lo, loSet, err := p.classAtom()
		if err != nil {
			return nil, err
		}
		if loSet != nil {
			mergeClass(cls, loSet)
			continue
		}
		// A '-' between two single characters makes a range; anywhere
		// else it is literal.
		if p.pos+1 < len(p.src) && p.src[p.pos] == '-' && p.src[p.pos+1] != ']' {
			save := p.pos
			p.pos++
			hi, hiSet, err := p.classAtom()
			if err != nil {
				return nil, err
			}
			if hiSet == nil {
				if hi < lo {
					return nil, p.errorf("range out of order")
				}
				cls.ranges = append(cls.ranges, runeRange{lo, hi})
				continue
			}
			p.pos = save
		}
		cls.ranges = append(cls.ranges, runeRange{lo, lo})
	}
}

// classAtom returns either one character or, for an escape standing for
// several characters, a class to merge.
func (p *reParser) classAtom() (rune, *charClass, error) {
	r := p.src[p.pos]
	if r != '\\' {
		p.pos++
		return r, nil, nil
	}
	p.pos++
	sub, err := p.escape(true)
	if err != nil {
		return 0, nil, err
	}
	if !sub.negate && len(sub.ranges) == 1 && sub.ranges[0].lo == sub.ranges[0].hi &&
		!sub.space && !sub.notSpace && !sub.digit && !sub.notDigit && !sub.word && !sub.notWord {
		return sub.ranges[0].lo, nil, nil
	}
	return 0, sub, nil
}

func mergeClass(dst, src *charClass) {
	dst.ranges = append(dst.ranges, src.ranges...)
	dst.space = dst.space || src.space
	dst.notSpace = dst.notSpace || src.notSpace
	dst.digit = dst.digit || src.digit
	dst.notDigit = dst.notDigit || src.notDigit
	dst.word = dst.word || src.word
	dst.notWord = dst.notWord || src.notWord
}
