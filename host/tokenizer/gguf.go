package tokenizer

import (
	"fmt"

	"qinfer/host/gguf"
)

// GGUF metadata keys of the tokenizer.
const (
	keyModel       = "tokenizer.ggml.model"
	keyPre         = "tokenizer.ggml.pre"
	keyTokens      = "tokenizer.ggml.tokens"
	keyScores      = "tokenizer.ggml.scores"
	keyTokenType   = "tokenizer.ggml.token_type"
	keyMerges      = "tokenizer.ggml.merges"
	keyBOS         = "tokenizer.ggml.bos_token_id"
	keyEOS         = "tokenizer.ggml.eos_token_id"
	keyEOT         = "tokenizer.ggml.eot_token_id"
	keyEOM         = "tokenizer.ggml.eom_token_id"
	keyUNK         = "tokenizer.ggml.unknown_token_id"
	keyPAD         = "tokenizer.ggml.padding_token_id"
	keyAddBOS      = "tokenizer.ggml.add_bos_token"
	keyAddEOS      = "tokenizer.ggml.add_eos_token"
	keyAddSpace    = "tokenizer.ggml.add_space_prefix"
	keyGeneralName = "general.name"
)

// VocabFromGGUF reads the tokenizer.ggml.* metadata of f, with llama.cpp's
// defaults for what is missing: the family's special ids and flags (see
// NewVocab), special ids that fall outside the vocabulary ignored (a
// default one disabled, a stored one replaced by the default), and a
// missing pre-tokenizer read as "default".
func VocabFromGGUF(f *gguf.File) (*Vocab, error) {
	model, ok := f.String(keyModel)
	if !ok {
		return nil, missingOrMistyped(f, keyModel, "string")
	}
	var pre string
	if _, present := f.Get(keyPre); present {
		if pre, ok = f.String(keyPre); !ok {
			return nil, missingOrMistyped(f, keyPre, "string")
		}
	}
	v, err := NewVocab(model, pre)
	if err != nil {
		return nil, err
	}

	if v.Tokens, ok = f.Strings(keyTokens); !ok {
		return nil, missingOrMistyped(f, keyTokens, "string array")
	}
	if _, present := f.Get(keyScores); present {
		if v.Scores, ok = f.Float32s(keyScores); !ok {
			// llama.cpp also accepts integer scores.
			ints, isInt := f.Int32s(keyScores)
			if !isInt {
				return nil, missingOrMistyped(f, keyScores, "float array")
			}
			v.Scores = make([]float32, len(ints))
			for i, s := range ints {
				v.Scores[i] = float32(s)
			}
		}
	}
	if _, present := f.Get(keyTokenType); present {
		if v.Types, ok = f.Int32s(keyTokenType); !ok {
			return nil, missingOrMistyped(f, keyTokenType, "integer array")
		}
	}
	if model == ModelBPE {
		if v.Merges, ok = f.Strings(keyMerges); !ok {
			return nil, missingOrMistyped(f, keyMerges, "string array")
		}
	}

	n := uint64(len(v.Tokens))
	for _, s := range []struct {
		key string
		id  *int32
	}{{keyBOS, &v.BOS}, {keyEOS, &v.EOS}, {keyEOT, &v.EOT}, {keyEOM, &v.EOM}, {keyUNK, &v.UNK}, {keyPAD, &v.PAD}} {
		if *s.id != NoToken && uint64(*s.id) >= n {
			*s.id = NoToken
		}
		// A negative or out-of-range stored id (some converters write -1
		// for "none") leaves the default in place, as in llama.cpp.
		val, present := f.Get(s.key)
		if !present {
			continue
		}
		id, ok := val.Uint()
		if !ok {
			if _, isInt := val.Int(); !isInt {
				return nil, missingOrMistyped(f, s.key, "integer")
			}
			continue
		}
		if id < n {
			*s.id = int32(id)
		}
	}

	for _, b := range []struct {
		key string
		dst *bool
	}{{keyAddBOS, &v.AddBOS}, {keyAddEOS, &v.AddEOS}, {keyAddSpace, &v.AddSpacePrefix}} {
		if _, present := f.Get(b.key); !present {
			continue
		}
		val, ok := f.Bool(b.key)
		if !ok {
			return nil, missingOrMistyped(f, b.key, "bool")
		}
		*b.dst = val
	}
	v.Name, _ = f.String(keyGeneralName)
	return v, nil
}

func missingOrMistyped(f *gguf.File, key, want string) error {
	val, present := f.Get(key)
	if !present {
		return fmt.Errorf("tokenizer: metadata key %s is missing", key)
	}
	return fmt.Errorf("tokenizer: metadata key %s is %s, want %s", key, val.Type, want)
}

// FromGGUF builds the tokenizer described by f's metadata.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	v, err := VocabFromGGUF(f)
	if err != nil {
		return nil, err
	}
	return New(v)
}
