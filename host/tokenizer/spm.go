package tokenizer

import (
	"fmt"
	"strings"
)

// spaceMarker is SentencePiece's visible space, U+2581.
const spaceMarker = "\u2581"

// spmBigram is a candidate merge of two adjacent symbols.
type spmBigram struct {
	left, right int
	score       float32
	size        int
}

// spmBefore orders candidates: the highest score first, and of equal
// scores the leftmost, as llama.cpp's llm_bigram_spm comparator does.
func spmBefore(a, b *spmBigram) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.left < b.left
}

// encodeSPM tokenizes one fragment of raw text with llama.cpp's
// SentencePiece-style BPE (llm_tokenizer_spm): spaces become U+2581
// (after an optional leading space), every UTF-8 character starts as a
// symbol, and the adjacent pair whose concatenation is the vocabulary
// entry with the highest score is merged until none is left. Symbols that
// are not vocabulary entries fall back to one <0xXX> token per byte.
func (t *Tokenizer) encodeSPM(out []int32, fragment string, spacePrefix bool) ([]int32, error) {
	if spacePrefix {
		fragment = " " + fragment
	}
	text := strings.ReplaceAll(fragment, " ", spaceMarker)

	syms := charSymbols(text)

	q := bigramHeap[spmBigram]{less: spmBefore}
	tryAdd := func(left, right int) {
		if left < 0 || right < 0 {
			return
		}
		l := syms[left]
		piece := text[l.start : l.start+l.n+syms[right].n]
		id, ok := t.tokenToID[piece]
		if !ok {
			return
		}
		q.push(spmBigram{left: left, right: right, score: t.scores[id], size: len(piece)})
	}
	mergeBigrams(syms, &q, tryAdd)

	if len(syms) == 0 {
		return out, nil
	}
	for i := 0; i != -1; i = syms[i].next {
		s := syms[i]
		piece := text[s.start : s.start+s.n]
		if id, ok := t.tokenToID[piece]; ok {
			out = append(out, id)
			continue
		}
		// Every merge produces a vocabulary entry, so a symbol without one
		// is a single character the vocabulary lacks: spell it in bytes.
		for j := 0; j < len(piece); j++ {
			id := t.byteTokens[piece[j]]
			if id < 0 {
				return out, fmt.Errorf("tokenizer: byte 0x%02X of %q has no byte token (<0x%02X>) in the vocabulary", piece[j], piece, piece[j])
			}
			out = append(out, id)
		}
	}
	return out, nil
}
