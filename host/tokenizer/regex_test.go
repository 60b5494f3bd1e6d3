package tokenizer

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The references below restate, independently of the implementation, how
// llama.cpp runs a pre-tokenizer pattern: on a text whose non-ASCII code
// points are replaced by category stand-ins (patterns with \p{..}) or
// whose non-ASCII whitespace becomes \v, with \p{X} turned into a class of
// the stand-in and X's ASCII members. Go's regexp then serves as the
// matcher: for patterns without lookahead its leftmost-first semantics
// are those of a backtracking ECMAScript engine. For patterns ending in
// `\s+(?!\S)|\s+` the whitespace alternatives are resolved by hand.

// Collapsed classes in Go syntax.
const (
	goL  = `\x{D2}A-Za-z`
	goN  = `\x{D1}0-9`
	goP  = `\x{D3}!-#%-*,-/:-;?-@\[-\]_{}`
	goS  = "\\x{D5}$+<->^`|"
	goM  = `\x{D4}`
	goWS = `\t-\r `
	// (?:'s|'t|'re|'ve|'m|'ll|'d), case-insensitive.
	goContractions = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])`
)

func refPrepare(cpts []rune, collapsed bool) []rune {
	out := make([]rune, len(cpts))
	for i, r := range cpts {
		ws := unicode.Is(unicode.White_Space, r)
		switch {
		case r < 0x80:
			out[i] = r
		case ws:
			out[i] = 0x0B
		case !collapsed:
			out[i] = r
		case unicode.IsLetter(r):
			out[i] = 0xD2
		case unicode.IsNumber(r):
			out[i] = 0xD1
		case unicode.IsPunct(r):
			out[i] = 0xD3
		case unicode.IsMark(r):
			out[i] = 0xD4
		case unicode.IsSymbol(r):
			out[i] = 0xD5
		default:
			out[i] = 0xD0
		}
	}
	return out
}

// refSplitter is a reference for one pattern.
type refSplitter struct {
	name      string
	pattern   string // llama.cpp's pattern
	collapsed bool
	// goPattern: the whole pattern (lookahead-free) or, with ws set, the
	// alternatives before `\s+(?!\S)`.
	goPattern string
	ws        bool // pattern ends in `\s+(?!\S)` ...
	wsPlain   bool // ... followed by `|\s+`
}

func (r refSplitter) split(text string) []string {
	cpts := []rune(text)
	prep := refPrepare(cpts, r.collapsed)
	var ends [][2]int
	if !r.ws {
		s := string(prep)
		re := regexp.MustCompile(r.goPattern)
		for _, loc := range re.FindAllStringIndex(s, -1) {
			ends = append(ends, [2]int{utf8.RuneCountInString(s[:loc[0]]), utf8.RuneCountInString(s[:loc[1]])})
		}
	} else {
		head := regexp.MustCompile(`^(?:` + r.goPattern + `)`)
		isWS := func(c rune) bool { return c == ' ' || (c >= '\t' && c <= '\r') }
		for s := 0; s < len(prep); {
			end := -1
			rest := string(prep[s:])
			if loc := head.FindStringIndex(rest); loc != nil && loc[1] > 0 {
				end = s + utf8.RuneCountInString(rest[:loc[1]])
			} else {
				n := 0
				for s+n < len(prep) && isWS(prep[s+n]) {
					n++
				}
				switch {
				case n > 0 && s+n == len(prep):
					end = s + n
				case n > 1:
					end = s + n - 1
				case n > 0 && r.wsPlain:
					end = s + n
				}
			}
			if end < 0 {
				s++
				continue
			}
			ends = append(ends, [2]int{s, end})
			s = end
		}
	}
	var out []string
	last := 0
	for _, m := range ends {
		if m[0] > last {
			out = append(out, string(cpts[last:m[0]]))
		}
		out = append(out, string(cpts[m[0]:m[1]]))
		last = m[1]
	}
	if last < len(cpts) {
		out = append(out, string(cpts[last:]))
	}
	return out
}

var refSplitters = []refSplitter{
	{name: "default-punct", pattern: patternDefaultPunct, collapsed: true, goPattern: `[` + goP + `\$\+<=>\^~\|]+`},
	{name: "falcon-punct", pattern: patternFalconPunct, collapsed: true, goPattern: `[` + goP + "\\$\\+<=>\\^~\\|`]+"},
	{name: "numbers", pattern: patternNumbers, collapsed: true, goPattern: `[` + goN + `]+`},
	{name: "digits3", pattern: patternDigits3, goPattern: `[0-9][0-9][0-9]`},
	{name: "digit", pattern: patternDigit, collapsed: true, goPattern: `[` + goN + `]`},
	{name: "numbers1-3", pattern: `\p{N}{1,3}`, collapsed: true, goPattern: `[` + goN + `]{1,3}`},
	{name: "poro", pattern: patternPoro, goPattern: ` ?[^(` + goWS + "|.,!?…。，、।۔،)]+"},
	{name: "cjk", pattern: patternCJK, goPattern: `[一-龥ࠀ-一가-퟿]+`},
	{name: "deepseek3-cjk", pattern: patternDeepseek3CJK, goPattern: `[一-龥぀-ゟ゠-ヿ]+`},
	{name: "newline", pattern: "[\r\n]", goPattern: `[\r\n]`},
	{name: "deepseek-llm-letters", pattern: `\s?[` + deepseekLLMLetters + `]+`, goPattern: `[` + goWS + `]?[` + deepseekLLMLetters + `]+`},
	{name: "deepseek-llm-punct", pattern: "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+", goPattern: `[` + goWS + `]?[!-/:-~！-／：-～‘-‟　-。]+`},
	{name: "trailing-space", pattern: `\s+$`, goPattern: `[` + goWS + `]+$`},
	{name: "space-letters", pattern: `\s?\p{L}+`, collapsed: true, goPattern: `[` + goWS + `]?[` + goL + `]+`},
	{name: "space-punct", pattern: `\s?\p{P}+`, collapsed: true, goPattern: `[` + goWS + `]?[` + goP + `]+`},
	{name: "chameleon-punct", pattern: "[\\p{P}!-/:-@\\[-`{-~]", collapsed: true, goPattern: `[` + goP + "!-/:-@\\[-`{-~]"},
	{name: "chameleon-spaces", pattern: "([\\t\\n]|    |  )", goPattern: `([\t\n]|    |  )`},

	{name: "gpt2", pattern: patternGPT2, collapsed: true, ws: true,
		goPattern: `'s|'t|'re|'ve|'m|'ll|'d| ?[` + goL + `]+| ?[` + goN + `]+| ?[^` + goWS + goL + goN + `]+`},
	{name: "llama3", pattern: patternLlama3, collapsed: true, ws: true, wsPlain: true,
		goPattern: goContractions + `|[^\r\n` + goL + goN + `]?[` + goL + `]+|[` + goN + `]{1,3}| ?[^` + goWS + goL + goN + `]+[\r\n]*|[` + goWS + `]*[\r\n]+`},
	{name: "qwen2", pattern: patternQwen2, collapsed: true, ws: true, wsPlain: true,
		goPattern: goContractions + `|[^\r\n` + goL + goN + `]?[` + goL + `]+|[` + goN + `]| ?[^` + goWS + goL + goN + `]+[\r\n]*|[` + goWS + `]*[\r\n]+`},
	{name: "deepseek3", pattern: patternDeepseek3, collapsed: true, ws: true, wsPlain: true,
		goPattern: "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n" + goL + goP + goS + `]?[` + goL + goM + `]+| ?[` + goP + goS + "]+[\r\n]*|[" + goWS + "]*[\r\n]+"},
	{name: "tekken", pattern: patternTekken, collapsed: true, ws: true, wsPlain: true,
		goPattern: `[^\r\n` + goL + goN + `]?[\x{D2}A-Z]*[\x{D2}a-z]+|[^\r\n` + goL + goN + `]?[\x{D2}A-Z]+[\x{D2}a-z]*|[` + goN + `]| ?[^` + goWS + goL + goN + `]+[\r\n/]*|[` + goWS + `]*[\r\n]+`},
	{name: "gpt4o", pattern: patternGPT4o, collapsed: true, ws: true, wsPlain: true,
		goPattern: `[^\r\n` + goL + goN + `]?[\x{D2}A-Z]*[\x{D2}a-z]+` + goContractions + `?|[^\r\n` + goL + goN + `]?[\x{D2}A-Z]+[\x{D2}a-z]*` + goContractions + `?|[` + goN + `]{1,3}| ?[^` + goWS + goL + goN + `]+[\r\n/]*|[` + goWS + `]*[\r\n]+`},
	{name: "bailing", pattern: patternBailing, collapsed: true, ws: true, wsPlain: true,
		goPattern: `'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n` + goL + goN + `]?[` + goL + `]+|[` + goN + `]| ?[^` + goWS + goL + goN + `]+[\r\n]*|[` + goWS + `]*[\r\n]`},
	{name: "seed-coder", pattern: patternSeedCoder, collapsed: true, ws: true, wsPlain: true,
		goPattern: goContractions + `|[^\r\n` + goL + goN + `]?[` + goL + `]+|[` + goN + `]{1}| ?[^` + goWS + goL + goN + `\r\n]+|[` + goWS + `]*[\r\n]+`},
}

