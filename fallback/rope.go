package fallback

import (
	"fmt"
	"math"

	"qinfer/fallback/vecmath"
	"qinfer/host/backend"
)

// ropeState carries ApplyRoPE's arguments to the row function bound once
// in New, with one cos/sin cache per work chunk.
type ropeState struct {
	x          *activation
	b          *batch
	p          backend.RoPE
	thetaScale float32
	nchunks    int
	caches     [][]float32
	fn         func(lo, hi int)
}

func (r *ropeState) init() { r.fn = r.chunks }

// ApplyRoPE rotates each head of x in place by its token's position, as
// ggml_compute_forward_rope_f32 (ext_factor 0, attn_factor 1, no frequency
// factors, n_dims = head dim): per token a cache of cos/sin is built with
// theta starting at (float)pos and multiplied by theta_scale =
// powf(base, -2/d) in float after each pair, angle freq_scale*theta; then
// x0' = x0*cos - x1*sin, x1' = x0*sin + x1*cos. GCC contracts each of
// those into one FMA over the first product (-ffp-contract=fast is the
// default for GNU C with -march=native), which fma32 reproduces.
func (c *CPU) ApplyRoPE(x backend.Tensor, bt backend.Batch, p backend.RoPE) error {
	if err := c.begin(opRoPE); err != nil {
		return err
	}
	var st opStats
	defer c.end(&st)

	const op = "rope"
	xa, err := asActivation(op, "input", x)
	if err != nil {
		return err
	}
	b, err := asSetBatch(op, bt)
	if err != nil {
		return err
	}
	if p.HeadDim <= 0 || p.HeadDim%2 != 0 || p.Heads <= 0 {
		return fmt.Errorf("rope: head dimension %d must be even and positive, heads %d positive", p.HeadDim, p.Heads)
	}
	if !(p.FreqBase > 0) || !(p.FreqScale > 0) {
		return fmt.Errorf("rope: frequency base %v and scale %v must be positive", p.FreqBase, p.FreqScale)
	}
	if xa.rows != b.n || xa.cols != p.Heads*p.HeadDim {
		return fmt.Errorf("rope: input %s for %d tokens of %d heads x %d: want %dx%d",
			shape(xa), b.n, p.Heads, p.HeadDim, b.n, p.Heads*p.HeadDim)
	}
	r := &c.rope
	r.x, r.b, r.p = xa, b, p
	r.thetaScale = float32(math.Pow(float64(p.FreqBase), float64(float32(-2)/float32(p.HeadDim))))
	r.nchunks = 1
	if b.n > 1 && b.n*xa.cols >= parallelElems && c.pool.Threads() > 1 {
		r.nchunks = min(b.n, 4*c.pool.Threads())
	}
	for len(r.caches) < r.nchunks {
		r.caches = append(r.caches, nil)
	}
	for i := 0; i < r.nchunks; i++ {
		if cap(r.caches[i]) < p.HeadDim {
			r.caches[i] = make([]float32, p.HeadDim)
		}
	}
	if r.nchunks == 1 {
		r.chunks(0, 1)
	} else {
		c.pool.For(r.nchunks, 1, r.fn)
	}
	r.x, r.b = nil, nil
	n := int64(xa.rows) * int64(xa.cols)
	st = opStats{bytes: 8 * n, ops: 3 * n, ok: true}
	return nil
}

// chunks rotates tokens ch, ch+nchunks, ... for each chunk ch in [lo, hi).
// The cache holds (cos, sin) pairs for normal mode and, for NEOX mode,
// the cosines in its first half and the sines in its second, the layouts
// vecmath's rotations read.
func (r *ropeState) chunks(lo, hi int) {
	hd := r.p.HeadDim
	half := hd / 2
	for ch := lo; ch < hi; ch++ {
		cache := r.caches[ch][:hd]
		for t := ch; t < r.b.n; t += r.nchunks {
			theta := float32(r.b.pos[t])
			for i := 0; i < half; i++ {
				a := float64(r.p.FreqScale * theta)
				cs, sn := float32(math.Cos(a)), float32(math.Sin(a))
				if r.p.Neox {
					cache[i], cache[half+i] = cs, sn
				} else {
					cache[2*i], cache[2*i+1] = cs, sn
				}
				theta *= r.thetaScale
			}
			row := r.x.row(t)[:r.p.Heads*hd]
			if r.p.Neox {
				vecmath.RotateHalves(row, cache[:half], cache[half:])
			} else {
				vecmath.RotatePairs(row, cache)
			}
		}
	}
}
