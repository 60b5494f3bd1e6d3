package tokenizer

import (
	"errors"
	"fmt"
	"strconv"
)

// attr is llama.cpp's llama_token_attr: token types as bit sets, because
// llama.cpp adds bits to a token's type (a control-looking text becomes
// control, Phi-3's special tokens strip whitespace).
type attr uint16

const (
	attrUndefined   attr = 0
	attrUnknown     attr = 1 << 0
	attrUnused      attr = 1 << 1
	attrNormal      attr = 1 << 2
	attrControl     attr = 1 << 3
	attrUserDefined attr = 1 << 4
	attrByte        attr = 1 << 5
	attrLStrip      attr = 1 << 7
	attrRStrip      attr = 1 << 8
)

func attrOfType(t TokenType) attr {
	switch t {
	case TypeNormal:
		return attrNormal
	case TypeUnknown:
		return attrUnknown
	case TypeControl:
		return attrControl
	case TypeUserDefined:
		return attrUserDefined
	case TypeUnused:
		return attrUnused
	case TypeByte:
		return attrByte
	}
	return attrUndefined
}

// Tokenizer turns text into token ids and back, as llama.cpp does for the
// same vocabulary.
type Tokenizer struct {
	spm    bool
	model  string
	tokens []string
	scores []float32
	attrs  []attr

	tokenToID map[string]int32

	// SPM: the byte-fallback token of each byte, -1 when missing.
	byteTokens [256]int32

	// BPE.
	ranks        map[mergePair]int
	pre          *preTokenizer
	ignoreMerges bool
	cleanSpaces  bool

	addBOS, addEOS, addSpacePrefix bool
	bos, eos, eot, eom, unk, pad   int32

	eog map[int32]bool
	// special lists the tokens the input is searched for before
	// tokenizing, longest text first.
	special []int32
	// pieces caches each token's text as decoded with special tokens
	// shown (llama.cpp's token-to-piece cache).
	pieces [][]byte
}

// New builds a tokenizer from v, which is not modified. It fails on an
// unknown model or pre-tokenizer type (naming the supported ones), a
// malformed vocabulary (duplicate entries, short score or type arrays,
// special ids out of range), or a BOS/EOS requested but absent.
func New(v *Vocab) (*Tokenizer, error) {
	if v == nil {
		return nil, errors.New("tokenizer: nil vocabulary")
	}
	t := &Tokenizer{
		model:          v.Model,
		addBOS:         v.AddBOS,
		addEOS:         v.AddEOS,
		addSpacePrefix: v.AddSpacePrefix,
		bos:            v.BOS, eos: v.EOS, eot: v.EOT, eom: v.EOM, unk: v.UNK, pad: v.PAD,
	}
	var pre preType
	switch v.Model {
	case ModelSPM:
		t.spm = true
	case ModelBPE:
		var err error
		if pre, err = lookupPreType(v.Pre); err != nil {
			return nil, err
		}
	default:
		return nil, unknownModelError(v.Model)
	}
	if err := t.loadTokens(v); err != nil {
		return nil, err
	}
	for _, s := range []struct {
		name string
		id   int32
	}{{"BOS", t.bos}, {"EOS", t.eos}, {"EOT", t.eot}, {"EOM", t.eom}, {"UNK", t.unk}, {"PAD", t.pad}} {
		if s.id != NoToken && (s.id < 0 || int(s.id) >= len(t.tokens)) {
			return nil, fmt.Errorf("tokenizer: %s token id %d outside the %d-token vocabulary", s.name, s.id, len(t.tokens))
		}
	}
	if t.addBOS && t.bos == NoToken {
		return nil, errors.New("tokenizer: add_bos_token is set but the vocabulary has no BOS token")
	}
	if t.addEOS && t.eos == NoToken {
		return nil, errors.New("tokenizer: add_eos_token is set but the vocabulary has no EOS token")
	}

	if t.spm {
		for b := 0; b < 256; b++ {
			t.byteTokens[b] = NoToken
			if id, ok := t.tokenToID[fmt.Sprintf("<0x%02X>", b)]; ok {
				t.byteTokens[b] = id
			} else if id, ok := t.tokenToID[string([]byte{byte(b)})]; ok {
				t.byteTokens[b] = id
			}
		}
	} else {
		pt, err := compilePreTokenizer(pre)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: pre-tokenizer %q: %w", v.Pre, err)
		}
		t.pre = pt
		t.ranks = parseMerges(v.Merges)
		t.ignoreMerges = pre.ignoreMerges
		t.cleanSpaces = !pre.keepSpaces
	}

	t.detectSpecial(v)
	t.buildPieces()
	return t, nil
}

