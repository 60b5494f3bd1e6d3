package tokenizer

import "strings"

// mergePair is a merge rule's two sides.
type mergePair struct{ left, right string }

// parseMerges builds the rank table from tokenizer.ggml.merges. Like
// llama.cpp, a rule splits at its first space after the first byte (so a
// left side may itself start with a space), a rule without one becomes
// the empty pair, and the first occurrence of a duplicate rule wins.
func parseMerges(merges []string) map[mergePair]int {
	ranks := make(map[mergePair]int, len(merges))
	for i, m := range merges {
		var p mergePair
		if len(m) > 1 {
			if j := strings.IndexByte(m[1:], ' '); j >= 0 {
				p = mergePair{m[:j+1], m[j+2:]}
			}
		}
		if _, dup := ranks[p]; !dup {
			ranks[p] = i
		}
	}
	return ranks
}

type bpeBigram struct {
	left, right int
	rank        int
	size        int
}

// bpeBefore orders candidates: the lowest rank first, and of equal ranks
// the leftmost (llama.cpp's llm_bigram_bpe comparator).
func bpeBefore(a, b *bpeBigram) bool {
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.left < b.left
}

// encodeBPE tokenizes one fragment of raw text with llama.cpp's
// byte-level BPE (llm_tokenizer_bpe): pre-tokenize into words, map each
// word to GPT-2's byte alphabet, and within each word apply the merge with
// the lowest rank until none applies.
func (t *Tokenizer) encodeBPE(out []int32, fragment string) []int32 {
	for _, word := range t.pre.words(fragment) {
		out = t.mergeWord(out, word)
	}
	return out
}

func (t *Tokenizer) mergeWord(out []int32, word string) []int32 {
	if word == "" {
		return out
	}
	if t.ignoreMerges {
		if id, ok := t.tokenToID[word]; ok {
			return append(out, id)
		}
	}

	syms := charSymbols(word)

	q := bigramHeap[bpeBigram]{less: bpeBefore}
	tryAdd := func(left, right int) {
		if left < 0 || right < 0 {
			return
		}
		l, r := syms[left], syms[right]
		ls, rs := word[l.start:l.start+l.n], word[r.start:r.start+r.n]
		rank, ok := t.ranks[mergePair{ls, rs}]
		if !ok {
			return
		}
		q.push(bpeBigram{left: left, right: right, rank: rank, size: l.n + r.n})
	}
	mergeBigrams(syms, &q, tryAdd)

	for i := 0; i != -1; i = syms[i].next {
		s := syms[i]
		piece := word[s.start : s.start+s.n]
		if id, ok := t.tokenToID[piece]; ok {
			out = append(out, id)
			continue
		}
		// llama.cpp looks up each byte of the unknown piece as a
		// one-byte token and silently drops bytes without one; in a
		// byte-level vocabulary that covers all 256 byte characters this
		// never happens.
		for j := 0; j < len(piece); j++ {
			if id, ok := t.tokenToID[piece[j:j+1]]; ok {
				out = append(out, id)
			}
		}
	}
	return out
}