func engineSplit(t *testing.T, re *regex, text string) []string {
	t.Helper()
	cpts := []rune(text)
	offsets := re.split(cpts, []int{len(cpts)})
	return piecesOf(cpts, offsets)
}

func piecesOf(cpts []rune, offsets []int) []string {
	var out []string
	start := 0
	for _, n := range offsets {
		out = append(out, string(cpts[start:start+n]))
		start += n
	}
	return out
}

// TestRegexEngineMatchesReference runs every pattern on random text with
// the regex engine and with the reference.
func TestRegexEngineMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, ref := range refSplitters {
		t.Run(ref.name, func(t *testing.T) {
			re, err := compileRegex(ref.pattern)
			require.NoError(t, err)
			require.Equal(t, ref.collapsed, re.collapsed)
			for i := 0; i < 300; i++ {
				text := randomText(rng, 1+rng.IntN(40))
				want := ref.split(text)
				got := engineSplit(t, re, text)
				require.Equal(t, want, got, "text %q", text)
				require.Equal(t, text, strings.Join(got, ""))
			}
		})
	}
}

// TestCustomSplittersMatchPatterns checks llama.cpp's hand-written GPT-2
// and Llama 3 splitters against their patterns, through the reference and
// through the regex engine.
func TestCustomSplittersMatchPatterns(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		name    string
		custom  splitFunc
		pattern string
	}{{"gpt2", splitGPT2, patternGPT2}, {"llama3", splitLlama3, patternLlama3}} {
		t.Run(c.name, func(t *testing.T) {
			var ref refSplitter
			for _, r := range refSplitters {
				if r.pattern == c.pattern {
					ref = r
				}
			}
			re, err := compileRegex(c.pattern)
			require.NoError(t, err)
			for i := 0; i < 2000; i++ {
				text := randomText(rng, 1+rng.IntN(30))
				cpts := []rune(text)
				got := piecesOf(cpts, c.custom(cpts, []int{len(cpts)}))
				require.Equal(t, ref.split(text), got, "text %q", text)
				require.Equal(t, engineSplit(t, re, text), got, "text %q", text)
			}
		})
	}
}

