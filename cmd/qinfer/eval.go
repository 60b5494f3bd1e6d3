package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"qinfer/host/engine"
	"qinfer/host/gguf"
	"qinfer/host/model"
	"qinfer/host/qformat"
	"qinfer/host/quantize"
)

func init() {
	register(&command{
		name:  "eval",
		usage: "-m MODEL.gguf -f TEXT.txt [-c N] [--base BASE.gguf] [--json]",
		short: "perplexity of a text with llama.cpp's protocol (llama-perplexity); with --base, KL divergence and top-1 agreement to a base model",
		run:   runEval,
	})
}

func runEval(env *cliEnv, args []string) error {
	c := commands["eval"]
	fs := newFlagSet(env, c)
	var mf modelFlags
	var bf backendFlags
	mf.register(fs)
	bf.register(fs)
	textFile := fs.String("f", "", "text `FILE` to evaluate")
	chunk := fs.Int("c", 512, "chunk size in tokens: each chunk is scored on its second half")
	base := fs.String("base", "", "base model `FILE` (e.g. the unquantized original): also report KL divergence, top-1 agreement, sizes and bits per weight")
	asJSON := fs.Bool("json", false, "print JSON")
	return withCommon(env, fs, args, func(pos []string) error {
		if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		if *textFile == "" {
			return usagef("no text: pass -f TEXT.txt")
		}
		if *chunk < 2 {
			return usagef("-c %d: want at least 2", *chunk)
		}
		text, err := os.ReadFile(*textFile)
		if err != nil {
			return err
		}
		if mf.ctx < *chunk {
			mf.ctx = *chunk
		}
		if mf.maxBatch < *chunk {
			mf.maxBatch = *chunk
		}
		l, err := openModel(env, mf, bf, 1)
		if err != nil {
			return err
		}
		defer l.Close()
		ids, err := l.tok.Encode(string(text), true, false)
		if err != nil {
			return err
		}
		if *base != "" {
			return evalAgainstBase(env, l, mf.path, *base, *textFile, ids, *chunk, *asJSON)
		}
		e := engine.New(l.model, l.tok, l.be)
		e.SetGraphs(bf.graphs)
		start := time.Now()
		ppl, err := e.Perplexity(ids, *chunk)
		if err != nil {
			return err
		}
		el := time.Since(start)
		if *asJSON {
			return json.NewEncoder(env.stdout).Encode(struct {
				Model      string  `json:"model"`
				Text       string  `json:"text"`
				Ctx        int     `json:"ctx"`
				Tokens     int     `json:"tokens"`
				Chunks     int     `json:"chunks"`
				Perplexity float64 `json:"perplexity"`
				Seconds    float64 `json:"seconds"`
				Backend    string  `json:"backend"`
			}{mf.path, *textFile, *chunk, len(ids), ppl.Chunks, ppl.Value, el.Seconds(), l.choice.Backend})
		}
		fmt.Fprintf(env.stdout, "perplexity: %.4f over %d chunks of %d tokens (%d tokens in the text) in %.2f s on %s\n",
			ppl.Value, ppl.Chunks, *chunk, len(ids), el.Seconds(), l.choice.Backend)
		return nil
	})
}

// fileSize is a model's tensor data and weights as qinfer counts them
// (row-format scales included, their logical shapes for the weights).
type fileSize struct {
	File          string  `json:"file"`
	Bytes         uint64  `json:"bytes"`
	Params        uint64  `json:"params"`
	BitsPerWeight float64 `json:"bits_per_weight"`
}

func sizeOf(path string, f *gguf.File) (fileSize, error) {
	sums, err := qformat.Summarize(f)
	if err != nil {
		return fileSize{}, fmt.Errorf("%s: %w", path, err)
	}
	s := fileSize{File: path}
	for i := range sums {
		s.Bytes += sums[i].Bytes
		s.Params += sums[i].Elements()
	}
	if s.Params > 0 {
		s.BitsPerWeight = float64(s.Bytes) * 8 / float64(s.Params)
	}
	return s, nil
}

// evalAgainstBase loads the base model on the same backend and compares
// the two on the text, chunk by chunk.
func evalAgainstBase(env *cliEnv, l *loaded, modelPath, basePath, textFile string, ids []int32, chunk int, asJSON bool) error {
	bfile, err := gguf.Open(basePath)
	if err != nil {
		return err
	}
	defer bfile.Close()
	bm, err := model.Load(bfile, l.be, l.opt)
	if err != nil {
		return fmt.Errorf("%s: %w", basePath, err)
	}
	defer bm.Close()
	msize, err := sizeOf(modelPath, l.file)
	if err != nil {
		return err
	}
	bsize, err := sizeOf(basePath, bfile)
	if err != nil {
		return err
	}
	bos := int32(-1)
	if l.tok.AddBOS() {
		bos = l.tok.BOS()
	}
	bar := newBar(env, "eval")
	start := time.Now()
	cmp, err := quantize.Compare(bm, l.model, l.be, ids, chunk, bos, bar.update)
	bar.finish()
	if err != nil {
		return err
	}
	el := time.Since(start)
	if asJSON {
		return json.NewEncoder(env.stdout).Encode(struct {
			Model   fileSize             `json:"model"`
			Base    fileSize             `json:"base"`
			Text    string               `json:"text"`
			Tokens  int                  `json:"tokens"`
			Result  *quantize.Comparison `json:"result"`
			Seconds float64              `json:"seconds"`
			Backend string               `json:"backend"`
		}{msize, bsize, textFile, len(ids), cmp, el.Seconds(), l.choice.Backend})
	}
	w := env.stdout
	fmt.Fprintf(w, "model: %s, %.3f MiB, %.2f bits per weight\n", modelPath, float64(msize.Bytes)/(1<<20), msize.BitsPerWeight)
	fmt.Fprintf(w, "base:  %s, %.3f MiB, %.2f bits per weight\n", basePath, float64(bsize.Bytes)/(1<<20), bsize.BitsPerWeight)
	fmt.Fprintf(w, "perplexity: model %.4f ± %.4f, base %.4f ± %.4f (ratio %.5f) over %d chunks of %d tokens, %d scored\n",
		cmp.Model.Value, cmp.Model.StdErr, cmp.Base.Value, cmp.Base.StdErr, cmp.Model.Value/cmp.Base.Value, cmp.Chunks, cmp.Ctx, cmp.Scored)
	fmt.Fprintf(w, "KL divergence to base: mean %.6f, median %.6f, 99th percentile %.6f, max %.6f\n",
		cmp.KLD.Mean, cmp.KLD.Median, cmp.KLD.P99, cmp.KLD.Max)
	fmt.Fprintf(w, "top-1 agreement: %.2f%%\n", 100*cmp.Top1)
	fmt.Fprintf(w, "(%.2f s on %s)\n", el.Seconds(), l.choice.Backend)
	return nil
}
