package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"time"

	"qinfer/host/backend"
	"qinfer/host/engine"
)

func init() {
	register(&command{
		name:  "bench",
		usage: "[-m MODEL.gguf] [-p 128,512] [-n 32,128] [-b 1,8,32] [-r REPS] [--format md|csv|json]",
		short: "measure prompt processing and batched generation speed (in the manner of llama-bench)",
		run:   runBench,
	})
}

type benchRow struct {
	Model   string  `json:"model"`
	SizeMiB float64 `json:"size_mib"`
	ParamsM float64 `json:"params_m"`
	Type    string  `json:"type"`
	Backend string  `json:"backend"`
	Device  string  `json:"device"`
	Threads int     `json:"threads"`
	Test    string  `json:"test"`
	TokS    float64 `json:"tok_s"`
	StdDev  float64 `json:"stddev"`
	Reps    int     `json:"reps"`
}

func runBench(env *cliEnv, args []string) error {
	c := commands["bench"]
	fs := newFlagSet(env, c)
	var mf modelFlags
	var bf backendFlags
	mf.register(fs)
	bf.register(fs)
	pp := fs.String("p", "128", "prompt lengths to process, comma-separated (pp tests)")
	tg := fs.String("n", "32", "tokens to generate per sequence, comma-separated (tg tests)")
	bs := fs.String("b", "1", "sequences generated together, comma-separated")
	reps := fs.Int("r", 3, "repetitions of each test")
	format := fs.String("format", "md", "output: md, csv or json")
	return withCommon(env, fs, args, func(pos []string) error {
		if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		pps, err := splitInts(*pp)
		if err != nil {
			return usagef("-p: %v", err)
		}
		tgs, err := splitInts(*tg)
		if err != nil {
			return usagef("-n: %v", err)
		}
		batches, err := splitInts(*bs)
		if err != nil {
			return usagef("-b: %v", err)
		}
		if *reps < 1 {
			return usagef("-r %d: want >= 1", *reps)
		}
		if *format != "md" && *format != "csv" && *format != "json" {
			return usagef("--format %q: want md, csv or json", *format)
		}
		maxSeqs, maxCtx := 1, 1
		for _, b := range batches {
			maxSeqs = max(maxSeqs, b)
		}
		for _, p := range pps {
			maxCtx = max(maxCtx, p)
		}
		for _, n := range tgs {
			maxCtx = max(maxCtx, n)
		}
		mf.ctx = max(mf.ctx, maxCtx)
		l, err := openModel(env, mf, bf, maxSeqs)
		if err != nil {
			return err
		}
		defer l.Close()
		base := benchRow{Model: filepath.Base(l.path), Backend: l.choice.Backend, Device: l.be.Info().Name, Threads: l.be.Info().Threads, Reps: *reps}
		if info, err := describe(l.path, l.file, false); err == nil {
			base.SizeMiB = float64(info.Bytes) / (1 << 20)
			base.ParamsM = float64(info.Params) / 1e6
			if len(info.Types) > 0 {
				base.Type = info.Types[0].Type
			}
		}
		r := &benchRunner{l: l, rng: newBenchRand()}
		if err := r.init(); err != nil {
			return err
		}
		defer r.close()
		r.graphs.SetEnabled(bf.graphs)
		var rows []benchRow
		// One step per run of a test, warm-ups included, over all tests.
		bar := newBar(env, "benchmarking")
		steps, totalSteps := 0, (len(pps)+len(batches)*len(tgs))*(*reps+1)
		defer bar.finish()
		run := func(test string, tokens int, fn func() error) error {
			// One untimed warm-up, then the timed repetitions.
			if err := fn(); err != nil {
				return fmt.Errorf("%s: %w", test, err)
			}
			steps++
			bar.update(steps, totalSteps)
			var rates []float64
			for i := 0; i < *reps; i++ {
				start := time.Now()
				if err := fn(); err != nil {
					return fmt.Errorf("%s: %w", test, err)
				}
				rates = append(rates, float64(tokens)/time.Since(start).Seconds())
				steps++
				bar.update(steps, totalSteps)
			}
			row := base
			row.Test = test
			row.TokS, row.StdDev = meanStd(rates)
			rows = append(rows, row)
			env.log.Info("bench", "test", test, "tok_s", fmt.Sprintf("%.2f ± %.2f", row.TokS, row.StdDev))
			return nil
		}
		for _, p := range pps {
			if err := run(fmt.Sprintf("pp%d", p), p, func() error { return r.prompt(p) }); err != nil {
				return err
			}
		}
		for _, b := range batches {
			for _, n := range tgs {
				name := fmt.Sprintf("tg%d", n)
				if b > 1 {
					name = fmt.Sprintf("tg%d b%d", n, b)
				}
				if err := run(name, n*b, func() error { return r.generate(n, b) }); err != nil {
					return err
				}
			}
		}
		return writeBench(env, rows, *format)
	})
}

