package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"qinfer/host/backend"
	"qinfer/host/builtin"
	"qinfer/host/engine"
	"qinfer/host/gguf"
	"qinfer/host/model"
	"qinfer/host/tokenizer"
)

// backendFlags select and size the compute backend.
type backendFlags struct {
	device  string
	threads int
	graphs  bool
}

func (b *backendFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.device, "device", "auto", "backend: auto (CUDA when a usable GPU is found, else CPU), cuda or cpu")
	fs.IntVar(&b.threads, "threads", 0, "CPU worker threads (0: all cores)")
	fs.BoolVar(&b.graphs, "graphs", true, "cuda: replay steps of up to 64 tokens as CUDA graphs, one launch per step (false: kernel by kernel)")
}

// builtinPath names the embedded model in logs and tables.
const builtinPath = "(embedded default model)"

// modelFlags size what a loaded model allocates.
type modelFlags struct {
	path     string
	ctx      int
	maxBatch int
}

func (m *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.path, "m", "", "model `FILE` (GGUF; default: the small model embedded in qinfer)")
	fs.IntVar(&m.ctx, "ctx", 0, "context length per sequence (0: the model's, at most 4096)")
	fs.IntVar(&m.maxBatch, "ubatch", 512, "tokens per forward pass while processing prompts")
}

// loaded is an opened model on a backend; Close releases everything in
// reverse order.
type loaded struct {
	path   string // the model file, or builtinPath
	file   *gguf.File
	be     backend.Backend
	choice engine.Choice
	model  model.Model
	tok    *tokenizer.Tokenizer
	cfg    model.Config
	opt    model.Options
	load   time.Duration
}

func (l *loaded) Close() error {
	var errs []error
	if l.model != nil {
		errs = append(errs, l.model.Close())
	}
	if l.be != nil {
		errs = append(errs, l.be.Close())
	}
	if l.file != nil {
		errs = append(errs, l.file.Close())
	}
	return errors.Join(errs...)
}

// openModel maps the file, picks the backend, uploads the weights and
// builds the tokenizer. seqs is the number of sequences decoded together.
func openModel(env *cliEnv, mf modelFlags, bf backendFlags, seqs int) (*loaded, error) {
	return openModelWith(env, mf, bf, seqs, nil)
}

// openModelWith is openModel with a decorator put around the backend
// before any weight is uploaded (profile's op recorder).
func openModelWith(env *cliEnv, mf modelFlags, bf backendFlags, seqs int, wrap func(backend.Backend) backend.Backend) (*loaded, error) {
	start := time.Now()
	l := &loaded{}
	var err error
	if mf.path == "" {
		// No -m: the model embedded in the binary (host/builtin).
		if l.file, err = builtin.Open(); err != nil {
			return nil, err
		}
		mf.path = builtinPath
	} else if l.file, err = gguf.Open(mf.path); err != nil {
		return nil, err
	}
	fail := func(err error) (*loaded, error) {
		l.Close()
		return nil, err
	}
	if l.cfg, err = model.ConfigFromGGUF(l.file); err != nil {
		return fail(fmt.Errorf("%s: %w", mf.path, err))
	}
	if l.tok, err = tokenizer.FromGGUF(l.file); err != nil {
		return fail(fmt.Errorf("%s: %w", mf.path, err))
	}
	l.be, l.choice, err = engine.OpenBackend(bf.device, bf.threads, engine.ProbeOptions{}, env.log)
	if err != nil {
		return fail(err)
	}
	if wrap != nil {
		l.be = wrap(l.be)
	}
	var fileBytes int64
	for i := range l.file.Tensors {
		if n, err := l.file.Tensors[i].Bytes(); err == nil {
			fileBytes += int64(n)
		}
	}
	loadBar := newBar(env, "loading weights (KiB)")
	inner := l.be
	ctx := mf.ctx
	if ctx <= 0 {
		ctx = min(l.cfg.CtxTrain, 4096)
		if ctx <= 0 {
			ctx = 2048
		}
	}
	l.opt = model.Options{MaxBatch: max(mf.maxBatch, seqs), Ctx: ctx, Seqs: seqs, KVType: backend.F16}
	l.model, err = model.Load(l.file, &uploadProgress{Backend: inner, bar: loadBar, total: fileBytes}, l.opt)
	loadBar.finish()
	if err != nil {
		return fail(fmt.Errorf("%s: %w", mf.path, err))
	}
	l.load = time.Since(start)
	l.path = mf.path
	env.log.Info("model loaded", "file", mf.path, "arch", l.cfg.Arch, "backend", l.choice.Backend, "ctx", ctx, "seqs", seqs, "time", l.load.Round(time.Millisecond))
	return l, nil
}
