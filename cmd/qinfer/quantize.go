package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"qinfer/host/gguf"
	"qinfer/host/quantize"
)

func init() {
	register(&command{
		name:  "quantize",
		usage: "IN.gguf OUT.gguf --type T [--method dynamic|static|mixed] [--calib TEXT] [--budget size=N|kld=X] [--outliers split|tensor|off] [--keep PATTERN=TYPE ...]",
		short: "quantize an F32/F16/BF16 model: llama.cpp's types (byte-identical), W8, FP8, ternary, binary; static and mixed methods",
		run:   runQuantize,
	})
}

// keepFlags collects repeated --keep PATTERN=TYPE rules.
type keepFlags []quantize.Keep

func (k *keepFlags) String() string {
	var s []string
	for _, r := range *k {
		s = append(s, r.String())
	}
	return strings.Join(s, " ")
}

func (k *keepFlags) Set(v string) error {
	r, err := quantize.ParseKeep(v)
	if err != nil {
		return err
	}
	*k = append(*k, r)
	return nil
}

func runQuantize(env *cliEnv, args []string) error {
	c := commands["quantize"]
	fs := newFlagSet(env, c)
	typ := fs.String("type", "", "output type: "+strings.Join(quantize.FileTypeNames(), ", ")+" (Q4_K, Q5_K: the _M mixes; FP8: FP8_E4M3)")
	method := fs.String("method", "dynamic", "dynamic (weights only), static (calibrated activation scales, row formats) or mixed (per-tensor precision from measured sensitivity)")
	calib := fs.String("calib", "", "calibration text `FILE` for static and mixed (use a text other than the one you evaluate on)")
	budget := fs.String("budget", "", "mixed: size=N[B|KB|MB|GB|KiB|MiB|GiB] of tensor data (MiB when no unit), or kld=X nats per token")
	var keep keepFlags
	fs.Var(&keep, "keep", "force tensors matching a glob to a type, `PATTERN=TYPE` (repeatable; the last match wins), e.g. 'blk.*.ffn_down.weight=Q6_K'")
	observer := fs.String("observer", "minmax", "static: activation scale observer, minmax, percentile or mse")
	percentile := fs.Float64("percentile", 99.99, "static: the percentile observer's percentile")
	ladder := fs.String("ladder", "", "mixed: comma-separated types a tensor may be raised to (default: --type's, Q8_0 or W8, F16)")
	outliers := fs.Float64("outlier-threshold", 6, "LLM.int8() threshold: input channels whose calibration activations exceed it are outlier channels (0: none)")
	outlierMode := fs.String("outliers", "", "what outlier channels do: split (row formats: their columns in F16, the rest int8 with scales computed without them), tensor (keep the whole tensor at higher precision: a mixed plan's top rung, else F16) or off; default split for row formats with --calib, tensor for mixed block types, else off")
	outlierCap := fs.Float64("outlier-cap", 1.0/32, "split: the most columns split off one tensor, as a fraction of its input channels (the largest are kept)")
	calibCtx := fs.Int("calib-ctx", 0, "calibration chunk length in tokens (0: min(128, the model's context))")
	calibTokens := fs.Int("calib-tokens", 512, "calibration tokens used at most")
	threads := fs.Int("threads", 0, "worker threads (0: all cores)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	return withCommon(env, fs, args, func(pos []string) error {
		if len(pos) != 2 {
			return usagef("want IN.gguf OUT.gguf, got %d arguments", len(pos))
		}
		opt, err := quantizeOptions(*typ, *method, *calib, *budget, *observer, *ladder, *percentile, *outliers)
		if err != nil {
			return err
		}
		if opt.Outliers, err = quantize.ParseOutlierMode(*outlierMode); err != nil {
			return usagef("--outliers: %v", err)
		}
		if !(*outlierCap > 0 && *outlierCap <= 1) {
			return usagef("--outlier-cap %g: want a fraction in (0, 1]", *outlierCap)
		}
		opt.OutlierCap = *outlierCap
		opt.Keep = keep
		opt.Calib.Ctx, opt.Calib.MaxTokens = *calibCtx, *calibTokens
		opt.Threads = *threads
		in, err := gguf.Open(pos[0])
		if err != nil {
			return err
		}
		defer in.Close()

		bar := newBar(env, "quantize")
		rep, err := quantize.Quantize(in, pos[1], opt, bar.update)
		bar.finish()
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(jsonReport(pos[1], rep))
		}
		printQuantize(env.stdout, pos[0], pos[1], rep, env.quiet)
		return nil
	})
}

