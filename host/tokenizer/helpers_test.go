package tokenizer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/gguf"
	"qinfer/host/testenv"
)

// loadGGUFTokenizer opens a shared test file and builds its tokenizer,
// skipping when the test data is absent.
// Tokenizers are immutable, so tests share them.
func loadGGUFTokenizer(t testing.TB, rel ...string) *Tokenizer {
	t.Helper()
	path := testenv.Path(t, rel...)
	if tok, ok := loadedTokenizers.Load(path); ok {
		return tok.(*Tokenizer)
	}
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	tok, err := FromGGUF(f)
	require.NoError(t, err, "tokenizer of %s", path)
	loadedTokenizers.Store(path, tok)
	return tok
}

var loadedTokenizers sync.Map

// vocabCase is one input of llama.cpp's test-tokenizer-0 files.
type vocabCase struct {
	input string
	want  []int32
}

// readVocabCases parses X.inp (inputs separated by
// "\n__ggml_vocab_test__\n") and X.out (one line of ids per input) the way
// llama.cpp's test-tokenizer-0 reads them.
func readVocabCases(t testing.TB, inpPath, outPath string) []vocabCase {
	t.Helper()
	inp, err := os.ReadFile(inpPath)
	require.NoError(t, err)
	out, err := os.ReadFile(outPath)
	require.NoError(t, err)

	const sep = "\n__ggml_vocab_test__\n"
	var inputs []string
	raw := string(inp)
	for pos := 0; pos < len(raw); {
		next := strings.Index(raw[pos:], sep)
		if next < 0 {
			inputs = append(inputs, raw[pos:])
			break
		}
		inputs = append(inputs, raw[pos:pos+next])
		pos += next + len(sep)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	require.Len(t, lines, len(inputs), "%s and %s disagree on the number of cases", filepath.Base(inpPath), filepath.Base(outPath))

	cases := make([]vocabCase, len(inputs))
	for i, in := range inputs {
		cases[i].input = in
		cases[i].want = []int32{}
		for _, field := range strings.Fields(lines[i]) {
			id, err := strconv.ParseInt(field, 10, 32)
			require.NoError(t, err, "%s line %d", filepath.Base(outPath), i+1)
			cases[i].want = append(cases[i].want, int32(id))
		}
	}
	return cases
}

// textAlphabet is what random test text is drawn from: every class the
// pre-tokenizers distinguish (ASCII letters and digits, contractions,
// punctuation and symbols, ASCII and Unicode whitespace, accented, Greek,
// Cyrillic and CJK letters, combining marks, non-ASCII digits and
// numbers, emoji and other symbols, controls, unassigned and private-use
// code points).
var textAlphabet = []string{
	"a", "b", "e", "s", "t", "Z", "Q", "hello", "World", "the", "0", "1", "7", "42", "2024",
	"'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'RE", "'Ll", "'",
	".", ",", "!", "?", ";", ":", "-", "_", "(", ")", "[", "]", "{", "}", "\"", "#", "$", "%", "&",
	"*", "+", "/", "\\", "=", "^", "`", "|", "~", "@",
	" ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", "\v", "\f",
	"\u00a0", "\u3000", "\u2028", "\u2003", "\u0085",
	"é", "ü", "ß", "Ω", "λ", "Привет", "мир", "日本語", "中文", "한국어", "ﾊ", "ａ", "Ａ",
	"\u0301", "\u0308", "\u093f", "٣", "½", "Ⅻ", "²", "①",
	"🦙", "😀", "🚀", "✅", "😶\u200d🌫\ufe0f", "€", "©", "∑", "→",
	"\x01", "\x1f", "\x7f", "\u200b", "\u0378", "\ue000", "\U000e0001",
}

// randomText concatenates n random entries of textAlphabet.
func randomText(rng *rand.Rand, n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		sb.WriteString(textAlphabet[rng.IntN(len(textAlphabet))])
	}
	return sb.String()
}

// testdataVocab returns the path of a file in the shared vocab folder.
func testdataVocab(t testing.TB, name string) string {
	t.Helper()
	return testenv.Path(t, "vocab", name)
}

// pieces returns the pre-tokenizer's pieces before byte encoding.
func (pt *preTokenizer) pieces(text string) []string {
	cpts := decodeCodepoints(text)
	offsets := []int{len(cpts)}
	for _, step := range pt.steps {
		offsets = step(cpts, offsets)
	}
	out := make([]string, 0, len(offsets))
	start := 0
	for _, n := range offsets {
		var b []byte
		for _, r := range cpts[start : start+n] {
			b = appendCodepoint(b, r)
		}
		out = append(out, string(b))
		start += n
	}
	return out
}
