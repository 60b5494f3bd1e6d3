package quantize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"qinfer/fallback"
	"qinfer/host/backend"
	"qinfer/host/gguf"
)

// Plan is a mixed-precision plan: the type chosen for each tensor, the
// options it had and what each measured.
type Plan struct {
	Budget string   `json:"budget"`
	Ladder []string `json:"ladder"`
	Tokens int      `json:"calibration_tokens"`
	// OutlierThreshold is the LLM.int8() threshold used (0: off), and
	// Outliers what outlier channels did: split (row-format tensors split
	// their outlier columns off in F16), tensor (tensors with outlier
	// channels are held at the top of the ladder) or off; OutlierNote
	// says why a requested split was not available.
	OutlierThreshold float64      `json:"outlier_threshold"`
	Outliers         string       `json:"outliers"`
	OutlierNote      string       `json:"outlier_note,omitempty"`
	Tensors          []PlanTensor `json:"tensors"`
	// Bytes is the tensor data of the whole output (every tensor).
	Bytes int64 `json:"bytes"`
	// EstimatedKLD sums each chosen tensor's KLD measured alone;
	// MeasuredKLD is the whole planned model's, on the calibration text.
	EstimatedKLD float64 `json:"estimated_kld"`
	MeasuredKLD  float64 `json:"measured_kld"`
}

// PlanTensor is one tensor of a plan.
type PlanTensor struct {
	Name     string  `json:"name"`
	Type     string  `json:"type"`
	Bytes    int64   `json:"bytes"`
	KLD      float64 `json:"kld"`
	Outliers int     `json:"outlier_channels,omitempty"`
	// SplitColumns are the outlier columns split off in F16 at the chosen
	// type (a row format); Bytes and the options' bytes include them.
	SplitColumns []int32      `json:"split_columns,omitempty"`
	Options      []PlanOption `json:"options"`
}

// PlanOption is one precision a tensor could have: its size and the KL
// divergence of the model's output when this tensor alone has it.
type PlanOption struct {
	Type  string  `json:"type"`
	Bytes int64   `json:"bytes"`
	KLD   float64 `json:"kld"`
}

// JSON is the plan as stored in qinfer.quant.plan.
func (p *Plan) JSON() (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("quantize: encode plan: %w", err)
	}
	return string(b), nil
}

// candidate is a tensor a mixed plan chooses a type for.
type candidate struct {
	p        *tensorPlan
	rungs    []rung // by size, smallest first
	level    int    // chosen rung
	outliers int
	// pinned: held at the top rung by the per-tensor outlier rule.
	pinned bool
}

type rung struct {
	t     backend.DType
	bytes int64
	kld   float64
}

// planMixed measures each candidate tensor's sensitivity at every
// precision of its ladder, chooses types greedily to meet the budget,
// builds the planned model, measures it and, for a KLD budget, raises
// precision further until the measurement meets the budget.
func planMixed(in *gguf.File, opt Options, plans []*tensorPlan, cal *calibration, enc *encoder, rep *Report, prog *progress) (*gguf.Builder, error) {
	cands, fixed, err := candidates(plans, opt)
	if err != nil {
		return nil, err
	}
	g := &greedy{cands: cands, fixed: fixed}
	if err := g.checkSize(opt.Budget); err != nil {
		return nil, err // before spending time on measurements
	}
	probes := 0
	for _, c := range cands {
		for _, r := range c.rungs {
			if r.t != c.p.info.Type {
				probes++
			}
		}
	}
	// One run per probe plus at least one of the whole plan.
	prog.add(probes + 1)

	be, err := fallback.New(opt.threads())
	if err != nil {
		return nil, fmt.Errorf("mixed: %w", err)
	}
	defer be.Close()
	hint := in.Size() + 1<<20
	for _, c := range cands {
		for i := range c.rungs {
			r := &c.rungs[i]
			if r.t == c.p.info.Type {
				continue // the unquantized model itself
			}
			b := gguf.FromFile(in)
			if _, err := enc.put(b, c.p, r.t, false); err != nil {
				return nil, err
			}
			if r.kld, err = measureKLD(b, hint, be, cal); err != nil {
				return nil, fmt.Errorf("mixed: %s as %v: %w", c.p.name(), r.t, err)
			}
			prog.step()
		}
	}

	pl := &Plan{Budget: opt.Budget.String(), Tokens: cal.report.Tokens, Outliers: opt.Outliers.String(), OutlierNote: opt.outlierNote}
	if opt.Outliers != OutliersOff {
		pl.OutlierThreshold = opt.OutlierThreshold
	}
	for _, t := range opt.Ladder {
		pl.Ladder = append(pl.Ladder, t.String())
	}
	if err := g.plan(opt.Budget); err != nil {
		return nil, err
	}
	quiet := newProgress(nil)
	for {
		g.apply(pl)
		rep.Plan = pl
		b, err := build(in, opt, plans, nil, enc, rep, quiet)
		if err != nil {
			return nil, err
		}
		if pl.MeasuredKLD, err = measureKLD(b, hint, be, cal); err != nil {
			return nil, fmt.Errorf("mixed: planned model: %w", err)
		}
		prog.step()
		if opt.Budget.KLD > 0 && pl.MeasuredKLD > opt.Budget.KLD {
			// The per-tensor KLDs do not add up exactly: keep raising
			// precision, best gain per byte first, until the whole model
			// measures within the budget.
			if !g.upgrade(math.Inf(1)) {
				return nil, fmt.Errorf("mixed: cannot meet the budget kld=%g: with every tensor at the top of the ladder (%s) the model measures KLD %.6g on the calibration text",
					opt.Budget.KLD, pl.Ladder[len(pl.Ladder)-1], pl.MeasuredKLD)
			}
			prog.add(1)
			continue
		}
		js, err := pl.JSON()
		if err != nil {
			return nil, err
		}
		b.Set(keyPlan, gguf.Str(js))
		for range plans {
			prog.step()
		}
		return b, nil
	}
}