// quantizeOptions turns the flags into options, as usage errors.
func quantizeOptions(typ, method, calib, budget, observer, ladder string, percentile, outliers float64) (quantize.Options, error) {
	var opt quantize.Options
	if typ == "" {
		return opt, usagef("no --type: want one of %s", strings.Join(quantize.FileTypeNames(), ", "))
	}
	ft, err := quantize.ParseFileType(typ)
	if err != nil {
		return opt, usagef("--type: %v", err)
	}
	opt.Type = ft
	if opt.Method, err = quantize.ParseMethod(method); err != nil {
		return opt, usagef("--method: %v", err)
	}
	if budget != "" {
		if opt.Budget, err = quantize.ParseBudget(budget); err != nil {
			return opt, usagef("--budget: %v", err)
		}
	}
	if opt.Calib.Observer, err = quantize.ParseObserver(observer); err != nil {
		return opt, usagef("--observer: %v", err)
	}
	opt.Calib.Percentile = percentile
	if ladder != "" {
		if opt.Ladder, err = quantize.ParseLadder(ladder); err != nil {
			return opt, usagef("--ladder: %v", err)
		}
	}
	// The library reads 0 as "the default" and negative as "off"; on the
	// command line 0 (or less) means no outlier channels.
	opt.OutlierThreshold = outliers
	if outliers <= 0 {
		opt.OutlierThreshold = -1
	}
	if calib != "" {
		text, err := os.ReadFile(calib)
		if err != nil {
			return opt, fmt.Errorf("calibration text: %w", err)
		}
		opt.Calibration = string(text)
	}
	return opt, nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// printQuantize writes the human-readable report: per-tensor decisions
// (unless quiet), the calibration and the plan.
func printQuantize(w io.Writer, in, out string, rep *quantize.Report, quiet bool) {
	if !quiet {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "tensor\tshape\ttype\tsize\twhy")
		for _, t := range rep.Tensors {
			to := t.To.String()
			if t.To != t.From {
				to = t.From.String() + " -> " + to
			}
			if t.ActScale > 0 {
				to += fmt.Sprintf(" (act scale %.4g)", t.ActScale)
			}
			fmt.Fprintf(tw, "%s\t%v\t%s\t%.3f MiB\t%s\n", t.Name, t.Dims, to, mib(t.Bytes), t.Reason)
		}
		tw.Flush()
	}
	if c := rep.Calibration; c != nil {
		what := "observer " + c.Observer
		if c.Observer == "" {
			what = "for outlier channels"
		}
		fmt.Fprintf(w, "calibration: %d of %d tokens in %d chunks of %d, %s\n", c.Tokens, c.TextTokens, c.Chunks, c.Ctx, what)
	}
	if p := rep.Plan; p != nil {
		printPlan(w, p)
	}
	if o := rep.Outliers; o != nil {
		fmt.Fprint(w, o.Text())
	}
	fmt.Fprintf(w, "%s: %s (%s), %.3f MiB -> %.3f MiB of tensors, %.2f bits per weight\n",
		out, rep.Type, rep.Method, mib(rep.InputBytes), mib(rep.OutputBytes), rep.BitsPerWeight())
}

func printPlan(w io.Writer, p *quantize.Plan) {
	fmt.Fprintf(w, "mixed plan (budget %s, ladder %s, %d calibration tokens):\n", p.Budget, strings.Join(p.Ladder, ","), p.Tokens)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  tensor\tchosen\tKLD alone by type\toutlier channels")
	for _, t := range p.Tensors {
		var opts []string
		for _, o := range t.Options {
			opts = append(opts, fmt.Sprintf("%s %.3g", o.Type, o.KLD))
		}
		out := ""
		if t.Outliers > 0 {
			out = fmt.Sprint(t.Outliers)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", t.Name, t.Type, strings.Join(opts, ", "), out)
	}
	tw.Flush()
	fmt.Fprintf(w, "plan: %.3f MiB of tensors, KLD estimated %.4g (sum over tensors), measured %.4g (whole model, calibration text)\n",
		mib(p.Bytes), p.EstimatedKLD, p.MeasuredKLD)
}

// jsonReport is the report with type names instead of numbers.
func jsonReport(out string, rep *quantize.Report) any {
	type tensor struct {
		Name      string   `json:"name"`
		Dims      []uint64 `json:"dims"`
		From      string   `json:"from"`
		To        string   `json:"to"`
		Bytes     int64    `json:"bytes"`
		Reason    string   `json:"reason"`
		ActScale  float32  `json:"act_scale,omitempty"`
		SplitCols []int32  `json:"split_columns,omitempty"`
	}
	r := struct {
		File          string                  `json:"file"`
		Type          string                  `json:"type"`
		Method        string                  `json:"method"`
		InputBytes    int64                   `json:"input_bytes"`
		OutputBytes   int64                   `json:"output_bytes"`
		Params        int64                   `json:"params"`
		BitsPerWeight float64                 `json:"bits_per_weight"`
		Tensors       []tensor                `json:"tensors"`
		Calibration   *quantize.CalibReport   `json:"calibration,omitempty"`
		Plan          *quantize.Plan          `json:"plan,omitempty"`
		Outliers      *quantize.OutlierReport `json:"outliers,omitempty"`
	}{File: out, Type: rep.Type, Method: rep.Method.String(), InputBytes: rep.InputBytes, OutputBytes: rep.OutputBytes,
		Params: rep.Params, BitsPerWeight: rep.BitsPerWeight(), Calibration: rep.Calibration, Plan: rep.Plan, Outliers: rep.Outliers}
	for _, t := range rep.Tensors {
		r.Tensors = append(r.Tensors, tensor{t.Name, t.Dims, t.From.String(), t.To.String(), t.Bytes, t.Reason, t.ActScale, t.SplitCols})
	}
	return r
}
