package fallback

import (
	"time"

	"qinfer/host/backend"
)

type opID int

const (
	opMatMul opID = iota
	opEmbed
	opRMSNorm
	opRoPE
	opAttention
	opSiLUMul
	opAdd
	opSoftmax
	opGather
	numOps
)

var opNames = [numOps]string{
	opMatMul:    "MatMul",
	opEmbed:     "Embed",
	opRMSNorm:   "RMSNorm",
	opRoPE:      "ApplyRoPE",
	opAttention: "Attention",
	opSiLUMul:   "SiLUMul",
	opAdd:       "Add",
	opSoftmax:   "Softmax",
	opGather:    "GatherOutputs",
}

// opStats is what an op reports to the profiler: the bytes it read and
// wrote, its arithmetic operations (2 per multiply-add), and whether it
// succeeded (failed calls are not counted).
type opStats struct {
	bytes int64
	ops   int64
	ok    bool
}

// profiler accumulates per-op wall time. It is only touched under the
// backend mutex, and only when on, so that profiling off costs a branch.
type profiler struct {
	on      bool
	running bool
	op      opID
	t0      time.Time
	acc     [numOps]backend.OpTiming
}

func (p *profiler) start(op opID) {
	p.running, p.op, p.t0 = true, op, time.Now()
}

func (p *profiler) stop(st *opStats) {
	d := time.Since(p.t0)
	p.running = false
	if !st.ok {
		return
	}
	a := &p.acc[p.op]
	a.Calls++
	a.Total += d
	a.Bytes += st.bytes
	a.Ops += st.ops
}

// SetProfiling turns per-op timing on or off and clears the counters.
func (c *CPU) SetProfiling(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prof = profiler{on: on}
}

// Profile returns the counters of every op called since profiling was
// turned on, in a fixed op order.
func (c *CPU) Profile() []backend.OpTiming {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []backend.OpTiming
	for i := range c.prof.acc {
		if a := c.prof.acc[i]; a.Calls > 0 {
			a.Op = opNames[i]
			out = append(out, a)
		}
	}
	return out
}
