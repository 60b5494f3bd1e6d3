// Package builtin embeds qinfer's default model, so that the binary can
// show what it does without a model file: a 1-million-parameter llama
// trained by tools/train on the Go standard library's sources, stored as
// Q8_0 GGUF written by qinfer's own writer and quantizer, with a list of
// demo prompts it continues recognisably. It writes Go-like code and
// comments; it knows nothing else and is no assistant (see
// docs/default-model.md).
package builtin

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"qinfer/host/gguf"
)

// name is the model's general.name; the tests check that the embedded file
// says the same.
const name = "qinfer-gostd-1m"

//go:embed model.gguf
var modelGGUF []byte

//go:embed prompts.txt
var promptsText string

// Name returns the embedded model's name (its general.name).
func Name() string { return name }

// Model returns the embedded GGUF file. The bytes are the binary's own
// read-only data: callers must not modify them.
func Model() []byte { return modelGGUF }

// Open parses the embedded GGUF file. The result references Model()'s
// bytes; closing it is not required.
func Open() (*gguf.File, error) {
	f, err := gguf.Parse(modelGGUF)
	if err != nil {
		return nil, fmt.Errorf("embedded model %s: %w", name, err)
	}
	return f, nil
}

var prompts = sync.OnceValue(func() []string {
	// The embedded list is checked by the tests, so a parse error cannot
	// reach a release; the well-formed prompts are kept regardless.
	p, _ := ParsePrompts(promptsText)
	return p
})

// Prompts returns the demo prompts (a new slice each call).
func Prompts() []string { return append([]string(nil), prompts()...) }

// ParsePrompts reads the prompt list format of prompts.txt: one Go-quoted
// string a line (so that newlines and tabs, which code prompts need, are
// written as \n and \t), with blank lines and lines starting with # skipped.
// It returns the prompts that parse and an error naming the first line
// that does not.
func ParsePrompts(text string) ([]string, error) {
	var out []string
	var first error
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := strconv.Unquote(line)
		if err != nil || !strings.HasPrefix(line, `"`) {
			if first == nil {
				first = fmt.Errorf("prompts line %d: %q is not a double-quoted Go string", i+1, line)
			}
			continue
		}
		out = append(out, s)
	}
	return out, first
}