func TestPreTokenizerExamples(t *testing.T) {
	for _, c := range []struct {
		pre, text string
		want      []string
	}{
		{"gpt-2", "Hello world", []string{"Hello", " world"}},
		{"gpt-2", "I'm  here\t\n", []string{"I", "'m", " ", " here", "\t\n"}},
		{"gpt-2", "a  b", []string{"a", " ", " b"}},
		{"llama3", "12345 abc", []string{"123", "45", " abc"}},
		{"llama3", "Don'T!!\n\nok", []string{"Don", "'T", "!!\n\n", "ok"}},
		{"llama3", "a \n b", []string{"a", " \n", " b"}},
		{"qwen2", "12345", []string{"1", "2", "3", "4", "5"}},
		{"qwen2", "x   y", []string{"x", "  ", " y"}},
		{"default", "3141592 pie!", []string{"314", "159", "2", " pie", "!"}},
		{"starcoder", "v12 x", []string{"v", "1", "2", " x"}},
		{"falcon", "a+b=1234", []string{"a", "+", "b", "=", "123", "4"}},
		{"deepseek-llm", "Hello 世界 42!\n", []string{"Hello", " ", "世界", " ", "42", "!", "\n"}},
		{"poro-chat", "hei, maailma!", []string{"hei", ",", " maailma", "!"}},
		{"tekken", "HelloWorld", []string{"Hello", "World"}},
		{"gpt-4o", "camelCase's", []string{"camel", "Case's"}},
	} {
		p, err := lookupPreType(c.pre)
		require.NoError(t, err)
		pt, err := compilePreTokenizer(p)
		require.NoError(t, err)
		assert.Equal(t, c.want, pt.pieces(c.text), "%s: %q", c.pre, c.text)
	}
}

