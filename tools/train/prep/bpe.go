package main

import (
	"fmt"
	"sort"
	"strings"
	"unicode"

	"qinfer/host/tokenizer"
)

// The vocabulary is SentencePiece-style ("llama" in GGUF): spaces are
// U+2581, every text character starts as its own symbol, and the encoder
// merges the adjacent pair whose concatenation has the highest score.
// Scores are minus the merge rank, so the encoder replays the merges in
// the order BPE learned them; characters outside the alphabet fall back
// to <0xXX> byte tokens.
const spaceMarker = "\u2581"

// Fixed ids at the start of the vocabulary, as in llama's tokenizer:
// unknown, BOS, EOS, then the 256 byte-fallback tokens.
const (
	idUNK       = 0
	idBOS       = 1
	idEOS       = 2
	firstByteID = 3
	nFixed      = firstByteID + 256
)

// vocabOptions bound what learnVocab builds.
type vocabOptions struct {
	Size         int // total tokens, fixed ones included
	MinCharCount int // a character rarer than this is spelled in bytes
}

// pair is two adjacent symbol ids.
type pair struct{ a, b int32 }

// word is a distinct pre-split piece of the corpus and its frequency.
type word struct {
	syms []int32
	n    int64
}

// learner runs byte-pair encoding over distinct words, keeping pair
// counts up to date incrementally: a merge touches only the words that
// contain the pair.
type learner struct {
	texts []string // symbol id -> text
	ids   map[string]int32
	words []word
	count map[pair]int64
	where map[pair][]int32 // words that contained the pair (may be stale or repeated)
	stamp []int            // per word: last merge that visited it
	visit int
}

// learnVocab learns a vocabulary of opt.Size tokens from texts.
func learnVocab(texts []string, opt vocabOptions) (*tokenizer.Vocab, error) {
	if opt.Size <= nFixed {
		return nil, fmt.Errorf("vocabulary size %d leaves no room beyond the %d fixed tokens", opt.Size, nFixed)
	}
	chars := map[rune]int64{}
	words := map[string]int64{}
	for _, t := range texts {
		t = strings.ReplaceAll(t, " ", spaceMarker)
		for _, r := range t {
			chars[r]++
		}
		splitWords(t, func(w string) { words[w]++ })
	}

	l := &learner{ids: map[string]int32{}, count: map[pair]int64{}, where: map[pair][]int32{}}
	alphabet := make([]rune, 0, len(chars))
	for r, n := range chars {
		if n >= int64(opt.MinCharCount) {
			alphabet = append(alphabet, r)
		}
	}
	// Most frequent first; the order only decides ids, and a fixed order
	// keeps the output reproducible.
	sort.Slice(alphabet, func(i, j int) bool {
		ni, nj := chars[alphabet[i]], chars[alphabet[j]]
		if ni != nj {
			return ni > nj
		}
		return alphabet[i] < alphabet[j]
	})
	if len(alphabet)+nFixed >= opt.Size {
		return nil, fmt.Errorf("alphabet of %d characters fills the %d-token vocabulary; raise the minimum character count", len(alphabet), opt.Size)
	}
	charID := make(map[rune]int32, len(alphabet))
	for _, r := range alphabet {
		charID[r] = l.symbol(string(r))
	}
	l.addWords(words, charID)

	for len(l.texts)+nFixed < opt.Size {
		p, n := l.best()
		if n < 2 {
			break
		}
		l.merge(p)
	}
	return l.vocab(alphabet)
}

// addWords converts the distinct words to symbol sequences. A character
// outside the alphabet splits its word: no merge may cross a byte
// fallback.
func (l *learner) addWords(words map[string]int64, charID map[rune]int32) {
	keys := make([]string, 0, len(words))
	for w := range words {
		keys = append(keys, w)
	}
	sort.Strings(keys)
	for _, w := range keys {
		var syms []int32
		flush := func() {
			if len(syms) > 1 {
				l.words = append(l.words, word{syms: syms, n: words[w]})
			}
			syms = nil
		}
		for _, r := range w {
			id, ok := charID[r]
			if !ok {
				flush()
				continue
			}
			syms = append(syms, id)
		}
		flush()
	}
	l.stamp = make([]int, len(l.words))
	for i := range l.words {
		l.addPairs(int32(i), 1)
	}
}

// addPairs adds (sign 1) or removes (sign -1) the adjacent pairs of word
// i, weighted by its frequency.
func (l *learner) addPairs(i int32, sign int64) {
	w := &l.words[i]
	for k := 0; k+1 < len(w.syms); k++ {
		p := pair{w.syms[k], w.syms[k+1]}
		c := l.count[p] + sign*w.n
		if c == 0 {
			delete(l.count, p)
		} else {
			l.count[p] = c
		}
		if sign > 0 {
			l.where[p] = append(l.where[p], i)
		}
	}
}

