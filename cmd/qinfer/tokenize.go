package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"qinfer/host/gguf"
	"qinfer/host/tokenizer"
)

func init() {
	register(&command{
		name:  "tokenize",
		usage: "-m MODEL.gguf [-p TEXT] [--no-bos] [--special] [--json]",
		short: "print the token ids of a text (from -p or standard input)",
		run:   runTokenize,
	})
	register(&command{
		name:  "detokenize",
		usage: "-m MODEL.gguf [IDS...]",
		short: "print the text of token ids (arguments, or whitespace/comma-separated on standard input)",
		run:   runDetokenize,
	})
}

// openTokenizer reads only the vocabulary: no weights are touched.
func openTokenizer(path string) (*tokenizer.Tokenizer, func() error, error) {
	if path == "" {
		return nil, nil, usagef("no model: pass -m FILE.gguf")
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, nil, err
	}
	t, err := tokenizer.FromGGUF(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, f.Close, nil
}

func runTokenize(env *cliEnv, args []string) error {
	c := commands["tokenize"]
	fs := newFlagSet(env, c)
	path := fs.String("m", "", "model `FILE` (GGUF; only its vocabulary is read)")
	text := fs.String("p", "", "`TEXT` to tokenize (default: standard input)")
	noBOS := fs.Bool("no-bos", false, "do not add the BOS token even where the model asks for it")
	special := fs.Bool("special", false, "parse special tokens such as <s> written in the text")
	asJSON := fs.Bool("json", false, "print a JSON object with ids and pieces")
	return withCommon(env, fs, args, func(pos []string) error {
		if len(pos) > 0 {
			return usagef("unexpected argument %q (the text goes in -p or on standard input)", pos[0])
		}
		t, closeFn, err := openTokenizer(*path)
		if err != nil {
			return err
		}
		defer closeFn()
		s := *text
		if s == "" {
			b, err := io.ReadAll(env.stdin)
			if err != nil {
				return err
			}
			s = string(b)
		}
		ids, err := t.Encode(s, t.AddBOS() && !*noBOS, *special)
		if err != nil {
			return err
		}
		if *asJSON {
			pieces := make([]string, len(ids))
			for i, id := range ids {
				pieces[i] = string(t.TokenPiece(id))
			}
			return json.NewEncoder(env.stdout).Encode(struct {
				IDs    []int32  `json:"ids"`
				Pieces []string `json:"pieces"`
			}{nonNil(ids), pieces})
		}
		strs := make([]string, len(ids))
		for i, id := range ids {
			strs[i] = strconv.Itoa(int(id))
		}
		fmt.Fprintln(env.stdout, strings.Join(strs, " "))
		return nil
	})
}

func runDetokenize(env *cliEnv, args []string) error {
	c := commands["detokenize"]
	fs := newFlagSet(env, c)
	path := fs.String("m", "", "model `FILE` (GGUF; only its vocabulary is read)")
	return withCommon(env, fs, args, func(pos []string) error {
		t, closeFn, err := openTokenizer(*path)
		if err != nil {
			return err
		}
		defer closeFn()
		src := strings.Join(pos, " ")
		if len(pos) == 0 {
			b, err := io.ReadAll(env.stdin)
			if err != nil {
				return err
			}
			src = string(b)
		}
		ids, err := parseIDs(src, t.VocabSize())
		if err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, t.Decode(ids))
		return nil
	})
}

// parseIDs reads ids separated by spaces, commas or brackets (so a JSON
// array pastes in), each checked against the vocabulary.
func parseIDs(s string, vocab int) ([]int32, error) {
	f := strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == ',' || r == '\n' || r == '\t' || r == '\r' || r == '[' || r == ']'
	})
	ids := make([]int32, 0, len(f))
	for _, w := range f {
		v, err := strconv.Atoi(w)
		if err != nil {
			return nil, usagef("%q is not a token id", w)
		}
		if v < 0 || v >= vocab {
			return nil, usagef("token id %d outside the vocabulary of %d", v, vocab)
		}
		ids = append(ids, int32(v))
	}
	return ids, nil
}
