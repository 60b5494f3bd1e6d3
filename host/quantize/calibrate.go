package quantize

import (
	"errors"
	"fmt"

	"qinfer/fallback"
	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/model"
	"qinfer/host/tokenizer"
)

// CalibReport describes a calibration run.
type CalibReport struct {
	TextTokens int           `json:"text_tokens"` // tokens in the calibration text (BOS included)
	Tokens     int           `json:"tokens"`      // tokens evaluated: Chunks * Ctx
	Chunks     int           `json:"chunks"`
	Ctx        int           `json:"ctx"`
	Observer   string        `json:"observer,omitempty"` // static and mixed
	Tensors    []CalibTensor `json:"tensors"`
}

// CalibTensor is what calibration found at the input of one weight.
type CalibTensor struct {
	Name     string  `json:"name"`
	AbsMax   float32 `json:"abs_max"`          // largest activation magnitude
	Clip     float64 `json:"clip"`             // magnitude the observer maps to 127
	Scale    float32 `json:"scale"`            // Clip/127: the static activation scale
	Outliers int     `json:"outlier_channels"` // input channels above the outlier threshold
	// SplitColumns counts the outlier channels split off (LLM.int8());
	// AbsMax, Clip and Scale then describe the other channels.
	SplitColumns int `json:"split_columns,omitempty"`
}

// calibration is the unquantized model's behaviour on the calibration
// text: activation statistics per weight and, for mixed planning, the
// logits at every position of every chunk.
type calibration struct {
	chunks [][]int32
	stats  map[string]*actStats
	// ref holds the model's next-token distribution at every position
	// of every chunk (mixed only: chunks*Ctx*vocab float64s).
	ref    [][]refRow
	vocab  int
	report *CalibReport
}

// calibrate runs the calibration text through the unquantized model in on
// the CPU backend, recording the input of every matmul.
func calibrate(in *gguf.File, opt Options, prog *progress) (*calibration, error) {
	chunks, rep, err := calibChunks(in, opt)
	if err != nil {
		return nil, err
	}
	prog.add(len(chunks))
	cal := &calibration{chunks: chunks, report: rep}
	if err := cal.observe(in, opt, nil, opt.Method == Mixed, prog); err != nil {
		return nil, err
	}
	if opt.Method != Dynamic {
		// A dynamic calibration only looks for outlier channels.
		rep.Observer = observerLabel(opt.Calib)
	}
	for _, name := range sortedKeys(cal.stats) {
		s := cal.stats[name]
		if s.count == 0 {
			continue // not a matmul weight (a norm)
		}
		clip := s.clip(opt.Calib.Observer, opt.Calib.Percentile)
		rep.Tensors = append(rep.Tensors, CalibTensor{
			Name: name, AbsMax: s.absMax, Clip: clip, Scale: float32(clip / int8Max),
			Outliers: s.outliers(opt.OutlierThreshold),
		})
	}
	return cal, nil
}

// observe runs the calibration chunks through the unquantized model in
// on the CPU backend, recording the input of every matmul into c.stats
// (leaving out the input channels skip lists per weight) and, when ref
// is set, the model's next-token distributions into c.ref.
func (c *calibration) observe(in *gguf.File, opt Options, skip map[string][]int32, ref bool, prog *progress) error {
	be, err := fallback.New(opt.threads())
	if err != nil {
		return fmt.Errorf("calibration: %w", err)
	}
	defer be.Close()
	rec := newRecorder(be)
	rec.skip = skip
	ctx := c.report.Ctx
	r, m, err := loadRunner(in, rec, ctx)
	if err != nil {
		return fmt.Errorf("calibration: %w", err)
	}
	defer closeRunner(r, m)

	c.stats, c.vocab = rec.byName, r.vocab
	all := allPositions(ctx)
	for i, ch := range c.chunks {
		logits, err := r.run(ch, all)
		if err != nil {
			return fmt.Errorf("calibration: chunk %d: %w", i, err)
		}
		if ref {
			rows := make([]refRow, ctx)
			v := r.vocab
			parallel(ctx, 0, func(p int, _ []float64) {
				rows[p] = newRefRow(logits[p*v:(p+1)*v], make([]float64, v))
			})
			c.ref = append(c.ref, rows)
		}
		prog.step()
	}
	return nil
}

// calibChunks tokenizes the calibration text and cuts it into chunks of
// Ctx tokens with BOS first, as llama-perplexity does.
func calibChunks(in *gguf.File, opt Options) ([][]int32, *CalibReport, error) {
	cfg, err := model.ConfigFromGGUF(in)
	if err != nil {
		return nil, nil, fmt.Errorf("calibration: %w", err)
	}
	tok, err := tokenizer.FromGGUF(in)
	if err != nil {
		return nil, nil, fmt.Errorf("calibration: %w", err)
	}
	ids, err := tok.Encode(opt.Calibration, tok.AddBOS(), false)
	if err != nil {
		return nil, nil, fmt.Errorf("calibration: tokenize: %w", err)
	}
	c := opt.Calib
	ctx := c.Ctx
	if ctx == 0 {
		ctx = 128
		if cfg.CtxTrain > 0 {
			ctx = min(ctx, cfg.CtxTrain)
		}
	}
	if ctx < 2 {
		return nil, nil, fmt.Errorf("calibration: chunk length %d is too short", ctx)
	}
	minTokens := c.MinTokens
	if minTokens == 0 {
		minTokens = max(128, ctx)
	}
	minTokens = max(minTokens, ctx)
	if len(ids) < minTokens {
		return nil, nil, fmt.Errorf("calibration text too short: %d tokens, at least %d needed (%d-token chunks)", len(ids), minTokens, ctx)
	}
	n := min(len(ids), max(c.MaxTokens, ctx)) / ctx
	chunks := make([][]int32, n)
	for i := range chunks {
		ch := append([]int32(nil), ids[i*ctx:(i+1)*ctx]...)
		if tok.AddBOS() {
			ch[0] = tok.BOS()
		}
		chunks[i] = ch
	}
	return chunks, &CalibReport{TextTokens: len(ids), Tokens: n * ctx, Chunks: n, Ctx: ctx}, nil
}

// loadRunner loads f on be sized for one chunk of ctx tokens (an F32 KV
// cache, so the reference run adds no rounding of its own).
func loadRunner(f *gguf.File, be backend.Backend, ctx int) (*runner, model.Model, error) {
	m, err := model.Load(f, be, model.Options{MaxBatch: ctx, Ctx: ctx, Seqs: 1, KVType: backend.F32})
	if err != nil {
		return nil, nil, err
	}
	r, err := newRunner(m, be)
	if err != nil {
		return nil, nil, errors.Join(err, m.Close())
	}
	return r, m, nil
}

func closeRunner(r *runner, m model.Model) {
	_ = r.close()
	_ = m.Close()
}

func allPositions(n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

// scales returns the static activation scale of every weight whose input
// was observed and not identically zero.
func (c *calibration) scales() map[string]float32 {
	out := map[string]float32{}
	for _, t := range c.report.Tensors {
		if t.Scale > 0 {
			out[t.Name] = t.Scale
		}
	}
	return out
}
