package tokenizer

// reMatcher runs a pattern over one piece of prepared text with
// ECMAScript semantics: depth-first backtracking in which alternatives and
// greedy repetitions are tried in order, and the first overall success
// wins. Continuations (k) carry "the rest of the pattern".
type reMatcher struct {
	text []rune
}

func (m *reMatcher) match(n reNode, pos int, k func(int) bool) bool {
	switch n := n.(type) {
	case *reChar:
		if pos < len(m.text) && n.cls.matches(m.text[pos]) {
			return k(pos + 1)
		}
		return false
	case reAny:
		if pos < len(m.text) && !isLineTerminator(m.text[pos]) {
			return k(pos + 1)
		}
		return false
	case reSeq:
		return m.seq(n, pos, k)
	case reAlt:
		for _, a := range n {
			if m.match(a, pos, k) {
				return true
			}
		}
		return false
	case *reRepeat:
		if n.oneChar != nil {
			return m.repeatRun(n, pos, k)
		}
		return m.repeat(n, 0, pos, k)
	case *reLook:
		// Lookahead is atomic in ECMAScript: once its body has matched,
		// the matcher never backtracks into it.
		found := m.match(n.sub, pos, func(int) bool { return true })
		if found == n.negate {
			return false
		}
		return k(pos)
	case reAssert:
		if m.assert(n, pos) {
			return k(pos)
		}
		return false
	}
	return false
}

func (m *reMatcher) seq(items reSeq, pos int, k func(int) bool) bool {
	if len(items) == 0 {
		return k(pos)
	}
	return m.match(items[0], pos, func(p int) bool { return m.seq(items[1:], p, k) })
}

// repeatRun runs a repetition of a single character as a loop instead of
// one recursion per character: find the longest run, then offer the
// continuation each allowed length, longest first when greedy.
func (m *reMatcher) repeatRun(n *reRepeat, pos int, k func(int) bool) bool {
	run := 0
	for (n.max < 0 || run < n.max) && pos+run < len(m.text) && n.oneChar(m.text, pos+run) {
		run++
	}
	if run < n.min {
		return false
	}
	if n.greedy {
		for c := run; c >= n.min; c-- {
			if k(pos + c) {
				return true
			}
		}
		return false
	}
	for c := n.min; c <= run; c++ {
		if k(pos + c) {
			return true
		}
	}
	return false
}

// repeat is the general case. As ECMAScript requires, an iteration past
// the minimum that consumes nothing fails, which stops empty loops.
func (m *reMatcher) repeat(n *reRepeat, count, pos int, k func(int) bool) bool {
	if n.max >= 0 && count >= n.max {
		return k(pos)
	}
	more := func() bool {
		return m.match(n.sub, pos, func(p int) bool {
			if p == pos && count >= n.min {
				return false
			}
			return m.repeat(n, count+1, p, k)
		})
	}
	if count < n.min {
		return more()
	}
	if n.greedy {
		return more() || k(pos)
	}
	return k(pos) || more()
}

func (m *reMatcher) assert(a reAssert, pos int) bool {
	switch a {
	case '^':
		return pos == 0
	case '$':
		return pos == len(m.text)
	case 'b', 'B':
		before := pos > 0 && isWordECMA(m.text[pos-1])
		after := pos < len(m.text) && isWordECMA(m.text[pos])
		return (before != after) == (a == 'b')
	}
	return false
}

func isLineTerminator(r rune) bool {
	return r == '\n' || r == '\r' || r == 0x2028 || r == 0x2029
}

// search finds the leftmost match starting at or after from. With
// continuous it must start exactly at from; with notNull it must not be
// empty (std::regex's match_continuous and match_not_null).
//
// The alternatives are tried in order at each start, as one alternation
// would be. An alternative that begins with an unbounded repetition of a
// single character, X+ or X*, and fails at a start inside a run of X,
// also fails at every later start inside that run: the rest of it is then
// tried at a subset of the same end positions, and whether the rest
// matches depends only on where it starts. Skipping those starts keeps
// patterns like `\s+$` linear on long runs of spaces; a plain
// backtracking search is quadratic there.
func (m *reMatcher) search(re *regex, from int, continuous, notNull bool) (start, end int, ok bool) {
	var knownFail []int // per alternative: starts below this fail
	for s := from; s <= len(m.text); s++ {
		e := -1
		k := func(p int) bool {
			if notNull && p == s {
				return false
			}
			e = p
			return true
		}
		for i, alt := range re.alts {
			if knownFail != nil && s < knownFail[i] {
				continue
			}
			if m.match(alt, s, k) {
				return s, e, true
			}
			lead := re.leads[i]
			if lead == nil || continuous || s >= len(m.text) || !lead.oneChar(m.text, s) {
				continue
			}
			if knownFail == nil {
				knownFail = make([]int, len(re.alts))
			}
			if knownFail[i] <= s {
				r := s + 1
				for r < len(m.text) && lead.oneChar(m.text, r) {
					r++
				}
				knownFail[i] = r
			}
		}
		if continuous {
			break
		}
	}
	return 0, 0, false
}

// split refines a segmentation of text (given as piece lengths, in code
// points) the way llama.cpp's unicode_regex_split_stl does with
// std::regex_iterator: within each piece, every match becomes a piece and
// so does every stretch of text between matches. Empty matches produce
// empty pieces, as they do there; they tokenize to nothing.
func (re *regex) split(text []rune, offsets []int) []int {
	prepared := re.prepare(text)
	out := make([]int, 0, len(offsets))
	start := 0
	for _, n := range offsets {
		m := reMatcher{text: prepared[start : start+n]}
		last := 0
		pos, continuous, notNull := 0, false, false
		for {
			s, e, ok := m.search(re, pos, continuous, notNull)
			if !ok && continuous {
				// regex_iterator's retry after an empty match: when no
				// non-empty match starts right there, search again one
				// character further on.
				pos++
				continuous, notNull = false, false
				if pos > n {
					break
				}
				continue
			}
			if !ok {
				break
			}
			if s > last {
				out = append(out, s-last)
			}
			out = append(out, e-s)
			last = e
			pos = e
			if s == e {
				if e == n {
					break
				}
				continuous, notNull = true, true
			} else {
				continuous, notNull = false, false
			}
		}
		if last < n {
			out = append(out, n-last)
		}
		start += n
	}
	return out
}
