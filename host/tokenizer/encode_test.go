package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/gguf"
	"qinfer/host/testenv"
)

// rawVocab is a vocabulary read straight from a GGUF file, for the
// reference tokenizers below.
type rawVocab struct {
	ids    map[string]int32
	scores []float32
	ranks  map[[2]string]int
}

func readRawVocab(t *testing.T, rel ...string) rawVocab {
	t.Helper()
	f, err := gguf.Open(testenv.Path(t, rel...))
	require.NoError(t, err)
	defer f.Close()
	tokens, ok := f.Strings("tokenizer.ggml.tokens")
	require.True(t, ok)
	rv := rawVocab{ids: map[string]int32{}, ranks: map[[2]string]int{}}
	for i, s := range tokens {
		rv.ids[s] = int32(i)
	}
	rv.scores, _ = f.Float32s("tokenizer.ggml.scores")
	merges, _ := f.Strings("tokenizer.ggml.merges")
	for i, m := range merges {
		l, r, ok := strings.Cut(m, " ")
		require.True(t, ok, m)
		if _, dup := rv.ranks[[2]string{l, r}]; !dup {
			rv.ranks[[2]string{l, r}] = i
		}
	}
	return rv
}

// refSPM is SentencePiece BPE in its plainest form: starting from single
// characters, merge the adjacent pair whose concatenation is the
// vocabulary entry with the highest score (the leftmost of equals) until
// no pair is in the vocabulary; spell what is not in it in byte tokens.
func (rv rawVocab) refSPM(text string) []int32 {
	s := strings.ReplaceAll(" "+text, " ", "▁")
	var syms []string
	for _, r := range s {
		syms = append(syms, string(r))
	}
	for {
		best := -1
		var bestScore float32
		for i := 0; i+1 < len(syms); i++ {
			if id, ok := rv.ids[syms[i]+syms[i+1]]; ok && (best < 0 || rv.scores[id] > bestScore) {
				best, bestScore = i, rv.scores[id]
			}
		}
		if best < 0 {
			break
		}
		syms[best] += syms[best+1]
		syms = slices.Delete(syms, best+1, best+2)
	}
	var out []int32
	for _, sym := range syms {
		if id, ok := rv.ids[sym]; ok {
			out = append(out, id)
			continue
		}
		for _, b := range []byte(sym) {
			out = append(out, rv.ids[fmt.Sprintf("<0x%02X>", b)])
		}
	}
	return out
}

// refBPE merges each (byte-encoded) word by repeatedly applying the rule
// of lowest rank (leftmost of equals).
func (rv rawVocab) refBPE(words []string) []int32 {
	var out []int32
	for _, w := range words {
		var syms []string
		for _, r := range w {
			syms = append(syms, string(r))
		}
		for {
			best, bestRank := -1, 0
			for i := 0; i+1 < len(syms); i++ {
				if rank, ok := rv.ranks[[2]string{syms[i], syms[i+1]}]; ok && (best < 0 || rank < bestRank) {
					best, bestRank = i, rank
				}
			}
			if best < 0 {
				break
			}
			syms[best] += syms[best+1]
			syms = slices.Delete(syms, best+1, best+2)
		}
		for _, sym := range syms {
			out = append(out, rv.ids[sym])
		}
	}
	return out
}

func TestSPMMatchesReference(t *testing.T) {
	tok := loadGGUFTokenizer(t, "vocab", "ggml-vocab-llama-spm.gguf")
	rv := readRawVocab(t, "vocab", "ggml-vocab-llama-spm.gguf")
	rng := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 300; i++ {
		text := randomText(rng, 1+rng.IntN(40))
		got, err := tok.Encode(text, false, false)
		require.NoError(t, err)
		require.Equal(t, rv.refSPM(text), got, "text %q", text)
	}
}

func TestBPEMatchesReference(t *testing.T) {
	tok := loadGGUFTokenizer(t, "vocab", "ggml-vocab-gpt-2.gguf")
	rv := readRawVocab(t, "vocab", "ggml-vocab-gpt-2.gguf")
	rng := rand.New(rand.NewPCG(9, 10))
	for i := 0; i < 300; i++ {
		text := randomText(rng, 1+rng.IntN(40))
		got, err := tok.Encode(text, false, false)
		require.NoError(t, err)
		require.Equal(t, rv.refBPE(tok.pre.words(text)), got, "text %q", text)
	}
}

// refCleanUp states clean_up_tokenization_spaces as plain replacements.
func refCleanUp(s string) string {
	for _, p := range []string{"?", "!", ".", ","} {
		s = strings.ReplaceAll(s, " "+p, p)
	}
	s = strings.ReplaceAll(s, " ' ", "'")
	for _, c := range []string{"s", "m", "re", "ve"} {
		s = strings.ReplaceAll(s, " '"+c, "'"+c)
	}
	return s
}

func TestRoundTripSPM(t *testing.T) {
	tok := loadGGUFTokenizer(t, "vocab", "ggml-vocab-llama-spm.gguf")
	rng := rand.New(rand.NewPCG(11, 12))
	for i := 0; i < 300; i++ {
		text := randomText(rng, 1+rng.IntN(40))
		ids, err := tok.Encode(text, false, false)
		require.NoError(t, err)
		require.Equal(t, text, tok.Decode(ids), "ids %v", ids)

		withBOS, err := tok.Encode(text, true, false)
		require.NoError(t, err)
		require.Equal(t, append([]int32{tok.BOS()}, ids...), withBOS)
		require.Equal(t, " "+text, tok.Decode(withBOS))
	}
}

func TestRoundTripBPE(t *testing.T) {
	tok := loadGGUFTokenizer(t, "vocab", "ggml-vocab-gpt-2.gguf")
	rng := rand.New(rand.NewPCG(13, 14))
	for i := 0; i < 300; i++ {
		text := randomText(rng, 1+rng.IntN(40))
		ids, err := tok.Encode(text, false, false)
		require.NoError(t, err)
		var raw []byte
		for _, id := range ids {
			raw = append(raw, tok.TokenPiece(id)...)
		}
		require.Equal(t, text, string(raw), "ids %v", ids)
		require.Equal(t, refCleanUp(text), tok.Decode(ids), "ids %v", ids)
	}
}

// TestConcurrentUse shares tokenizers between goroutines; run with -race.
func TestConcurrentUse(t *testing.T) {
	toks := []*Tokenizer{
		loadGGUFTokenizer(t, "vocab", "ggml-vocab-llama-spm.gguf"),
		loadGGUFTokenizer(t, "vocab", "ggml-vocab-gpt-2.gguf"),
	}
	want := make([][]int32, len(toks))
	const text = "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～"
	for i, tok := range toks {
		ids, err := tok.Encode(text, false, true)
		require.NoError(t, err)
		want[i] = ids
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, tok := range toks {
				ids, err := tok.Encode(text, false, true)
				assert.NoError(t, err)
				assert.Equal(t, want[i], ids)
				_ = tok.Decode(ids)
			}
		}()
	}
	wg.Wait()
}
