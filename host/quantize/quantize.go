package quantize

import (
	"errors"
	"fmt"
	"math"
	"runtime"

	"qinfer/host/backend"
	"qinfer/host/gguf"
)

// Options say what to produce. The zero value (with Type set) is a
// dynamic quantization with llama.cpp's per-tensor rules.
type Options struct {
	Type   FileType
	Method Method
	// Keep rules force tensor types; the last matching rule wins. Every
	// rule must match at least one tensor.
	Keep []Keep

	// Calibration is the text static and mixed quantization run through
	// the unquantized model. It should differ from any text the result
	// is evaluated on.
	Calibration string
	Calib       CalibOptions

	// Budget bounds a mixed plan (required for Mixed).
	Budget Budget
	// Ladder lists the precisions a mixed plan may give a tensor besides
	// the one the Type's rules give it; default: Type's default, Q8_0
	// (W8 for W8) and F16.
	Ladder []backend.DType
	// OutlierThreshold is LLM.int8()'s: an input channel of a linear
	// layer whose calibration activations exceed it in magnitude is an
	// outlier channel. 0 means 6.0, LLM.int8()'s value; negative turns
	// outlier handling off (an error with Outliers set to split or
	// tensor).
	OutlierThreshold float64
	// Outliers says what outlier channels do (outliers.go): split the
	// matmul by column (row formats: the outlier columns in F16, the rest
	// in int8 with activation scales computed without them), hold the
	// whole tensor at the top of a mixed plan's ladder (F16 with the other
	// methods), or nothing. The zero value, OutliersAuto, splits for row
	// formats when a calibration text is given and uses the per-tensor
	// rule for mixed plans of GGUF block types; checkOptions resolves it.
	Outliers OutlierMode
	// OutlierCap bounds the columns split off one tensor, as a fraction of
	// its input channels (the ones with the largest activations are
	// kept), so that a threshold set too low cannot blow up the size.
	// 0 means 1/32; at most 1.
	OutlierCap float64
	// outlierNote explains a requested mode that does not apply (split
	// with a GGUF block type), for the report.
	outlierNote string

	// Threads for quantizing and for the calibration runs (0: all).
	Threads int
}

// CalibOptions tune the calibration run.
type CalibOptions struct {
	// Ctx is the chunk length: the text is cut into chunks of Ctx tokens,
	// each evaluated from an empty context with BOS first, as
	// llama-perplexity does. Default: min(128, the model's context).
	Ctx int
	// MinTokens is the fewest tokens a calibration text may have
	// (default 128 or one chunk, whichever is more).
	MinTokens int
	// MaxTokens caps the tokens used (default 512): mixed planning runs
	// the model once per tensor and precision over them, and keeps the
	// unquantized model's next-token distribution at each (MaxTokens x
	// vocabulary float64s: 131 MB for 512 tokens of a 32000 vocabulary).
	MaxTokens int
	// Observer chooses static activation scales (default MinMax).
	Observer Observer
	// Percentile for the Percentile observer, in percent (default 99.99).
	Percentile float64
}

func (o *Options) threads() int {
	if o.Threads > 0 {
		return o.Threads
	}
	return runtime.GOMAXPROCS(0)
}

// TensorReport describes what happened to one tensor.
type TensorReport struct {
	Name     string
	Dims     []uint64 // logical shape: Dims[0] is the row length
	From, To backend.DType
	Bytes    int64  // bytes written, row scales included
	Reason   string // which rule chose To
	// ActScale is the static activation scale of the tensor's input
	// (static method), 0 when none.
	ActScale float32
	// SplitCols are the outlier columns split off in F16 (LLM.int8()).
	SplitCols []int32
}

// Report summarises a quantization.
type Report struct {
	Type        string
	Method      Method
	Tensors     []TensorReport
	InputBytes  int64 // tensor data of the input
	OutputBytes int64 // tensor data of the output
	Params      int64 // weights (elements of all tensors)
	Calibration *CalibReport
	Plan        *Plan
	// Outliers says how outlier channels were treated (nil: not at all,
	// and nothing to say about it).
	Outliers *OutlierReport
}

// BitsPerWeight is the output's tensor bits per weight.
func (r *Report) BitsPerWeight() float64 {
	if r.Params == 0 {
		return 0
	}
	return float64(r.OutputBytes) * 8 / float64(r.Params)
}

