// Command evaluate measures the converted default model with qinfer
// itself on the CPU backend: perplexity on the held-out files (the same
// chunks train.py scores with the float model, with llama-perplexity's
// protocol) and completions of the demo prompts, greedy and sampled.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"qinfer/fallback"
	"qinfer/host/backend"
	"qinfer/host/builtin"
	"qinfer/host/engine"
	"qinfer/host/gguf"
	"qinfer/host/model"
	"qinfer/host/tokenizer"
)

// report is eval.json.
type report struct {
	Model         string       `json:"model"`
	Bytes         int64        `json:"bytes"`
	Ctx           int          `json:"ctx"`
	Chunks        int          `json:"chunks"`
	ScoredTokens  int          `json:"scored_tokens"`
	Perplexity    float64      `json:"perplexity_qinfer_q8_0"`
	StdErr        float64      `json:"perplexity_qinfer_stderr"`
	PythonPPL     float64      `json:"perplexity_python_f32,omitempty"`
	EvalSeconds   float64      `json:"eval_seconds"`
	Completions   []completion `json:"completions"`
	GenTokPerSec  float64      `json:"gen_tokens_per_second"`
	Backend       string       `json:"backend"`
	SamplerConfig string       `json:"sampler"`
}

type completion struct {
	Prompt  string `json:"prompt"`
	Greedy  string `json:"greedy"`
	Sampled string `json:"sampled"`
}

func main() {
	modelPath := flag.String("model", "", "GGUF model (required)")
	evalPath := flag.String("eval", "", "held-out ids from prep (eval.bin, uint16 little-endian)")
	chunks := flag.Int("chunks", 64, "evenly spaced chunks of the context length to score")
	prompts := flag.String("prompts", "", "demo prompts file (one Go-quoted string a line)")
	pyEval := flag.String("python", "", "train.py's eval-python.json, to report beside qinfer's figure")
	genTokens := flag.Int("n", 64, "tokens to generate per prompt")
	threads := flag.Int("threads", 2, "CPU threads")
	out := flag.String("out", "", "write the report as JSON here")
	flag.Parse()
	if *modelPath == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*modelPath, *evalPath, *prompts, *pyEval, *out, *chunks, *genTokens, *threads); err != nil {
		log.Fatalf("evaluate: %v", err)
	}
}

func run(modelPath, evalPath, promptsPath, pyEval, out string, chunks, genTokens, threads int) error {
	f, err := gguf.Open(modelPath)
	if err != nil {
		return err
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return fmt.Errorf("%s: %w", modelPath, err)
	}
	cfg, err := model.ConfigFromGGUF(f)
	if err != nil {
		return fmt.Errorf("%s: %w", modelPath, err)
	}
	be, err := fallback.New(threads)
	if err != nil {
		return err
	}
	defer be.Close()
	m, err := model.Load(f, be, model.Options{Ctx: cfg.CtxTrain, Seqs: 8, MaxBatch: 512, KVType: backend.F16})
	if err != nil {
		return fmt.Errorf("%s: %w", modelPath, err)
	}
	defer m.Close()
	e := engine.New(m, tok, be)
	defer e.Close()
	rep := report{Model: modelPath, Bytes: f.Size(), Ctx: cfg.CtxTrain, Backend: be.Info().Name}

	if evalPath != "" {
		ids, err := readIDs(evalPath)
		if err != nil {
			return err
		}
		sel := spacedChunks(ids, cfg.CtxTrain, chunks)
		t0 := time.Now()
		ppl, err := e.Perplexity(sel, cfg.CtxTrain)
		if err != nil {
			return err
		}
		rep.EvalSeconds = time.Since(t0).Seconds()
		rep.Chunks, rep.ScoredTokens, rep.Perplexity, rep.StdErr = ppl.Chunks, ppl.Tokens, ppl.Value, ppl.StdErr
		log.Printf("held-out perplexity (qinfer, Q8_0, CPU): %.3f +/- %.3f over %d chunks of %d (%d scored tokens) in %.1f s",
			ppl.Value, ppl.StdErr, ppl.Chunks, cfg.CtxTrain, ppl.Tokens, rep.EvalSeconds)
	}
	if pyEval != "" {
		var py struct {
			Perplexity float64 `json:"perplexity"`
		}
		b, err := os.ReadFile(pyEval)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &py); err != nil {
			return fmt.Errorf("%s: %w", pyEval, err)
		}
		rep.PythonPPL = py.Perplexity
		log.Printf("held-out perplexity (PyTorch, float32): %.3f", py.Perplexity)
	}

	if promptsPath != "" {
		texts, err := readPrompts(promptsPath)
		if err != nil {
			return err
		}
		sampled := engine.SamplerConfig{Temp: 0.7, TopK: 40, TopP: 0.95, RepeatPenalty: 1.1, Seed: 1}
		rep.SamplerConfig = fmt.Sprintf("%+v", sampled)
		greedy, st, err := generate(e, texts, engine.SamplerConfig{}, genTokens)
		if err != nil {
			return err
		}
		rep.GenTokPerSec = st.GenTokensPerSecond()
		samples, _, err := generate(e, texts, sampled, genTokens)
		if err != nil {
			return err
		}
		for i, t := range texts {
			rep.Completions = append(rep.Completions, completion{Prompt: t, Greedy: greedy[i], Sampled: samples[i]})
			log.Printf("prompt %q\n  greedy:  %q\n  sampled: %q", t, greedy[i], samples[i])
		}
	}
	if out == "" {
		return nil
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(b, '\n'), 0o644)
}

func generate(e *engine.Engine, texts []string, s engine.SamplerConfig, n int) ([]string, engine.Stats, error) {
	reqs := make([]engine.Request, len(texts))
	for i, t := range texts {
		reqs[i] = engine.Request{Prompt: t, MaxTokens: n, Sampling: s}
	}
	res, st, err := e.Generate(context.Background(), reqs, nil)
	if err != nil {
		return nil, st, err
	}
	out := make([]string, len(res))
	for i, r := range res {
		out[i] = r.Text
	}
	return out, st, nil
}

func readIDs(path string) ([]int32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b)%2 != 0 {
		return nil, fmt.Errorf("%s: %d bytes is not a whole number of uint16 ids", path, len(b))
	}
	ids := make([]int32, len(b)/2)
	for i := range ids {
		ids[i] = int32(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return ids, nil
}

// spacedChunks picks count evenly spaced n-token chunks of ids and
// concatenates them, so that Perplexity cuts exactly these chunks: the
// selection train.py's eval_chunks makes.
func spacedChunks(ids []int32, n, count int) []int32 {
	total := len(ids) / n
	count = min(count, total)
	if count == 0 {
		return nil
	}
	stride := total / count
	out := make([]int32, 0, count*n)
	for i := 0; i < count; i++ {
		out = append(out, ids[i*stride*n:(i*stride+1)*n]...)
	}
	return out
}

// readPrompts reads a prompt list in host/builtin/prompts.txt's format.
func readPrompts(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := builtin.ParsePrompts(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}
