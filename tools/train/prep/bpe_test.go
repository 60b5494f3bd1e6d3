package main

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/tokenizer"
)

func TestSplitWords(t *testing.T) {
	var got []string
	text := strings.ReplaceAll("if err != nil {\n\t\treturn x_1  ,y\n", " ", spaceMarker)
	splitWords(text, func(w string) { got = append(got, strings.ReplaceAll(w, spaceMarker, " ")) })
	assert.Equal(t, []string{"if", " err", " !=", " nil", " {", "\n\t\t", "return", " x_1", " ", " ,", "y", "\n"}, got)
	assert.Equal(t, text, strings.ReplaceAll(strings.Join(got, ""), " ", spaceMarker), "pieces cover the text")
}

func TestLearnVocabMergeOrder(t *testing.T) {
	// Words (spaces as ▁): abcd, ▁abcd, ▁ab x2, ▁abc x2. Pair counts by
	// hand: (a,b) 6, (▁,a) 5, (b,c) 4, (c,d) 2, so "ab" merges first;
	// then (▁,ab) 5 beats (ab,c) 4; then (▁ab,c) 3 beats (c,d) 2; after
	// that every pair occurs once and learning stops.
	texts := []string{"abcd abcd ab ab abc abc"}
	v, err := learnVocab(texts, vocabOptions{Size: nFixed + 20, MinCharCount: 1})
	require.NoError(t, err)
	tok, err := tokenizer.New(v)
	require.NoError(t, err)
	merged := v.Tokens[nFixed+5:] // after the alphabet ▁ a b c d
	assert.Equal(t, []string{"ab", "\u2581ab", "\u2581abc"}, merged)
	for i := 1; i < len(merged); i++ {
		assert.Greater(t, v.Scores[nFixed+5+i-1], v.Scores[nFixed+5+i], "scores replay the merge order")
	}
	assert.Equal(t, []string{"ab", "c", "d"}, pieces(t, tok, "abcd"))
	assert.Equal(t, []string{"\u2581abc"}, pieces(t, tok, " abc"))
}

func pieces(t *testing.T, tok *tokenizer.Tokenizer, text string) []string {
	ids, err := tok.Encode(text, false, false)
	require.NoError(t, err)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = tok.TokenText(id)
	}
	return out
}

func TestLearnVocabRoundTrip(t *testing.T) {
	// A small Go-like corpus; the vocabulary must be loadable by qinfer's
	// tokenizer, compress the corpus, be deterministic, and round-trip
	// text with characters outside its alphabet through byte fallback.
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"func", "return", "err", "nil", "if", "x", "for", ":=", "!=", "{", "}", "(", ")", "\n\t", "// comment"}
	var b strings.Builder
	for i := 0; i < 3000; i++ {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(2) == 0 {
			b.WriteByte(' ')
		}
	}
	corpus := b.String()
	opt := vocabOptions{Size: nFixed + 120, MinCharCount: 5}
	v, err := learnVocab([]string{corpus}, opt)
	require.NoError(t, err)
	assert.Len(t, v.Tokens, opt.Size)
	v2, err := learnVocab([]string{corpus}, opt)
	require.NoError(t, err)
	assert.Equal(t, v.Tokens, v2.Tokens, "learning is deterministic")

	tok, err := tokenizer.New(v)
	require.NoError(t, err)
	ids, err := tok.Encode(corpus, false, false)
	require.NoError(t, err)
	assert.Equal(t, corpus, tok.Decode(ids))
	assert.Less(t, len(ids), len(corpus)/3, "a vocabulary learned on the text compresses it")

	odd := "func é→ 世界 {\r\n\treturn nil\x01}"
	ids, err = tok.Encode(odd, true, false)
	require.NoError(t, err)
	assert.Equal(t, tok.BOS(), ids[0])
	assert.Equal(t, odd, tok.Decode(ids))
}

func TestLearnVocabErrors(t *testing.T) {
	_, err := learnVocab([]string{"abc"}, vocabOptions{Size: nFixed, MinCharCount: 1})
	assert.Error(t, err)
	_, err = learnVocab([]string{"abcdefgh"}, vocabOptions{Size: nFixed + 4, MinCharCount: 1})
	assert.ErrorContains(t, err, "alphabet")
}