// Quantize reads the unquantized model in, quantizes it as opt says and
// writes the result to out: into a temporary file beside it, renamed into
// place only when complete, so no error leaves a partial out behind.
// progress, when not nil, is called with the steps done and the total
// (calibration chunks, sensitivity runs and tensors together).
func Quantize(in *gguf.File, out string, opt Options, progress func(done, total int)) (*Report, error) {
	if err := checkOptions(&opt); err != nil {
		return nil, err
	}
	if err := checkInput(in); err != nil {
		return nil, err
	}
	assign, err := assignTypes(in, opt)
	if err != nil {
		return nil, err
	}
	rep := &Report{Type: opt.Type.Name, Method: opt.Method}
	prog := newProgress(progress)
	prog.add(len(assign))

	var cal *calibration
	if opt.Method != Dynamic || opt.Outliers != OutliersOff {
		if cal, err = calibrate(in, opt, prog); err != nil {
			return nil, err
		}
		rep.Calibration = cal.report
		if err := findOutliers(in, opt, assign, cal, prog); err != nil {
			return nil, err
		}
		if opt.Outliers == OutliersTensor && opt.Method != Mixed {
			applyTensorRule(assign)
		}
	}
	enc := newEncoder(in, opt.threads())
	var b *gguf.Builder
	switch opt.Method {
	case Mixed:
		b, err = planMixed(in, opt, assign, cal, enc, rep, prog)
	case Static:
		b, err = build(in, opt, assign, cal.scales(), enc, rep, prog)
	default:
		b, err = build(in, opt, assign, nil, enc, rep, prog)
	}
	if err != nil {
		return nil, err
	}
	if rep.Outliers = newOutlierReport(opt, assign); rep.Outliers != nil {
		js, err := rep.Outliers.JSON()
		if err != nil {
			return nil, err
		}
		b.Set(keyOutliers, gguf.Str(js))
	}
	if err := b.WriteFile(out); err != nil {
		return nil, err
	}
	return rep, nil
}

// checkOptions validates the options that do not depend on the input and
// fills defaults.
func checkOptions(opt *Options) error {
	if opt.Type.Name == "" {
		return errors.New("quantize: no type given")
	}
	if _, err := ParseFileType(opt.Type.Name); err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	c := &opt.Calib
	if c.Percentile == 0 {
		c.Percentile = 99.99
	}
	if !(c.Percentile > 0 && c.Percentile <= 100) {
		return fmt.Errorf("quantize: percentile %g outside (0, 100]", c.Percentile)
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = 512
	}
	if c.Ctx < 0 || c.MinTokens < 0 {
		return fmt.Errorf("quantize: negative calibration context %d or minimum %d", c.Ctx, c.MinTokens)
	}
	if opt.OutlierThreshold == 0 {
		opt.OutlierThreshold = 6
	}
	if math.IsNaN(opt.OutlierThreshold) || math.IsInf(opt.OutlierThreshold, 0) {
		return fmt.Errorf("quantize: outlier threshold %g: want a finite number", opt.OutlierThreshold)
	}
	if opt.OutlierCap == 0 {
		opt.OutlierCap = defaultOutlierCap
	}
	if !(opt.OutlierCap > 0 && opt.OutlierCap <= 1) {
		return fmt.Errorf("quantize: outlier cap %g outside (0, 1]: it is the fraction of a tensor's input channels that may be split off", opt.OutlierCap)
	}
	switch opt.Method {
	case Dynamic:
		if opt.Budget != (Budget{}) {
			return fmt.Errorf("quantize: a budget (%v) applies to --method mixed only", opt.Budget)
		}
	case Static:
		if !usesActScale(opt.Type.Default) {
			return fmt.Errorf("quantize: --method static fixes the per-tensor int8 activation scale of W8 weights; %s weights quantize their activations per block at run time, so static scales would not be used (use --type W8)", opt.Type.Name)
		}
		if opt.Budget != (Budget{}) {
			return fmt.Errorf("quantize: a budget (%v) applies to --method mixed only", opt.Budget)
		}
	case Mixed:
		if opt.Budget.Size <= 0 && opt.Budget.KLD <= 0 {
			return errors.New("quantize: --method mixed needs a budget: size=N[MiB] or kld=X")
		}
		if opt.Budget.Size > 0 && opt.Budget.KLD > 0 {
			return errors.New("quantize: give a size budget or a KLD budget, not both")
		}
		if len(opt.Ladder) == 0 {
			opt.Ladder = defaultLadder(opt.Type)
		}
	default:
		return fmt.Errorf("quantize: unknown method %v", opt.Method)
	}
	if opt.Method != Dynamic && opt.Calibration == "" {
		return fmt.Errorf("quantize: --method %v needs a calibration text", opt.Method)
	}
	return resolveOutliers(opt)
}

// checkInput accepts only unquantized models: requantizing compounds two
// rounding errors, and qinfer's row formats cannot be requantized at all.
func checkInput(f *gguf.File) error {
	for _, t := range f.Tensors {
		switch t.Type {
		case backend.F32, backend.F16, backend.BF16:
		default:
			if _, ok := f.String(tensorTypeKey + t.Name); ok {
				return fmt.Errorf("quantize: input tensor %s is already quantized (a qinfer row format): quantize an unquantized (F32, F16 or BF16) model", t.Name)
			}
			return fmt.Errorf("quantize: input tensor %s is %v: the input must be an unquantized (F32, F16 or BF16) model, requantizing is not supported", t.Name, t.Type)
		}
	}
	if len(f.Tensors) == 0 {
		return errors.New("quantize: input has no tensors")
	}
	return nil
}

// progress counts steps towards a total that grows as phases learn their
// size.
type progress struct {
	fn          func(done, total int)
	done, total int
}

func newProgress(fn func(done, total int)) *progress { return &progress{fn: fn} }

func (p *progress) add(n int) {
	p.total += n
	p.report()
}

func (p *progress) step() {
	p.done++
	p.report()
}

func (p *progress) report() {
	if p.fn != nil {
		p.fn(p.done, p.total)
	}
}
