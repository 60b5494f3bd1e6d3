// Package model holds the transformer architectures, each written once
// against backend.Backend: a Go struct per architecture whose Forward
// reads like the math, chosen by the file's general.architecture.
package model

import (
	"fmt"
	"sort"
	"strings"

	"qinfer/host/backend"
	"qinfer/host/gguf"
)

// Options size the buffers and the KV cache a loaded model owns.
type Options struct {
	// MaxBatch is the most tokens one Forward call takes (all sequences
	// together). Default 512, capped at Ctx*Seqs.
	MaxBatch int
	// Ctx is the context length of each sequence slot. Default: the
	// training context, capped at 4096.
	Ctx int
	// Seqs is the number of sequence slots in the KV cache (sequences
	// decoded together). Default 1.
	Seqs int
	// KVType is the cache element type: F16 (llama.cpp's default) or F32.
	// The zero value is F32 because F32 is DType 0; DefaultOptions sets
	// F16.
	KVType backend.DType
}

// DefaultOptions returns llama.cpp-like options: one sequence, F16 cache,
// context and batch from the model.
func DefaultOptions() Options { return Options{KVType: backend.F16} }

// withDefaults fills unset options and checks the rest against cfg.
func (o Options) withDefaults(cfg Config) (Options, error) {
	if o.Seqs <= 0 {
		o.Seqs = 1
	}
	if o.Ctx <= 0 {
		o.Ctx = min(cfg.CtxTrain, 4096)
		if o.Ctx <= 0 {
			o.Ctx = 4096
		}
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	o.MaxBatch = min(o.MaxBatch, o.Ctx*o.Seqs)
	if o.KVType != backend.F16 && o.KVType != backend.F32 {
		return o, fmt.Errorf("KV cache type %v is not supported (F16 or F32)", o.KVType)
	}
	return o, nil
}

// Model is a loaded model bound to one backend, with its KV cache and
// activation buffers.
type Model interface {
	Config() Config
	Options() Options
	// Forward runs the batch (filled with be.SetBatch) through the model,
	// storing keys and values in the cache, and writes the logits of the
	// batch's output rows to the first b.OutputLen() rows of logits.
	Forward(b backend.Batch, logits backend.Tensor) error
	// NewLogits returns a [MaxBatch][Vocab] buffer for Forward.
	NewLogits() (backend.Tensor, error)
	KV() backend.KVCache
	// Close frees the weights, buffers and cache on the backend.
	Close() error
}

// loader builds one architecture.
type loader func(f *gguf.File, be backend.Backend, cfg Config, opt Options) (Model, error)

var registry = map[string]loader{}

func register(arch string, l loader) { registry[arch] = l }

// Supported lists the architectures Load accepts (general.architecture
// values), sorted.
func Supported() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func unsupportedArch(arch string) error {
	if arch == "" {
		return fmt.Errorf("model file has no general.architecture (supported: %s)", strings.Join(Supported(), ", "))
	}
	return fmt.Errorf("unsupported model architecture %q (supported: %s)", arch, strings.Join(Supported(), ", "))
}

// Load reads f's architecture and uploads its weights to be. The weights
// reference f's mapped data where the backend allows, so f must stay open
// until the model is closed.
func Load(f *gguf.File, be backend.Backend, opt Options) (Model, error) {
	arch := f.Architecture()
	l, ok := registry[arch]
	if !ok {
		return nil, unsupportedArch(arch)
	}
	cfg, err := ConfigFromGGUF(f)
	if err != nil {
		return nil, err
	}
	opt, err = opt.withDefaults(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", arch, err)
	}
	m, err := l(f, be, cfg, opt)
	if err != nil {
		return nil, fmt.Errorf("load %s model: %w", arch, err)
	}
	return m, nil
}