// candidates lists the tensors a mixed plan chooses for, with their
// rungs: the type the file type's rules give (the floor: a plan never goes
// below it) and every ladder type that takes more bytes and fits the row
// length, sized with its split columns for a row format. Under the
// per-tensor outlier rule a tensor whose input has outlier channels
// (LLM.int8()) gets only the top rung. fixed is the size of every other
// tensor.
func candidates(plans []*tensorPlan, opt Options) ([]*candidate, int64, error) {
	var cands []*candidate
	var fixed int64
	for _, p := range plans {
		if !p.candidate {
			n, err := p.bytesAs(p.to)
			if err != nil {
				return nil, 0, fmt.Errorf("mixed: tensor %s: %w", p.name(), err)
			}
			fixed += n
			continue
		}
		c := &candidate{p: p}
		seen := map[backend.DType]bool{}
		for _, t := range append([]backend.DType{p.to}, opt.Ladder...) {
			if seen[t] || p.cols%blockSize(t) != 0 {
				continue
			}
			seen[t] = true
			n, err := p.bytesAs(t)
			if err != nil {
				return nil, 0, fmt.Errorf("mixed: tensor %s: %w", p.name(), err)
			}
			c.rungs = append(c.rungs, rung{t: t, bytes: n})
		}
		floor, _ := p.bytesAs(p.to)
		kept := c.rungs[:0]
		for _, r := range c.rungs {
			if r.bytes >= floor {
				kept = append(kept, r)
			}
		}
		c.rungs = kept
		sort.SliceStable(c.rungs, func(i, j int) bool { return c.rungs[i].bytes < c.rungs[j].bytes })
		// The per-tensor rule; a split instead lowers the cost of the
		// row-format rungs, which were measured with it.
		if c.outliers = p.outliers; c.outliers > 0 && opt.Outliers == OutliersTensor {
			c.rungs = c.rungs[len(c.rungs)-1:]
			c.pinned = true
		}
		cands = append(cands, c)
	}
	return cands, fixed, nil
}

