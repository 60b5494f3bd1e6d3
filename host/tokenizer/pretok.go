package tokenizer

import (
	"fmt"
	"sort"
	"strings"
)

// preType is how llama.cpp pre-tokenizes and post-processes one family of
// byte-level BPE vocabularies (tokenizer.ggml.pre).
type preType struct {
	// patterns split the text in turn: each refines the pieces the
	// previous one produced.
	patterns []string
	// ignoreMerges: a piece that is itself a vocabulary entry is emitted
	// whole, without running the merges (llama3, tekken).
	ignoreMerges bool
	// addBOS is llama.cpp's default for tokenizer.ggml.add_bos_token.
	addBOS bool
	// noBOS: the family has no BOS token unless the file names one.
	noBOS bool
	// keepSpaces disables clean_up_tokenization_spaces in Decode.
	keepSpaces bool
}

// The patterns, as llama.cpp's llm_tokenizer_bpe lists them per family.
const (
	patternDefaultPunct = `[\p{P}\$\+<=>\^~\|]+`
	patternFalconPunct  = "[\\p{P}\\$\\+<=>\\^~\\|`]+"
	patternNumbers      = `\p{N}+`
	patternDigits3      = `[0-9][0-9][0-9]`
	patternDigit        = `\p{N}`
	patternQwen2        = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patternPoro         = " ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+"
	patternCJK          = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
	patternDeepseek3CJK = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
	patternDeepseek3    = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
	patternTekken       = `[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patternGPT4o        = `[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patternBailing      = `'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+`
	patternSeedCoder    = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// deepseekLLMLetters is the cased-letter class of the DeepSeek LLM
// pre-tokenizer, written by code point because many of its members
// (Greek oxia forms, U+2126 OHM SIGN, U+212A KELVIN SIGN) are changed by
// Unicode normalisation if typed literally.
const deepseekLLMLetters = "A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af" +
	"\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5" +
	"\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba" +
	"\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45" +
	"\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe" +
	"\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc" +
	"\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134" +
	"\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee" +
	"\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf" +
	"\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3" +
	"\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943"

var (
	preDefault = preType{patterns: []string{patternDefaultPunct, patternGPT2, patternNumbers, patternDigits3}}
	preLlama3  = preType{patterns: []string{patternLlama3}, ignoreMerges: true, addBOS: true}
	preGPT2    = preType{patterns: []string{patternGPT2}}
	preStar    = preType{patterns: []string{patternDigit, patternGPT2}}
	preQwen2   = preType{patterns: []string{patternQwen2}}
	prePoro    = preType{patterns: []string{patternPoro}}
)

// keep marks a family for which llama.cpp turns clean_spaces off.
func keep(p preType) preType { p.keepSpaces = true; return p }

// preTypes maps tokenizer.ggml.pre to its behaviour, following
// llama.cpp's llama_vocab::impl::load.
var preTypes = map[string]preType{
	"default": preDefault,

	"llama3": preLlama3, "llama-v3": preLlama3, "llama-bpe": preLlama3, "falcon3": preLlama3,
	"falcon-h1": preLlama3, "pixtral": preLlama3, "midm-2.0": preLlama3, "lfm2": preLlama3,
	"dbrx":        {patterns: []string{patternLlama3}},
	"smaug-bpe":   {patterns: []string{patternLlama3}},
	"glm4":        {patterns: []string{patternLlama3}, noBOS: true},
	"chatglm-bpe": {patterns: []string{patternLlama3}, noBOS: true},

	"deepseek-llm": keep(preType{patterns: []string{"[\r\n]", `\s?[` + deepseekLLMLetters + `]+`,
		"\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+", `\s+$`, patternCJK, patternNumbers}}),
	"deepseek-coder": keep(preType{patterns: []string{"[\r\n]", `\s?\p{L}+`, `\s?\p{P}+`, patternCJK, patternDigit}}),
	"deepseek-v3":    keep(preType{patterns: []string{`\p{N}{1,3}`, patternDeepseek3CJK, patternDeepseek3}}),
	"hunyuan-dense":  keep(preType{patterns: []string{`\p{N}{1,3}`, patternDeepseek3CJK, patternDeepseek3}}),

	"falcon": {patterns: []string{patternFalconPunct, patternGPT2, patternDigits3}},

	"gpt-2": preGPT2, "phi-2": preGPT2, "jina-es": preGPT2, "jina-de": preGPT2, "gigachat": preGPT2,
	"jina-v2-es": preGPT2, "jina-v2-de": preGPT2, "a.x-4.0": preGPT2, "mellum": preGPT2,
	"exaone4": preGPT2, "mpt": preGPT2, "olmo": preGPT2, "jais": preGPT2,
	"trillion": keep(preGPT2),

	"starcoder": preStar, "refact": preStar, "codeshell": preStar, "exaone": preStar,
	"minerva-7b": preStar, "command-r": keep(preStar), "smollm": keep(preStar),

	"qwen2": keep(preQwen2), "deepseek-r1-qwen": keep(preQwen2), "hunyuan": keep(preQwen2),
	"grok-2": keep(preQwen2), "megrez": preQwen2, "stablelm2": preQwen2,

	"poro-chat": keep(prePoro), "bloom": prePoro, "gpt3-finnish": prePoro,
	"viking": keep(preType{patterns: []string{patternPoro, patternDigit}}),

	"tekken": {patterns: []string{patternTekken}, ignoreMerges: true, addBOS: true, keepSpaces: true},
	"chameleon": {patterns: []string{"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
		"([\\t\\n]|    |  )", patternDigit, "[\\p{P}!-/:-@\\[-`{-~]", patternGPT2}, addBOS: true, keepSpaces: true},

	"gpt-4o": keep(preType{patterns: []string{patternGPT4o}}), "llama4": keep(preType{patterns: []string{patternGPT4o}}),
	"minimax-m2": keep(preType{patterns: []string{patternGPT4o}}),

	"bailingmoe": keep(preType{patterns: []string{patternBailing}}), "bailingmoe2": keep(preType{patterns: []string{patternBailing}}),
	"llada-moe":  keep(preType{patterns: []string{patternBailing}}),
	"seed-coder": keep(preType{patterns: []string{patternSeedCoder}}),
}

// supportedPreTypes lists the accepted tokenizer.ggml.pre values, for
// error messages.
func supportedPreTypes() string {
	names := make([]string, 0, len(preTypes))
	for name := range preTypes {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func lookupPreType(pre string) (preType, error) {
	if pre == "" {
		// llama.cpp accepts a missing pre-tokenizer with a loud warning
		// ("generation quality will be degraded") and uses the default.
		pre = "default"
	}
	p, ok := preTypes[pre]
	if !ok {
		return preType{}, fmt.Errorf("tokenizer: unknown pre-tokenizer type (tokenizer.ggml.pre) %q; supported: %s", pre, supportedPreTypes())
	}
	return p, nil
}

// splitFunc refines a segmentation given as piece lengths in code points.
type splitFunc func(cpts []rune, offsets []int) []int

// preTokenizer is a compiled preType.
type preTokenizer struct {
	steps []splitFunc
}

func compilePreTokenizer(p preType) (*preTokenizer, error) {
	pt := &preTokenizer{}
	for _, pat := range p.patterns {
		switch pat {
		case patternGPT2:
			pt.steps = append(pt.steps, splitGPT2)
			continue
		case patternLlama3, patternLlama3CaseInsensitive:
			pt.steps = append(pt.steps, splitLlama3)
			continue
		}
		re, err := compileRegex(pat)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		pt.steps = append(pt.steps, re.split)
	}
	return pt, nil
}

// words splits text into the pieces BPE merges run on, each already
// mapped to GPT-2's byte-level alphabet. Like llama.cpp, it works on the
// code points of text (malformed UTF-8 becoming U+FFFD) and re-encodes
// them, so the words' bytes can differ from text's on malformed input.
func (pt *preTokenizer) words(text string) []string {
	cpts := decodeCodepoints(text)
	offsets := []int{len(cpts)}
	for _, step := range pt.steps {
		offsets = step(cpts, offsets)
	}
	words := make([]string, 0, len(offsets))
	var raw, enc []byte
	start := 0
	for _, n := range offsets {
		raw = raw[:0]
		for _, r := range cpts[start : start+n] {
			raw = appendCodepoint(raw, r)
		}
		start += n
		enc = byteEncode(enc[:0], raw)
		words = append(words, string(enc))
	}
	return words
}
