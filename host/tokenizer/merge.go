package tokenizer

// Both tokenizer families merge adjacent symbols, best candidate first,
// starting from one symbol per character.

// symbol is a span of the text being merged, linked to its neighbours.
// Merging folds the right symbol into the left one and empties it.
type symbol struct {
	prev, next int
	start, n   int // byte span in the text
}

// charSymbols splits text into one symbol per UTF-8 character, sized by
// the lead byte alone as llama.cpp does (so malformed input still splits
// into spans that cover every byte).
func charSymbols(text string) []symbol {
	syms := make([]symbol, 0, len(text))
	for offs := 0; offs < len(text); {
		n := min(utf8SeqLen(text[offs]), len(text)-offs)
		i := len(syms)
		next := i + 1
		if offs+n == len(text) {
			next = -1
		}
		syms = append(syms, symbol{prev: i - 1, next: next, start: offs, n: n})
		offs += n
	}
	return syms
}

// bigram is a merge candidate: symbols left and right, whose merged span
// is size bytes long.
type bigram interface {
	span() (left, right, size int)
}

func (b bpeBigram) span() (int, int, int) { return b.left, b.right, b.size }
func (b spmBigram) span() (int, int, int) { return b.left, b.right, b.size }

// mergeBigrams is the merge loop of both families: every adjacent pair
// is offered to tryAdd (which pushes the pairs the vocabulary has onto
// q), then the best candidate still current is merged and its new
// neighbours offered, until none is left. A candidate is stale when
// either side was merged away or its size changed: llama.cpp compares
// the texts, but a left symbol only grows by absorbing its right
// neighbour, so unchanged sizes mean unchanged texts.
func mergeBigrams[B bigram](syms []symbol, q *bigramHeap[B], tryAdd func(left, right int)) {
	for i := 1; i < len(syms); i++ {
		tryAdd(i-1, i)
	}
	for q.len() > 0 {
		left, right, size := q.pop().span()
		l, r := &syms[left], &syms[right]
		if l.n == 0 || r.n == 0 || l.n+r.n != size {
			continue
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = left
		}
		tryAdd(l.prev, left)
		tryAdd(left, l.next)
	}
}

// bigramHeap is a binary heap of merge candidates. It exists instead of
// container/heap because boxing every candidate in an interface costs an
// allocation per push, which dominated tokenization time.
type bigramHeap[T any] struct {
	items []T
	less  func(a, b *T) bool // a pops before b
}

func (h *bigramHeap[T]) len() int { return len(h.items) }

func (h *bigramHeap[T]) push(x T) {
	h.items = append(h.items, x)
	for i := len(h.items) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h.less(&h.items[i], &h.items[parent]) {
			break
		}
		h.items[i], h.items[parent] = h.items[parent], h.items[i]
		i = parent
	}
}

func (h *bigramHeap[T]) pop() T {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && h.less(&h.items[l], &h.items[m]) {
			m = l
		}
		if r < last && h.less(&h.items[r], &h.items[m]) {
			m = r
		}
		if m == i {
			break
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
	return top
}
