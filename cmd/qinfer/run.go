package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"

	"qinfer/host/builtin"
	"qinfer/host/engine"
)

func init() {
	register(&command{
		name:  "run",
		usage: "[-m MODEL.gguf] [-p TEXT | -f PROMPTS.txt] [flags]",
		short: "generate text for one prompt or a batch of prompts (decoded together); no flags: a demo on the embedded model",
		run:   runRun,
	})
}

// samplingFlags are the sampler settings shared by run and bench.
type samplingFlags struct {
	cfg  engine.SamplerConfig
	stop stringList
}

func (s *samplingFlags) register(fs *flag.FlagSet) {
	fs.Func("temp", "sampling temperature; 0 is greedy (default 0.8)", floatSetter(&s.cfg.Temp))
	fs.IntVar(&s.cfg.TopK, "top-k", 40, "keep the K most likely tokens (0: all)")
	fs.Func("top-p", "keep the smallest set of tokens whose probability reaches P (default 0.95; 1 disables)", floatSetter(&s.cfg.TopP))
	fs.Func("min-p", "drop tokens less likely than P times the most likely one (default 0.05; 0 disables)", floatSetter(&s.cfg.MinP))
	fs.Func("repeat-penalty", "penalty for tokens among the last --repeat-last-n (default 1.0: off)", floatSetter(&s.cfg.RepeatPenalty))
	fs.IntVar(&s.cfg.RepeatLastN, "repeat-last-n", 64, "window of the repetition penalty")
	fs.Uint64Var(&s.cfg.Seed, "seed", 42, "sampling seed (each prompt i uses seed+i)")
	fs.Var(&s.stop, "stop", "stop generating at `STRING` (repeatable)")
	s.cfg.Temp, s.cfg.TopP, s.cfg.MinP, s.cfg.RepeatPenalty = 0.8, 0.95, 0.05, 1.0
}

