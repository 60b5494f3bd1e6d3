package kernels

import (
	"fmt"

	"qinfer/host/backend"
)

// matmulJob is one MatMul's arguments. It lives in the Pool, and the pool's
// worker function is bound to it once, so a MatMul allocates nothing.
type matmulJob struct {
	pool *Pool
	kern *kernel
	wt   backend.DType
	w    []byte
	wrb  int // bytes per weight row
	rows int
	cols int
	xq   []byte
	xrb  int // bytes per activation row
	ntok int
	dst  []float32
	ldd  int
	// packed, when set, holds the weights in panel layout instead of w.
	packed *Packed
	// aux and acts are per-call data shared by all workers (activation
	// block infos for the GGUF-layout GEMV, activation tiles for the panel
	// kernels), computed before the parallel loop.
	aux  []int32
	acts []byte
}

func (j *matmulJob) run(worker, lo, hi int) {
	j.kern.rows(j, worker, lo*j.kern.panel, min(hi*j.kern.panel, j.rows))
}

// kernel computes a range of output rows for all tokens of a job.
type kernel struct {
	// panel is the number of rows computed together: work is split into
	// whole panels so that a tile never straddles two threads.
	panel int
	// grain is the minimum number of panels per parallel chunk, so that
	// synchronization stays small next to the work of a chunk.
	grain int
	rows  func(j *matmulJob, worker, r0, r1 int)
	// prepare, when set, runs once per call before the parallel loop.
	prepare func(j *matmulJob)
}

// MatMul computes dst[t*ldd + r] = dot(weight row r, activation row t) for r
// in [0,rows), t in [0,ntok). w holds rows rows of backend.RowBytes(wt, cols)
// bytes (GGUF layout); xq holds ntok activation rows quantized by
// QuantizeActs for wt. Work is split over output rows on p.
func MatMul(p *Pool, wt backend.DType, w []byte, rows, cols int, xq []byte, ntok int, dst []float32, ldd int) error {
	return matmul(p, wt, w, nil, rows, cols, xq, ntok, dst, ldd)
}

// matmul is MatMul on GGUF weights w or, when packed is set, on its panels.
func matmul(p *Pool, wt backend.DType, w []byte, packed *Packed, rows, cols int, xq []byte, ntok int, dst []float32, ldd int) error {
	if p == nil {
		return fmt.Errorf("kernels: matmul %v: nil pool", wt)
	}
	if rows <= 0 || cols <= 0 || ntok <= 0 {
		return fmt.Errorf("kernels: matmul %v: shape %dx%d with %d tokens", wt, rows, cols, ntok)
	}
	wrb, err := backend.RowBytes(wt, cols)
	if err != nil {
		return fmt.Errorf("kernels: matmul weights: %w", err)
	}
	xrb, err := ActRowBytes(wt, cols)
	if err != nil {
		return err
	}
	if packed == nil && len(w) < rows*wrb {
		return fmt.Errorf("kernels: matmul %v %dx%d: weights need %d bytes, have %d", wt, rows, cols, rows*wrb, len(w))
	}
	if len(xq) < ntok*xrb {
		return fmt.Errorf("kernels: matmul %v %dx%d: %d activation rows need %d bytes, have %d", wt, rows, cols, ntok, ntok*xrb, len(xq))
	}
	if ldd < rows {
		return fmt.Errorf("kernels: matmul %v %dx%d: output stride %d below %d rows", wt, rows, cols, ldd, rows)
	}
	if need := (ntok-1)*ldd + rows; len(dst) < need {
		return fmt.Errorf("kernels: matmul %v %dx%d: %d output rows need %d floats, have %d", wt, rows, cols, ntok, need, len(dst))
	}
	k := selectKernel(wt, ntok, packed != nil)
	if k == nil {
		// Types without a kernel go through the reference dot; check once
		// that it accepts them so the parallel loop cannot fail.
		if _, err := refDot(wt, cols, w[:wrb], xq[:xrb]); err != nil {
			return fmt.Errorf("kernels: matmul %v: %w", wt, err)
		}
		k = &refKernel
	}

	p.mmMu.Lock()
	defer p.mmMu.Unlock()
	j := &p.mm
	j.kern, j.wt, j.w, j.wrb, j.rows, j.cols, j.packed = k, wt, w, wrb, rows, cols, packed
	j.xq, j.xrb, j.ntok, j.dst, j.ldd = xq, xrb, ntok, dst, ldd
	if k.prepare != nil {
		k.prepare(j)
	}
	panels := (rows + k.panel - 1) / k.panel
	p.forWorker(panels, k.grain, p.mmFn)
	// Do not keep the caller's memory alive.
	j.w, j.xq, j.dst, j.packed = nil, nil, nil, nil
	return nil
}

// refKernel runs quant.VecDot for every output: the path for weight types
// that have no kernel of their own.
var refKernel = kernel{panel: 1, grain: 4, rows: func(j *matmulJob, _ int, r0, r1 int) {
	for r := r0; r < r1; r++ {
		wrow := j.w[r*j.wrb : (r+1)*j.wrb]
		for t := 0; t < j.ntok; t++ {
			// Cannot fail: MatMul checked the type and the sizes.
			v, _ := refDot(j.wt, j.cols, wrow, j.xq[t*j.xrb:(t+1)*j.xrb])
			j.dst[t*j.ldd+r] = v
		}
	}
}}

// dotFunc is a dot product of one weight row with one activation row; n is
// the number of blocks (elements for F16/F32).
type dotFunc func(w, x []byte, n int) float32

// dotKernel builds the pure-Go kernel of a format from its row dot. Rows are
// processed in small groups for all tokens so the group stays in cache
// while the activations stream past it.
func dotKernel(dot dotFunc, blockSize int) *kernel {
	return &kernel{panel: 4, grain: 2, rows: func(j *matmulJob, _ int, r0, r1 int) {
		n := j.cols / blockSize
		for t := 0; t < j.ntok; t++ {
			x := j.xq[t*j.xrb : (t+1)*j.xrb]
			out := j.dst[t*j.ldd:]
			for r := r0; r < r1; r++ {
				out[r] = dot(j.w[r*j.wrb:(r+1)*j.wrb], x, n)
			}
		}
	}}
}

var genericKernels = map[backend.DType]*kernel{
	backend.Q8_0: dotKernel(dotQ8_0Generic, qk),
	backend.Q4_0: dotKernel(dotQ4_0Generic, qk),
	backend.Q4_K: dotKernel(dotQ4KGeneric, qkK),
	backend.Q5_K: dotKernel(dotQ5KGeneric, qkK),
	backend.Q6_K: dotKernel(dotQ6KGeneric, qkK),
	backend.F16:  dotKernel(dotF16Generic, 1),
	backend.F32:  dotKernel(dotF32Generic, 1),
}

// selectKernel picks the fastest kernel the CPU and the feature switches
// allow for wt and a batch of ntok tokens, on panels (packed) or the GGUF
// layout, or nil for the reference path.
func selectKernel(wt backend.DType, ntok int, packed bool) *kernel {
	if packed {
		if f := simdPanelFuncs(wt); f != nil {
			return &f.kern
		}
		return &genericPanelFuncs[wt].kern
	}
	if k := simdKernel(wt, ntok); k != nil {
		return k
	}
	return genericKernels[wt] // nil when absent
}
