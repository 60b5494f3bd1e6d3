// Package trace records a timeline of backend ops: a backend.Backend
// decorator that times every op (waiting for the device after each, so a
// GPU op's time is its own) and names matrix products by their weight.
// The timeline is written in Chrome's trace event format, which Perfetto
// and chrome://tracing open.
package trace

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"qinfer/host/backend"
)

// Event is one op call.
type Event struct {
	Op    string
	Name  string // weight name for MatMul and Embed, else the op
	Start time.Duration
	Dur   time.Duration
}

// Recorder wraps a backend; every op goes through it.
type Recorder struct {
	backend.Backend
	t0     time.Time
	names  map[backend.Tensor]string
	events []Event
	err    error
}

// Wrap returns a recorder around be. Weights must be uploaded through the
// recorder for MatMul events to carry their names.
func Wrap(be backend.Backend) *Recorder {
	return &Recorder{Backend: be, t0: time.Now(), names: map[backend.Tensor]string{}}
}

// Events returns the recorded calls in order.
func (r *Recorder) Events() []Event { return r.events }

// Reset drops the recorded events and restarts the clock.
func (r *Recorder) Reset() { r.events, r.t0 = r.events[:0], time.Now() }

// Upload remembers the weight's name.
func (r *Recorder) Upload(w *backend.Weight) (backend.Tensor, error) {
	t, err := r.Backend.Upload(w)
	if err == nil {
		r.names[t] = shortName(w.Name)
	}
	return t, err
}

// shortName drops layer numbers and suffixes so that per-layer calls of
// the same weight group together: blk.3.attn_q.weight -> attn_q, and a
// fused blk.3.ffn_gate.weight+blk.3.ffn_up.weight -> ffn_gate+ffn_up.
func shortName(n string) string {
	parts := strings.Split(n, "+")
	for i, p := range parts {
		p = strings.TrimSuffix(p, ".weight")
		if strings.HasPrefix(p, "blk.") {
			if j := strings.IndexByte(p[4:], '.'); j >= 0 {
				p = p[4+j+1:]
			}
		}
		parts[i] = p
	}
	return strings.Join(parts, "+")
}

func (r *Recorder) record(op, name string, fn func() error) error {
	start := time.Since(r.t0)
	err := fn()
	if err == nil {
		err = r.Backend.Synchronize()
	}
	if err != nil {
		return err
	}
	r.events = append(r.events, Event{Op: op, Name: name, Start: start, Dur: time.Since(r.t0) - start})
	return nil
}

func (r *Recorder) weightName(op string, w backend.Tensor) string {
	if n, ok := r.names[w]; ok {
		return op + " " + n
	}
	return op
}

func (r *Recorder) MatMul(dst, w, x backend.Tensor) error {
	return r.record("MatMul", r.weightName("MatMul", w), func() error { return r.Backend.MatMul(dst, w, x) })
}

func (r *Recorder) Embed(dst, table backend.Tensor, b backend.Batch) error {
	return r.record("Embed", "Embed", func() error { return r.Backend.Embed(dst, table, b) })
}

func (r *Recorder) RMSNorm(dst, x, w backend.Tensor, eps float32) error {
	return r.record("RMSNorm", "RMSNorm", func() error { return r.Backend.RMSNorm(dst, x, w, eps) })
}

func (r *Recorder) ApplyRoPE(x backend.Tensor, b backend.Batch, p backend.RoPE) error {
	return r.record("ApplyRoPE", "ApplyRoPE", func() error { return r.Backend.ApplyRoPE(x, b, p) })
}

func (r *Recorder) Attention(dst, q, k, v backend.Tensor, cache backend.KVCache, layer int, b backend.Batch, scale float32) error {
	return r.record("Attention", "Attention", func() error { return r.Backend.Attention(dst, q, k, v, cache, layer, b, scale) })
}

func (r *Recorder) SiLUMul(dst, gate, up backend.Tensor) error {
	return r.record("SiLUMul", "SiLUMul", func() error { return r.Backend.SiLUMul(dst, gate, up) })
}

func (r *Recorder) Add(dst, a, b backend.Tensor) error {
	return r.record("Add", "Add", func() error { return r.Backend.Add(dst, a, b) })
}

func (r *Recorder) Softmax(x backend.Tensor) error {
	return r.record("Softmax", "Softmax", func() error { return r.Backend.Softmax(x) })
}

func (r *Recorder) GatherOutputs(dst, src backend.Tensor, b backend.Batch) error {
	return r.record("GatherOutputs", "GatherOutputs", func() error { return r.Backend.GatherOutputs(dst, src, b) })
}

// chromeEvent is one complete ("X") event of the trace event format.
type chromeEvent struct {
	Name string  `json:"name"`
	Cat  string  `json:"cat"`
	Ph   string  `json:"ph"`
	TS   float64 `json:"ts"`  // µs
	Dur  float64 `json:"dur"` // µs
	PID  int     `json:"pid"`
	TID  int     `json:"tid"`
}

// WriteChrome writes the events as a Chrome trace (JSON object form).
func (r *Recorder) WriteChrome(w io.Writer, process string) error {
	evs := make([]chromeEvent, 0, len(r.events))
	for _, e := range r.events {
		evs = append(evs, chromeEvent{Name: e.Name, Cat: e.Op, Ph: "X", TS: us(e.Start), Dur: us(e.Dur), PID: 1, TID: 1})
	}
	return json.NewEncoder(w).Encode(struct {
		TraceEvents     []chromeEvent     `json:"traceEvents"`
		DisplayTimeUnit string            `json:"displayTimeUnit"`
		OtherData       map[string]string `json:"otherData"`
	}{evs, "ms", map[string]string{"process": process}})
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// Summary is the time spent per event name.
type Summary struct {
	Name  string
	Calls int
	Total time.Duration
}

// Summarize groups events by name, largest total first.
func (r *Recorder) Summarize() []Summary {
	by := map[string]*Summary{}
	for _, e := range r.events {
		s := by[e.Name]
		if s == nil {
			s = &Summary{Name: e.Name}
			by[e.Name] = s
		}
		s.Calls++
		s.Total += e.Dur
	}
	out := make([]Summary, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Total != out[j].Total {
			return out[i].Total > out[j].Total
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// WriteSVG draws a horizontal bar chart of where the time goes.
func WriteSVG(w io.Writer, title string, rows []Summary) error {
	const barW, rowH, left, top = 520.0, 22, 230, 40
	var total time.Duration
	var maxT time.Duration
	for _, r := range rows {
		total += r.Total
		maxT = max(maxT, r.Total)
	}
	if maxT == 0 {
		maxT = 1
	}
	h := top + rowH*len(rows) + 20
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", left+int(barW)+160, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="10" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", xmlEscape(title))
	for i, r := range rows {
		y := top + i*rowH
		wd := barW * float64(r.Total) / float64(maxT)
		share := 100 * float64(r.Total) / float64(max(total, 1))
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, left-8, y+15, xmlEscape(r.Name))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="#4a7bd0"/>`, left, y+3, wd, rowH-6)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.2f ms (%.1f%%, %d calls)</text>`+"\n", float64(left)+wd+6, y+15, float64(r.Total.Microseconds())/1e3, share, r.Calls)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