func floatSetter(dst *float32) func(string) error {
	return func(v string) error {
		var f float64
		if _, err := fmt.Sscanf(v, "%g", &f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%q is not a number", v)
		}
		*dst = float32(f)
		return nil
	}
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runRun(env *cliEnv, args []string) error {
	c := commands["run"]
	fs := newFlagSet(env, c)
	var mf modelFlags
	var bf backendFlags
	var sf samplingFlags
	mf.register(fs)
	bf.register(fs)
	sf.register(fs)
	prompt := fs.String("p", "", "prompt `TEXT`")
	promptFile := fs.String("f", "", "prompts `FILE`, one prompt per line")
	n := fs.Int("n", 64, "tokens to generate per prompt")
	batch := fs.Int("batch", 0, "sequences decoded together (0: all prompts, at most 64)")
	format := fs.String("format", "text", "output: text or jsonl (prompt, prompt_ids, gen_ids, text per prompt)")
	dumpLogits := fs.String("dump-logits", "", "write each prompt's last-position logits (little-endian float32) to `FILE`")
	return withCommon(env, fs, args, func(pos []string) error {
		if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		demo := mf.path == "" && *prompt == "" && *promptFile == ""
		var prompts []string
		var err error
		if demo {
			// The embedded model loops under greedy decoding: sample, with
			// a mild repetition penalty, unless the user chose otherwise.
			prompts = builtin.Prompts()
			set := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
			if !set["temp"] {
				sf.cfg.Temp = 0.7
			}
			if !set["repeat-penalty"] {
				sf.cfg.RepeatPenalty = 1.1
			}
			if !set["n"] {
				*n = 48
			}
		} else if prompts, err = readPrompts(*prompt, *promptFile); err != nil {
			return err
		}
		if *format != "text" && *format != "jsonl" {
			return usagef("--format %q: want text or jsonl", *format)
		}
		if *n < 0 {
			return usagef("-n %d: want >= 0", *n)
		}
		seqs := *batch
		if seqs <= 0 {
			seqs = min(len(prompts), 64)
		}
		l, err := openModel(env, mf, bf, seqs)
		if err != nil {
			return err
		}
		defer l.Close()
		e := engine.New(l.model, l.tok, l.be)
		e.SetGraphs(bf.graphs)
		reqs := make([]engine.Request, len(prompts))
		for i, p := range prompts {
			sc := sf.cfg
			sc.Seed += uint64(i)
			reqs[i] = engine.Request{Prompt: p, MaxTokens: *n, Sampling: sc, Stop: sf.stop}
		}
		results, stats, err := e.Generate(context.Background(), reqs, nil)
		if err != nil {
			return err
		}
		if *dumpLogits != "" {
			if err := writeLogits(e, results, *dumpLogits); err != nil {
				return err
			}
		}
		if demo && *format == "text" {
			fmt.Fprintf(env.stdout, "%s: %s, %d prompts decoded together (see docs/default-model.md; pass -m for your own model)\n\n", builtinPath, builtin.Name(), len(prompts))
		}
		if *format == "jsonl" {
			enc := json.NewEncoder(env.stdout)
			for i, r := range results {
				if err := enc.Encode(jsonResult{Prompt: prompts[i], PromptIDs: nonNil(r.PromptIDs), GenIDs: nonNil(r.GenIDs), Text: r.Text, Stop: r.StopReason}); err != nil {
					return err
				}
			}
		} else {
			for i, r := range results {
				fmt.Fprintf(env.stdout, "--- prompt %d (%d tokens, stop: %s)\n%s%s\n", i, len(r.PromptIDs), r.StopReason, prompts[i], r.Text)
			}
			fmt.Fprintf(env.stdout, "\nbackend: %s (%s)\n", l.choice.Backend, l.choice.Reason)
			fmt.Fprintln(env.stdout, statsLine(stats, seqs))
		}
		env.log.Info("done", "prompt_tokens", stats.PromptTokens, "gen_tokens", stats.GenTokens, "pp_tok_s", rate(stats.PromptTokens, stats.PromptTime.Seconds()), "tg_tok_s", rate(stats.GenTokens, stats.GenTime.Seconds()))
		return nil
	})
}

type jsonResult struct {
	Prompt    string  `json:"prompt"`
	PromptIDs []int32 `json:"prompt_ids"`
	GenIDs    []int32 `json:"gen_ids"`
	Text      string  `json:"text"`
	Stop      string  `json:"stop"`
}

func nonNil(x []int32) []int32 {
	if x == nil {
		return []int32{}
	}
	return x
}

func rate(n int, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return math.Round(float64(n)/secs*10) / 10
}

func statsLine(s engine.Stats, seqs int) string {
	return fmt.Sprintf("prompt processing: %d tokens in %.3f s (%.1f tok/s); generation: %d tokens in %.3f s (%.1f tok/s, %d sequences together)",
		s.PromptTokens, s.PromptTime.Seconds(), rate(s.PromptTokens, s.PromptTime.Seconds()),
		s.GenTokens, s.GenTime.Seconds(), rate(s.GenTokens, s.GenTime.Seconds()), seqs)
}

// readPrompts takes -p or the lines of -f (blank lines skipped).
func readPrompts(p, file string) ([]string, error) {
	switch {
	case p != "" && file != "":
		return nil, usagef("give -p or -f, not both")
	case p != "":
		return []string{p}, nil
	case file == "":
		return nil, usagef("no prompt: give -p TEXT or -f PROMPTS.txt")
	}
	fh, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if line := strings.TrimRight(sc.Text(), "\r"); strings.TrimSpace(line) != "" {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no prompts (one per line)", file)
	}
	return out, nil
}

func writeLogits(e *engine.Engine, results []engine.Result, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for i, r := range results {
		logits, err := e.PromptLogits(r.PromptIDs)
		if err != nil {
			f.Close()
			return fmt.Errorf("logits of prompt %d: %w", i, err)
		}
		if err := binary.Write(w, binary.LittleEndian, logits); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