// measureKLD writes b into memory, loads it on be and returns the mean KL
// divergence of its next-token distributions from the unquantized
// model's over every position of the calibration chunks. size is about
// the file's size (the input's is an upper bound up to row scales): one
// allocation instead of a doubling buffer's copies.
func measureKLD(b *gguf.Builder, size int64, be backend.Backend, cal *calibration) (float64, error) {
	var buf bytes.Buffer
	buf.Grow(int(size))
	if _, err := b.WriteTo(&buf); err != nil {
		return 0, err
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, m, err := loadRunner(f, be, cal.report.Ctx)
	if err != nil {
		return 0, err
	}
	defer closeRunner(r, m)
	all := allPositions(cal.report.Ctx)
	var sum float64
	var n int
	for i, ch := range cal.chunks {
		logits, err := r.run(ch, all)
		if err != nil {
			return 0, fmt.Errorf("chunk %d: %w", i, err)
		}
		kld := make([]float64, len(ch))
		parallel(len(ch), 0, func(p int, _ []float64) {
			row := logits[p*cal.vocab : (p+1)*cal.vocab]
			kld[p] = cal.ref[i][p].kld(row, logSumExp(row))
		})
		for _, k := range kld {
			sum += k
			n++
		}
	}
	return sum / float64(n), nil
}

// greedy chooses rungs: from the smallest plan, repeatedly take the
// upgrade (one tensor to a larger rung) with the largest KLD reduction
// per added byte.
type greedy struct {
	cands []*candidate
	fixed int64
}

func (g *greedy) size() int64 {
	n := g.fixed
	for _, c := range g.cands {
		n += c.rungs[c.level].bytes
	}
	return n
}

func (g *greedy) estimate() float64 {
	var k float64
	for _, c := range g.cands {
		k += c.rungs[c.level].kld
	}
	return k
}

// upgrade makes the best upgrade that adds at most room bytes and reports
// whether there was one.
func (g *greedy) upgrade(room float64) bool {
	var best *candidate
	bestLevel, bestRatio := 0, 0.0
	for _, c := range g.cands {
		cur := c.rungs[c.level]
		for j := c.level + 1; j < len(c.rungs); j++ {
			gain := cur.kld - c.rungs[j].kld
			cost := float64(c.rungs[j].bytes - cur.bytes)
			if gain <= 0 || cost > room {
				continue
			}
			ratio := gain / max(cost, 1)
			if best == nil || ratio > bestRatio {
				best, bestLevel, bestRatio = c, j, ratio
			}
		}
	}
	if best == nil {
		return false
	}
	best.level = bestLevel
	return true
}

// checkSize fails when even the smallest plan exceeds a size budget.
func (g *greedy) checkSize(b Budget) error {
	s := g.size()
	if b.Size <= 0 || s <= b.Size {
		return nil
	}
	pinned := 0
	for _, c := range g.cands {
		if c.pinned {
			pinned++
		}
	}
	why := ""
	if pinned > 0 {
		why = fmt.Sprintf("; %d tensors are held at the top of the ladder by outlier input channels (a lower or no outlier threshold frees them)", pinned)
	}
	return fmt.Errorf("mixed: cannot meet the budget %v: the smallest plan (every tensor at its lowest precision) takes %.3f MiB of tensor data%s",
		b, float64(s)/(1<<20), why)
}

// plan runs the greedy choice for a budget, or says why it cannot be met.
func (g *greedy) plan(b Budget) error {
	if err := g.checkSize(b); err != nil {
		return err
	}
	if b.Size > 0 {
		for g.upgrade(float64(b.Size - g.size())) {
		}
		return nil
	}
	for g.estimate() > b.KLD {
		if !g.upgrade(math.Inf(1)) {
			best := 0.0
			for _, c := range g.cands {
				m := math.Inf(1)
				for _, r := range c.rungs {
					m = min(m, r.kld)
				}
				best += m
			}
			return fmt.Errorf("mixed: cannot meet the budget %v: the lowest KLD the ladder allows, estimated from each tensor's own, is %.6g", b, best)
		}
	}
	return nil
}

// apply sets the chosen types on the tensor plans and records them in pl.
func (g *greedy) apply(pl *Plan) {
	pl.Tensors = pl.Tensors[:0]
	for _, c := range g.cands {
		r := c.rungs[c.level]
		c.p.to = r.t
		c.p.reason = fmt.Sprintf("mixed: %v, KLD %.3g alone", r.t, r.kld)
		if c.pinned {
			c.p.reason = fmt.Sprintf("mixed: %v, %d outlier input channels (LLM.int8(), per tensor)", r.t, c.outliers)
		}
		pt := PlanTensor{Name: c.p.name(), Type: r.t.String(), Bytes: r.bytes, KLD: r.kld, Outliers: c.outliers, SplitColumns: c.p.splitAs(r.t)}
		for _, o := range c.rungs {
			pt.Options = append(pt.Options, PlanOption{Type: o.t.String(), Bytes: o.bytes, KLD: o.kld})
		}
		pl.Tensors = append(pl.Tensors, pt)
	}
	pl.Bytes = g.size()
	pl.EstimatedKLD = g.estimate()
}
