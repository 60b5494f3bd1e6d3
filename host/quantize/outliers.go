package quantize

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/quant"
)

// OutlierMode is what LLM.int8()-style outlier channels (input channels of
// a linear layer whose calibration activations exceed the outlier
// threshold) make the quantizer do.
type OutlierMode int

const (
	// OutliersAuto is split for row formats when a calibration text is
	// given, tensor for mixed plans of GGUF block types, off otherwise.
	OutliersAuto OutlierMode = iota
	// OutliersSplit is LLM.int8()'s decomposition, for row-format tensors:
	// the outlier columns of W (at most Options.OutlierCap of them, the
	// largest) are stored in F16 and multiplied in float, the others in
	// int8 with activations quantized without the outlier channels.
	OutliersSplit
	// OutliersTensor keeps a tensor whose input has outlier channels
	// whole at higher precision: at the top of a mixed plan's ladder, in
	// F16 with the other methods.
	OutliersTensor
	// OutliersOff ignores outlier channels.
	OutliersOff
)

// defaultOutlierCap is the default Options.OutlierCap: at most 1/32 of a
// tensor's input channels are split, which adds at most half a bit per
// weight (16 bits per split element).
const defaultOutlierCap = 1.0 / 32

// keyOutliers is the metadata key of the outlier report (JSON).
const keyOutliers = "qinfer.quant.outliers"

func (m OutlierMode) String() string {
	switch m {
	case OutliersAuto:
		return "auto"
	case OutliersSplit:
		return "split"
	case OutliersTensor:
		return "tensor"
	case OutliersOff:
		return "off"
	}
	return fmt.Sprintf("outliers(%d)", int(m))
}

// ParseOutlierMode maps "auto" (or ""), "split", "tensor" or "off" to an
// OutlierMode.
func ParseOutlierMode(s string) (OutlierMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto", "":
		return OutliersAuto, nil
	case "split":
		return OutliersSplit, nil
	case "tensor":
		return OutliersTensor, nil
	case "off":
		return OutliersOff, nil
	}
	return 0, fmt.Errorf("unknown outlier mode %q (split, tensor, off or auto)", s)
}

// resolveOutliers turns OutliersAuto into the mode it stands for and
// checks that the mode can work: split and tensor need a calibration text
// to find the channels and a positive threshold. GGUF block types cannot
// split (their activations are quantized per block, and llama.cpp's
// formats have no place for the columns), so a split asked of one falls
// back to the per-tensor rule, with a note.
func resolveOutliers(opt *Options) error {
	row := quant.IsRowFormat(opt.Type.Default)
	thr := opt.OutlierThreshold
	switch opt.Outliers {
	case OutliersAuto:
		switch {
		case thr < 0:
			opt.Outliers = OutliersOff
		case row && opt.Calibration != "":
			opt.Outliers = OutliersSplit
		case opt.Method == Mixed:
			opt.Outliers = OutliersTensor
		default:
			// Dynamic and static files of llama.cpp's types stay
			// llama.cpp's.
			opt.Outliers = OutliersOff
		}
		return nil
	case OutliersSplit, OutliersTensor:
		if opt.Calibration == "" {
			return fmt.Errorf("quantize: --outliers %v finds the outlier channels by running a calibration text through the model: give one (--calib)", opt.Outliers)
		}
		if thr <= 0 {
			return fmt.Errorf("quantize: --outliers %v needs an outlier threshold > 0 (--outlier-threshold; LLM.int8() uses 6)", opt.Outliers)
		}
		if opt.Outliers == OutliersSplit && !row {
			opt.Outliers = OutliersTensor
			opt.outlierNote = fmt.Sprintf("split is not available for %s: GGUF block types quantize activations per block and have no place for F16 columns; the per-tensor rule is used instead", opt.Type.Name)
		}
		return nil
	case OutliersOff:
		return nil
	}
	return fmt.Errorf("quantize: unknown outlier mode %v", opt.Outliers)
}

// applyTensorRule is the per-tensor rule outside a mixed plan (which
// holds such tensors at the top of its ladder instead): every tensor the
// type's rules quantize whose input has outlier channels is stored in
// F16, whole.
func applyTensorRule(plans []*tensorPlan) {
	for _, p := range plans {
		if p.candidate && p.outliers > 0 {
			p.to = backend.F16
			p.reason = fmt.Sprintf("%d outlier input channels (LLM.int8(), per tensor): kept in F16", p.outliers)
		}
	}
}

// splitColumns returns the input channels whose largest magnitude
// exceeded threshold, at most maxK of them (the largest; on ties the
// lower channel), in increasing order.
func (s *actStats) splitColumns(threshold float64, maxK int) []int32 {
	if threshold <= 0 || maxK <= 0 {
		return nil
	}
	var cols []int32
	for c, m := range s.chanMax {
		if float64(m) > threshold {
			cols = append(cols, int32(c))
		}
	}
	if len(cols) > maxK {
		sort.SliceStable(cols, func(i, j int) bool { return s.chanMax[cols[i]] > s.chanMax[cols[j]] })
		cols = cols[:maxK]
		slices.Sort(cols)
	}
	return cols
}

// splittable reports whether a tensor may be split: not the embedding
// table, which Embed reads a row at a time (and which is also the
// classifier of a model with tied embeddings).
func splittable(name string) bool { return name != "token_embd.weight" }

