package fallback

import (
	"fmt"
	"math"

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
func (r *ropeState) chunks(lo, hi int) {
	hd := r.p.HeadDim
	for ch := lo; ch < hi; ch++ {
		cache := r.caches[ch][:hd]
		for t := ch; t < r.b.n; t += r.nchunks {
			theta := float32(r.b.pos[t])
			for i0 := 0; i0 < hd; i0 += 2 {
				a := float64(r.p.FreqScale * theta)
				cache[i0] = float32(math.Cos(a))
				cache[i0+1] = float32(math.Sin(a))
				theta *= r.thetaScale
			}
			row := r.x.row(t)
			for h := 0; h < r.p.Heads; h++ {
				head := row[h*hd : (h+1)*hd]
				if r.p.Neox {
					rotate(head, hd/2, cache)
				} else {
					rotatePairs(head, cache)
				}
			}
		}
	}
}

// rotatePairs is the normal mode: adjacent elements (2i, 2i+1).
func rotatePairs(x, cache []float32) {
	for i0 := 0; i0+1 < len(x); i0 += 2 {
		cs, sn := cache[i0], cache[i0+1]
		x0, x1 := x[i0], x[i0+1]
		x[i0] = fma32(x0, cs, -float32(x1*sn))
		x[i0+1] = fma32(x0, sn, float32(x1*cs))
	}
}

// rotate is the NEOX mode: element i with i+half, angle of pair i.
func rotate(x []float32, half int, cache []float32) {
	for i := 0; i < half; i++ {
		cs, sn := cache[2*i], cache[2*i+1]
		x0, x1 := x[i], x[i+half]
		x[i] = fma32(x0, cs, -float32(x1*sn))
		x[i+half] = fma32(x0, sn, float32(x1*cs))
	}
}
