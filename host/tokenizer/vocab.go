package tokenizer

import "fmt"

// TokenType is a vocabulary entry's type, as stored in
// tokenizer.ggml.token_type (llama.cpp's llama_token_type).
type TokenType = int32

// Token types.
const (
	TypeUndefined   TokenType = 0
	TypeNormal      TokenType = 1
	TypeUnknown     TokenType = 2
	TypeControl     TokenType = 3
	TypeUserDefined TokenType = 4
	TypeUnused      TokenType = 5
	TypeByte        TokenType = 6
)

// Model families (tokenizer.ggml.model).
const (
	ModelSPM = "llama"
	ModelBPE = "gpt2"
)

// NoToken marks an absent special token.
const NoToken int32 = -1

// Vocab is a tokenizer's definition as GGUF stores it under
// tokenizer.ggml.*. VocabFromGGUF fills it from a file with llama.cpp's
// defaults applied; NewVocab gives those defaults for building one by
// hand. New uses the fields as they are.
type Vocab struct {
	Model string // tokenizer.ggml.model: ModelSPM or ModelBPE
	Pre   string // tokenizer.ggml.pre: the BPE pre-tokenizer ("" means "default")

	Tokens []string  // id -> text; SPM texts use U+2581 for spaces, BPE texts GPT-2's byte alphabet
	Scores []float32 // SPM merge priorities (higher merges first); nil means all 0
	Types  []int32   // TokenType per id; nil means all TypeNormal
	Merges []string  // BPE merge rules "left right", highest priority first

	// Special token ids, NoToken when absent. EOT (end of turn) and EOM
	// (end of message) are found by their usual texts when not set.
	BOS, EOS, EOT, EOM, UNK, PAD int32

	AddBOS         bool // prepend BOS (tokenizer.ggml.add_bos_token)
	AddEOS         bool // append EOS (tokenizer.ggml.add_eos_token)
	AddSpacePrefix bool // SPM: tokenize text as if preceded by a space (tokenizer.ggml.add_space_prefix)

	// Name is general.name: llama.cpp keys a few per-model special-token
	// rules on it (Phi-3's special tokens swallow following whitespace).
	Name string
}

// NewVocab returns an empty vocabulary of the given family with the
// defaults llama.cpp applies when the file does not say otherwise: for
// "llama", BOS 1, EOS 2, UNK 0, a BOS added and a space prefix; for
// "gpt2", BOS and EOS 11 (none for the GLM family) and a BOS added only
// for the families that want one (llama3, tekken, chameleon).
func NewVocab(model, pre string) (*Vocab, error) {
	v := &Vocab{Model: model, Pre: pre, BOS: NoToken, EOS: NoToken, EOT: NoToken, EOM: NoToken, UNK: NoToken, PAD: NoToken}
	switch model {
	case ModelSPM:
		v.BOS, v.EOS, v.UNK = 1, 2, 0
		v.AddBOS = true
		v.AddSpacePrefix = true
	case ModelBPE:
		p, err := lookupPreType(pre)
		if err != nil {
			return nil, err
		}
		if !p.noBOS {
			v.BOS = 11
		}
		v.EOS = 11
		v.AddBOS = p.addBOS
	default:
		return nil, unknownModelError(model)
	}
	return v, nil
}

func unknownModelError(model string) error {
	return fmt.Errorf("tokenizer: unknown tokenizer model (tokenizer.ggml.model) %q; supported: %q (SentencePiece-style), %q (byte-level BPE)", model, ModelSPM, ModelBPE)
}