func (t *Tokenizer) loadTokens(v *Vocab) error {
	n := len(v.Tokens)
	if n == 0 {
		return errors.New("tokenizer: empty vocabulary (tokenizer.ggml.tokens)")
	}
	if n > 1<<31-1 {
		return fmt.Errorf("tokenizer: %d tokens do not fit in int32 ids", n)
	}
	if v.Scores != nil && len(v.Scores) < n {
		return fmt.Errorf("tokenizer: %d scores (tokenizer.ggml.scores) for %d tokens", len(v.Scores), n)
	}
	if v.Types != nil && len(v.Types) < n {
		return fmt.Errorf("tokenizer: %d token types (tokenizer.ggml.token_type) for %d tokens", len(v.Types), n)
	}
	t.tokens = make([]string, n)
	t.scores = make([]float32, n)
	t.attrs = make([]attr, n)
	t.tokenToID = make(map[string]int32, n)
	for i, text := range v.Tokens {
		if text == "" {
			// llama.cpp gives empty entries a placeholder text so that
			// they neither collide nor match anything.
			text = "[EMPTY_" + strconv.Itoa(i) + "]"
		}
		if prev, dup := t.tokenToID[text]; dup {
			return fmt.Errorf("tokenizer: duplicate token %q has ids %d and %d", text, prev, i)
		}
		t.tokenToID[text] = int32(i)
		t.tokens[i] = text
		if v.Scores != nil {
			t.scores[i] = v.Scores[i]
		}
		t.attrs[i] = attrNormal
		if v.Types != nil {
			t.attrs[i] = attrOfType(v.Types[i])
		}
	}
	return nil
}

// Encode tokenizes text. addBOS prepends the BOS token (pass AddBOS() for
// what the model expects); EOS is never appended (see AddEOS).
// parseSpecial makes control tokens written in the text ("<|im_end|>",
// "</s>") encode as themselves; without it only user-defined tokens do,
// as in llama.cpp. Like llama.cpp, byte-level BPE reads malformed UTF-8 as
// U+FFFD, while SPM keeps every byte (byte fallback).
func (t *Tokenizer) Encode(text string, addBOS, parseSpecial bool) ([]int32, error) {
	out := make([]int32, 0, len(text)/3+2)
	if addBOS {
		if t.bos == NoToken {
			return nil, errors.New("tokenizer: BOS requested but the vocabulary has none")
		}
		out = append(out, t.bos)
	}
	// SPM prefixes a space to text at the start and after each special
	// token.
	prevSpecial := true
	for _, f := range t.partition(text, parseSpecial) {
		if f.token != NoToken {
			out = append(out, f.token)
			prevSpecial = true
			continue
		}
		raw := text[f.start:f.end]
		if t.spm {
			var err error
			if out, err = t.encodeSPM(out, raw, t.addSpacePrefix && prevSpecial); err != nil {
				return nil, err
			}
			prevSpecial = false
			continue
		}
		out = t.encodeBPE(out, raw)
	}
	return out, nil
}

// AddBOS reports whether the model expects a BOS token at the start of a
// prompt: tokenizer.ggml.add_bos_token, else llama.cpp's default for the
// tokenizer family.
func (t *Tokenizer) AddBOS() bool { return t.addBOS }

// AddEOS reports whether the model expects an EOS token appended to a
// prompt (tokenizer.ggml.add_eos_token); Encode leaves that to the caller.
func (t *Tokenizer) AddEOS() bool { return t.addEOS }

// BOS returns the beginning-of-sequence token, NoToken when absent.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS returns the end-of-sequence token, NoToken when absent.
func (t *Tokenizer) EOS() int32 { return t.eos }

// EOT returns the end-of-turn token, NoToken when absent.
func (t *Tokenizer) EOT() int32 { return t.eot }

// IsEOG reports whether generating id ends generation: EOS, EOT, EOM and
// the other end-of-generation tokens llama.cpp recognises by their text.
func (t *Tokenizer) IsEOG(id int32) bool { return t.eog[id] }

// VocabSize returns the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Model returns the tokenizer family, ModelSPM or ModelBPE.
func (t *Tokenizer) Model() string { return t.model }

// TokenText returns the vocabulary entry of id as stored (SPM spaces as
// U+2581, BPE bytes in GPT-2's alphabet), or "" for an invalid id.
func (t *Tokenizer) TokenText(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}