// symbol returns the id of a symbol text, adding it when new. Two merges
// can spell the same text ("a"+"bc", "ab"+"c"); they share one token.
func (l *learner) symbol(text string) int32 {
	if id, ok := l.ids[text]; ok {
		return id
	}
	id := int32(len(l.texts))
	l.texts = append(l.texts, text)
	l.ids[text] = id
	return id
}

// best returns the most frequent pair. Ties go to the pair whose merged
// text sorts first, then to the lower ids, so that learning does not
// depend on map order.
func (l *learner) best() (pair, int64) {
	var bp pair
	var bn int64
	var bt string
	for p, n := range l.count {
		if n < bn {
			continue
		}
		t := l.texts[p.a] + l.texts[p.b]
		if n > bn || t < bt || (t == bt && (p.a < bp.a || (p.a == bp.a && p.b < bp.b))) {
			bp, bn, bt = p, n, t
		}
	}
	return bp, bn
}

// merge replaces every occurrence of p by the symbol of its text.
func (l *learner) merge(p pair) {
	id := l.symbol(l.texts[p.a] + l.texts[p.b])
	l.visit++
	for _, i := range l.where[p] {
		if l.stamp[i] == l.visit {
			continue
		}
		l.stamp[i] = l.visit
		w := &l.words[i]
		if !contains(w.syms, p) {
			continue
		}
		l.addPairs(i, -1)
		out := w.syms[:0]
		for k := 0; k < len(w.syms); k++ {
			if k+1 < len(w.syms) && w.syms[k] == p.a && w.syms[k+1] == p.b {
				out = append(out, id)
				k++
				continue
			}
			out = append(out, w.syms[k])
		}
		w.syms = out
		l.addPairs(i, 1)
	}
	delete(l.where, p)
	delete(l.count, p)
}

func contains(syms []int32, p pair) bool {
	for k := 0; k+1 < len(syms); k++ {
		if syms[k] == p.a && syms[k+1] == p.b {
			return true
		}
	}
	return false
}

// vocab lays out the tokens: fixed ones, the alphabet, then the merged
// symbols in the order they were first made.
func (l *learner) vocab(alphabet []rune) (*tokenizer.Vocab, error) {
	merges := len(l.texts) - len(alphabet)
	v, err := tokenizer.NewVocab(tokenizer.ModelSPM, "")
	if err != nil {
		return nil, err
	}
	n := nFixed + len(l.texts)
	v.Tokens = make([]string, 0, n)
	v.Scores = make([]float32, 0, n)
	v.Types = make([]int32, 0, n)
	add := func(text string, score float32, typ int32) {
		v.Tokens = append(v.Tokens, text)
		v.Scores = append(v.Scores, score)
		v.Types = append(v.Types, typ)
	}
	add("<unk>", 0, tokenizer.TypeUnknown)
	add("<s>", 0, tokenizer.TypeControl)
	add("</s>", 0, tokenizer.TypeControl)
	for b := 0; b < 256; b++ {
		add(fmt.Sprintf("<0x%02X>", b), 0, tokenizer.TypeByte)
	}
	// Characters never result from a merge, so their scores only need to
	// rank below every merge.
	for i := range alphabet {
		add(l.texts[i], -float32(merges+i), tokenizer.TypeNormal)
	}
	for r := 0; r < merges; r++ {
		add(l.texts[len(alphabet)+r], -float32(r), tokenizer.TypeNormal)
	}
	v.UNK, v.BOS, v.EOS = idUNK, idBOS, idEOS
	v.AddBOS = true
	// The corpus is code: a space in front of "package" would be noise.
	v.AddSpacePrefix = false
	return v, nil
}

// charClass groups characters for splitWords.
func charClass(r rune) int {
	switch {
	case r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
		return 0 // identifier
	case r == '\u2581':
		return 1 // space
	case unicode.IsSpace(r):
		return 2 // other white space
	}
	return 3 // punctuation and symbols
}

// splitWords cuts text (spaces already U+2581) into the pieces BPE
// learns within: an identifier or a run of punctuation, each with at most
// one space in front, or a run of white space. The tokenizer itself does
// not split, so this only shapes which merges are learned: no token
// spans an identifier and the punctuation after it.
func splitWords(text string, yield func(string)) {
	rs := []rune(text)
	for i := 0; i < len(rs); {
		start := i
		c := charClass(rs[i])
		if c == 1 && i+1 < len(rs) && (charClass(rs[i+1]) == 0 || charClass(rs[i+1]) == 3) {
			i++
			c = charClass(rs[i])
		}
		switch c {
		case 0, 3:
			for i < len(rs) && charClass(rs[i]) == c {
				i++
			}
		default:
			for i < len(rs) {
				ci := charClass(rs[i])
				if ci != 1 && ci != 2 {
					break
				}
				// A last space before an identifier or punctuation
				// belongs to it.
				if ci == 1 && i > start && i+1 < len(rs) && (charClass(rs[i+1]) == 0 || charClass(rs[i+1]) == 3) {
					break
				}
				i++
			}
		}
		yield(string(rs[start:i]))
	}
}