// TestAllPreTypesCompile makes sure every listed family's patterns parse
// and split random text losslessly.
func TestAllPreTypesCompile(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for name, p := range preTypes {
		pt, err := compilePreTokenizer(p)
		require.NoError(t, err, name)
		for i := 0; i < 20; i++ {
			text := randomText(rng, 1+rng.IntN(30))
			assert.Equal(t, text, strings.Join(pt.pieces(text), ""), "%s: %q", name, text)
		}
	}
}

func TestRegexSemantics(t *testing.T) {
	for _, c := range []struct {
		pattern, text string
		want          []string
	}{
		// Ordered alternation: the first alternative that matches wins.
		{`a|ab`, "ab", []string{"a", "b"}},
		{`ab|a`, "ab", []string{"ab"}},
		// Greedy and lazy repetition, counted repetition.
		{`a+?`, "aaa", []string{"a", "a", "a"}},
		{`a{2}`, "aaaaa", []string{"aa", "aa", "a"}},
		{`a{2,}b`, "aaab", []string{"aaab"}},
		// Empty matches split like std::regex_iterator: "" at 0, "aa", ""
		// at 3 and at 4.
		{`a*`, "baab", []string{"", "b", "aa", "", "b", ""}},
		// Lookahead is atomic and zero-width.
		{`\s+(?!\S)`, "a   b", []string{"a", "  ", " b"}},
		{`x(?=y)`, "xyxz", []string{"x", "yxz"}},
		{`x(?!y)`, "xyxz", []string{"xy", "x", "z"}},
		// Anchors.
		{`\s+$`, "a  b  ", []string{"a  b", "  "}},
		{`^a`, "aa", []string{"a", "a"}},
		// Escapes and classes.
		{`[\d\-]+`, "12-3x", []string{"12-3", "x"}},
		{`[^\w]+`, "ab, cd", []string{"ab", ", ", "cd"}},
		{`\x41\u0042`, "xAB", []string{"x", "AB"}},
		{`[\]\[]`, "a]b", []string{"a", "]", "b"}},
		{`a.c`, "abc\na\nc", []string{"abc", "\na\nc"}},
		{`\bfoo\b`, "foo food", []string{"foo", " food"}},
	} {
		re, err := compileRegex(c.pattern)
		require.NoError(t, err, c.pattern)
		assert.Equal(t, c.want, engineSplit(t, re, c.text), "%s on %q", c.pattern, c.text)
	}
}

func TestRegexErrors(t *testing.T) {
	for _, p := range []string{`(ab`, `[ab`, `*a`, `a\1`, `\p{Han}+`, `\p{L}é`, `(?<x>a)`, `a\q`, `[b-a]`, `\u12`} {
		_, err := compileRegex(p)
		assert.Error(t, err, p)
	}
}

// TestPreTokenizersLinearOnLongRuns guards against backtracking blow-ups
// on adversarial prompts: each input takes milliseconds when the search
// is linear and minutes when it is quadratic.
func TestPreTokenizersLinearOnLongRuns(t *testing.T) {
	const n = 100000
	for _, c := range []struct{ pre, text string }{
		{"deepseek-llm", strings.Repeat(" ", n) + "1"}, // `\s+$` fails at every start in the run
		{"deepseek-coder", strings.Repeat(" ", n) + "1"},
		{"qwen2", strings.Repeat(" ", n) + "x"},
		{"tekken", strings.Repeat("A", n)}, // ((?=[\p{L}])([^a-z]))* over the whole run
		{"gpt-4o", strings.Repeat("Ab", n/2)},
		{"deepseek-v3", strings.Repeat("é", n)},
	} {
		p, err := lookupPreType(c.pre)
		require.NoError(t, err)
		pt, err := compilePreTokenizer(p)
		require.NoError(t, err)
		start := time.Now()
		pieces := pt.pieces(c.text)
		assert.Equal(t, c.text, strings.Join(pieces, ""))
		assert.Less(t, time.Since(start), 5*time.Second, "%s on a %d-character run", c.pre, n)
	}
}
