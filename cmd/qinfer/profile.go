package main

import (
	"fmt"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"qinfer/host/backend"
	"qinfer/host/trace"
)

func init() {
	register(&command{
		name:  "profile",
		usage: "[-m MODEL.gguf] [-p 128] [-n 32] [-b 1] [--trace out.json] [--svg out.svg]",
		short: "per-kernel time table of prompt processing and decoding; Chrome trace and SVG chart",
		run:   runProfile,
	})
}

func runProfile(env *cliEnv, args []string) error {
	c := commands["profile"]
	fs := newFlagSet(env, c)
	var mf modelFlags
	var bf backendFlags
	mf.register(fs)
	bf.register(fs)
	pp := fs.Int("p", 128, "prompt tokens to process")
	tg := fs.Int("n", 32, "decode steps")
	nb := fs.Int("b", 1, "sequences decoded together")
	traceOut := fs.String("trace", "", "write the op timeline in Chrome trace format (Perfetto, chrome://tracing) to `FILE`")
	svgOut := fs.String("svg", "", "write a bar chart of where the time goes to `FILE`")
	return withCommon(env, fs, args, func(pos []string) error {
		if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		if *pp < 1 || *tg < 0 || *nb < 1 {
			return usagef("-p must be >= 1, -n >= 0, -b >= 1")
		}
		mf.ctx = max(mf.ctx, *pp, *tg)
		l, err := openModelWith(env, mf, bf, *nb, func(be backend.Backend) backend.Backend { return trace.Wrap(be) })
		if err != nil {
			return err
		}
		defer l.Close()
		rec := l.be.(*trace.Recorder)
		r := &benchRunner{l: l, rng: newBenchRand()}
		if err := r.init(); err != nil {
			return err
		}
		defer r.close()
		// The profile times each op, so steps run kernel by kernel.
		r.graphs.SetEnabled(false)
		// Warm up once, then record with the backend's own timers on.
		if err := r.prompt(*pp); err != nil {
			return err
		}
		rec.Reset()
		rec.SetProfiling(true)
		start := time.Now()
		if err := r.prompt(*pp); err != nil {
			return err
		}
		ppTime := time.Since(start)
		start = time.Now()
		if *tg > 0 {
			if err := r.generate(*tg, *nb); err != nil {
				return err
			}
		}
		tgTime := time.Since(start)
		prof := rec.Profile()
		rec.SetProfiling(false)

		info := l.be.Info()
		fmt.Fprintf(env.stdout, "%s on %s (%s), pp%d + tg%d x %d sequences: %.1f ms + %.1f ms, each op waited for\n\n",
			l.path, l.choice.Backend, info.Name, *pp, *tg, *nb, ms(ppTime), ms(tgTime))
		printOpTable(env, prof, info)
		fmt.Fprintln(env.stdout)
		printWeightTable(env, rec.Summarize())
		if *traceOut != "" {
			if err := writeFileWith(*traceOut, func(f *os.File) error { return rec.WriteChrome(f, l.path) }); err != nil {
				return err
			}
			env.log.Info("trace written", "file", *traceOut, "events", len(rec.Events()))
		}
		if *svgOut != "" {
			title := fmt.Sprintf("qinfer profile: %s, %s, pp%d + tg%d", l.path, l.choice.Backend, *pp, *tg)
			if err := writeFileWith(*svgOut, func(f *os.File) error { return trace.WriteSVG(f, title, rec.Summarize()) }); err != nil {
				return err
			}
			env.log.Info("chart written", "file", *svgOut)
		}
		return nil
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// printOpTable prints the backend's own per-op counters: CUDA events on
// the GPU, wall-clock timers on the CPU.
func printOpTable(env *cliEnv, prof []backend.OpTiming, info backend.DeviceInfo) {
	sort.Slice(prof, func(i, j int) bool { return prof[i].Total > prof[j].Total })
	var total time.Duration
	for _, p := range prof {
		total += p.Total
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "op\tcalls\ttotal µs\tmean µs\tshare\tGB/s\tGOPS\t% peak BW\t")
	for _, p := range prof {
		if p.Calls == 0 {
			continue
		}
		secs := p.Total.Seconds()
		gbs, gops := 0.0, 0.0
		if secs > 0 {
			gbs, gops = float64(p.Bytes)/secs/1e9, float64(p.Ops)/secs/1e9
		}
		peak := "-"
		if info.PeakGBs > 0 {
			peak = fmt.Sprintf("%.0f%%", 100*gbs/info.PeakGBs)
		}
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%.1f\t%.1f%%\t%.1f\t%.1f\t%s\t\n", p.Op, p.Calls, us64(p.Total), us64(p.Total)/float64(p.Calls),
			100*p.Total.Seconds()/max(total.Seconds(), 1e-12), gbs, gops, peak)
	}
	w.Flush()
}

// printWeightTable splits the time by weight (MatMul attn_q, ...) from
// the recorder's timeline.
func printWeightTable(env *cliEnv, rows []trace.Summary) {
	var total time.Duration
	for _, r := range rows {
		total += r.Total
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "kernel\tcalls\ttotal µs\tmean µs\tshare\t")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%.1f\t%.1f%%\t\n", r.Name, r.Calls, us64(r.Total), us64(r.Total)/float64(r.Calls), 100*r.Total.Seconds()/max(total.Seconds(), 1e-12))
	}
	w.Flush()
}

func us64(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func writeFileWith(path string, fn func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