// findOutliers records, per tensor, the input channels calibration saw
// above the threshold and, for a split, the columns to split off. Static
// activation scales must not see the split channels (they are quantized
// apart), so for a static split the calibration text is run once more
// with those channels left out of the statistics, and the scales and the
// calibration report come from that run.
func findOutliers(in *gguf.File, opt Options, plans []*tensorPlan, cal *calibration, prog *progress) error {
	if opt.Outliers == OutliersOff {
		return nil
	}
	skip := map[string][]int32{}
	for _, p := range plans {
		s, ok := cal.stats[p.name()]
		if !ok || s.count == 0 {
			continue // not a matmul input
		}
		p.outliers = s.outliers(opt.OutlierThreshold)
		if opt.Outliers == OutliersSplit && splittable(p.name()) {
			p.split = s.splitColumns(opt.OutlierThreshold, int(opt.OutlierCap*float64(p.cols)))
			if len(p.split) > 0 && usesActScale(p.to) {
				skip[p.name()] = p.split
			}
		}
	}
	if opt.Method != Static || len(skip) == 0 {
		return nil
	}
	prog.add(len(cal.chunks))
	if err := cal.observe(in, opt, skip, false, prog); err != nil {
		return err
	}
	for i := range cal.report.Tensors {
		t := &cal.report.Tensors[i]
		cols := skip[t.Name]
		if len(cols) == 0 {
			continue
		}
		s := cal.stats[t.Name]
		clip := s.clip(opt.Calib.Observer, opt.Calib.Percentile)
		t.AbsMax, t.Clip, t.Scale, t.SplitColumns = s.absMax, clip, float32(clip/int8Max), len(cols)
	}
	return nil
}

// splitAs returns the columns tensor p splits off when stored as type t:
// its split for a row format, none for a GGUF type.
func (p *tensorPlan) splitAs(t backend.DType) []int32 {
	if !quant.IsRowFormat(t) {
		return nil
	}
	return p.split
}

// splitBytes is what a split of k columns adds to a tensor of rows rows:
// the I32 column list and the F16 weights.
func splitBytes(rows, k int) int64 { return 4*int64(k) + 2*int64(k)*int64(rows) }

// OutlierReport says how outlier channels were treated; it is printed and
// stored as JSON in qinfer.quant.outliers.
type OutlierReport struct {
	Mode      string          `json:"mode"` // split, tensor or off
	Threshold float64         `json:"threshold,omitempty"`
	Cap       float64         `json:"cap,omitempty"` // split: the most columns per tensor, as a fraction
	Note      string          `json:"note,omitempty"`
	Tensors   []OutlierTensor `json:"tensors,omitempty"`
}

// OutlierTensor is one tensor whose input has outlier channels.
type OutlierTensor struct {
	Name     string  `json:"name"`
	Type     string  `json:"type"`
	Channels int     `json:"channels"`                // input channels above the threshold
	Split    []int32 `json:"split_columns,omitempty"` // the columns split off in F16
}

// newOutlierReport describes what was done, from the final tensor plans;
// nil when outliers were off and there is nothing to say.
func newOutlierReport(opt Options, plans []*tensorPlan) *OutlierReport {
	if opt.Outliers == OutliersOff && opt.outlierNote == "" {
		return nil
	}
	r := &OutlierReport{Mode: opt.Outliers.String(), Note: opt.outlierNote}
	if opt.Outliers != OutliersOff {
		r.Threshold = opt.OutlierThreshold
	}
	if opt.Outliers == OutliersSplit {
		r.Cap = opt.OutlierCap
	}
	for _, p := range plans {
		if p.outliers == 0 {
			continue
		}
		r.Tensors = append(r.Tensors, OutlierTensor{Name: p.name(), Type: p.to.String(), Channels: p.outliers, Split: p.splitAs(p.to)})
	}
	return r
}

// JSON is the report as stored in qinfer.quant.outliers.
func (r *OutlierReport) JSON() (string, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("quantize: encode outlier report: %w", err)
	}
	return string(b), nil
}

// Text is the report for people: the mode, then one line per tensor with
// outlier channels and its split columns.
func (r *OutlierReport) Text() string {
	var b strings.Builder
	switch r.Mode {
	case "split":
		fmt.Fprintf(&b, "outliers: split (LLM.int8()), threshold %g, at most %.4g of a tensor's input channels split off in F16\n", r.Threshold, r.Cap)
	case "tensor":
		fmt.Fprintf(&b, "outliers: per tensor, threshold %g: tensors with outlier input channels stay whole at higher precision (a mixed plan's top rung, otherwise F16)\n", r.Threshold)
	default:
		fmt.Fprintf(&b, "outliers: %s\n", r.Mode)
	}
	if r.Note != "" {
		fmt.Fprintf(&b, "  note: %s\n", r.Note)
	}
	if len(r.Tensors) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  tensor\ttype\tchannels > %g\tsplit columns\n", r.Threshold)
		for _, t := range r.Tensors {
			split := "-"
			if len(t.Split) > 0 {
				split = fmt.Sprintf("%d: %v", len(t.Split), t.Split)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", t.Name, t.Type, t.Channels, split)
		}
		tw.Flush()
	}
	return b.String()
}