// newBenchRand makes the token source of bench and profile; fixed so runs
// compare.
func newBenchRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func meanStd(x []float64) (float64, float64) {
	var s float64
	for _, v := range x {
		s += v
	}
	m := s / float64(len(x))
	if len(x) < 2 {
		return m, 0
	}
	var ss float64
	for _, v := range x {
		ss += (v - m) * (v - m)
	}
	return m, math.Sqrt(ss / float64(len(x)-1))
}

// benchRunner drives the model directly, as llama-bench does: forward
// passes over random tokens, no sampling, no tokenizer.
type benchRunner struct {
	l      *loaded
	rng    *rand.Rand
	batch  backend.Batch
	logits backend.Tensor
	graphs *engine.Graphs
}

func (r *benchRunner) init() error {
	var err error
	if r.batch, err = r.l.be.NewBatch(r.l.opt.MaxBatch); err != nil {
		return err
	}
	if r.logits, err = r.l.model.NewLogits(); err != nil {
		return err
	}
	// Decode steps replay as CUDA graphs where the backend can, as the
	// engine runs them.
	r.graphs = engine.NewGraphs(r.l.model, r.l.be)
	return nil
}

// close frees the graphs; batch and logits go with the backend.
func (r *benchRunner) close() {
	if err := r.graphs.Close(); err != nil {
		slog.Warn("bench: free graphs", "err", err)
	}
}

func (r *benchRunner) forward(in *backend.BatchInput) error {
	if err := r.l.be.SetBatch(r.batch, in); err != nil {
		return err
	}
	return r.graphs.Forward(r.batch, r.logits, in)
}

func (r *benchRunner) token() int32 { return int32(r.rng.IntN(r.l.cfg.Vocab)) }

// prompt processes p tokens of sequence 0 in chunks of MaxBatch.
func (r *benchRunner) prompt(p int) error {
	for start := 0; start < p; start += r.l.opt.MaxBatch {
		n := min(r.l.opt.MaxBatch, p-start)
		in := &backend.BatchInput{}
		for i := 0; i < n; i++ {
			in.IDs = append(in.IDs, r.token())
			in.Pos = append(in.Pos, int32(start+i))
			in.Seq = append(in.Seq, 0)
		}
		in.Outputs = []int32{int32(n - 1)}
		if err := r.forward(in); err != nil {
			return err
		}
	}
	return r.l.be.Synchronize()
}

// generate runs n decode steps of b sequences together, one token each.
func (r *benchRunner) generate(n, b int) error {
	in := &backend.BatchInput{IDs: make([]int32, b), Pos: make([]int32, b), Seq: make([]int32, b), Outputs: make([]int32, b)}
	for step := 0; step < n; step++ {
		for s := 0; s < b; s++ {
			in.IDs[s], in.Pos[s], in.Seq[s], in.Outputs[s] = r.token(), int32(step), int32(s), int32(s)
		}
		if err := r.forward(in); err != nil {
			return err
		}
	}
	return r.l.be.Synchronize()
}

func writeBench(env *cliEnv, rows []benchRow, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case "csv":
		w := csv.NewWriter(env.stdout)
		w.Write([]string{"model", "size_mib", "params_m", "type", "backend", "device", "threads", "test", "tok_s", "stddev", "reps"})
		for _, r := range rows {
			w.Write([]string{r.Model, f2(r.SizeMiB), f2(r.ParamsM), r.Type, r.Backend, r.Device, strconv.Itoa(r.Threads), r.Test, f2(r.TokS), f2(r.StdDev), strconv.Itoa(r.Reps)})
		}
		w.Flush()
		return w.Error()
	}
	fmt.Fprintln(env.stdout, "| model | size | params | type | backend | threads | test | t/s |")
	fmt.Fprintln(env.stdout, "| --- | ---: | ---: | --- | --- | ---: | --- | ---: |")
	for _, r := range rows {
		fmt.Fprintf(env.stdout, "| %s | %.2f MiB | %.2f M | %s | %s | %d | %s | %.2f ± %.2f |\n",
			r.Model, r.SizeMiB, r.ParamsM, r.Type, r.Backend, r.Threads, r.Test, r.TokS, r.StdDev)
	}
	return nil
}

func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
