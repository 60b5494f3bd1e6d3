package cuda

import (
	"fmt"
	"math"

	"qinfer/host/backend"
	"qinfer/kernels"
)

// RMSNorm: dst[t] = (x[t] * (1/sqrtf(mean(x[t]^2) + eps))) * w; dst may be
// x. w is a 1-row F32 or F16 weight.
func (b *Backend) RMSNorm(dst, x, w backend.Tensor, eps float32) error {
	const op = "rmsnorm"
	var d, xa *activation
	var wt *weight
	return b.run(op, func() error {
		var err error
		if d, err = asActivation(op, "destination", dst); err != nil {
			return err
		}
		if xa, err = asActivation(op, "input", x); err != nil {
			return err
		}
		if wt, err = asWeight(op, "weight", w); err != nil {
			return err
		}
		if err := backend.CheckSameShape(op, d, xa); err != nil {
			return err
		}
		if wt.rows != 1 || wt.cols != xa.cols || (wt.typ != backend.F32 && wt.typ != backend.F16) {
			return fmt.Errorf("rmsnorm: %v for input %s: want a 1x%d F32 or F16 weight", wt, shape(xa), xa.cols)
		}
		if !(eps >= 0) {
			return fmt.Errorf("rmsnorm: epsilon %v must be non-negative", eps)
		}
		return checkInPlace(op, d, xa)
	}, func() (int64, int64, error) {
		f16 := 0
		if wt.typ == backend.F16 {
			f16 = 1
		}
		b.args.reset().ptr(xa.ptr()).i64(xa.ld).ptr(wt.part(0)).i64(f16).ptr(d.ptr()).i64(d.ld).i64(xa.cols).f32(eps)
		n := int64(xa.rows) * int64(xa.cols)
		return 8*n + wt.lay.size, 4 * n, b.launch(kernels.RMSNorm, Dim3{X: uint32(xa.rows), Y: 1, Z: 1})
	})
}

// ApplyRoPE rotates each head of x in place by its token's position (read
// from the batch on the device).
func (b *Backend) ApplyRoPE(x backend.Tensor, bt backend.Batch, p backend.RoPE) error {
	const op = "rope"
	var xa *activation
	var bb *batch
	return b.run(op, func() error {
		var err error
		if xa, err = asActivation(op, "input", x); err != nil {
			return err
		}
		if bb, err = asSetBatch(op, bt); err != nil {
			return err
		}
		if p.HeadDim <= 0 || p.HeadDim%2 != 0 || p.Heads <= 0 {
			return fmt.Errorf("rope: head dimension %d must be even and positive, heads %d positive", p.HeadDim, p.Heads)
		}
		if !(p.FreqBase > 0) || !(p.FreqScale > 0) {
			return fmt.Errorf("rope: frequency base %v and scale %v must be positive", p.FreqBase, p.FreqScale)
		}
		if xa.rows != bb.n || xa.cols != p.Heads*p.HeadDim {
			return fmt.Errorf("rope: input %s for %d tokens of %d heads x %d: want %dx%d",
				shape(xa), bb.n, p.Heads, p.HeadDim, bb.n, p.Heads*p.HeadDim)
		}
		return nil
	}, func() (int64, int64, error) {
		// theta_scale as the CPU backend computes it: powf(base, -2/d).
		thetaScale := float32(math.Pow(float64(p.FreqBase), float64(float32(-2)/float32(p.HeadDim))))
		neox := 0
		if p.Neox {
			neox = 1
		}
		b.args.reset().ptr(xa.ptr()).i64(xa.ld).ptr(bb.pos()).i64(p.Heads).i64(p.HeadDim).f32(thetaScale).f32(p.FreqScale).i64(neox)
		n := int64(xa.rows) * int64(xa.cols)
		return 8 * n, 3 * n, b.launch(kernels.RoPE, Dim3{X: uint32(xa.rows), Y: 1, Z: 1})
	})
}

// SiLUMul: dst = silu(gate) * up; dst may be gate (or up).
func (b *Backend) SiLUMul(dst, gate, up backend.Tensor) error {
	const op = "silumul"
	var d, g, u *activation
	return b.run(op, func() error {
		var err error
		if d, err = asActivation(op, "destination", dst); err != nil {
			return err
		}
		if g, err = asActivation(op, "gate", gate); err != nil {
			return err
		}
		if u, err = asActivation(op, "up", up); err != nil {
			return err
		}
		if err := backend.CheckSameShape(op, d, g); err != nil {
			return err
		}
		if err := backend.CheckSameShape(op, d, u); err != nil {
			return err
		}
		return checkInPlace(op, d, g, u)
	}, func() (int64, int64, error) {
		b.args.reset().ptr(g.ptr()).i64(g.ld).ptr(u.ptr()).i64(u.ld).ptr(d.ptr()).i64(d.ld).i64(d.cols)
		n := int64(d.rows) * int64(d.cols)
		return 12 * n, 8 * n, b.launch(kernels.SiLUMul, Dim3{X: cdiv(d.cols, 256), Y: uint32(d.rows), Z: 1})
	})
}

// Add: dst = a + b, b broadcast when it has one row; dst may be a.
func (b *Backend) Add(dst, a, bb backend.Tensor) error {
	const op = "add"
	var d, x, y *activation
	return b.run(op, func() error {
		var err error
		if d, err = asActivation(op, "destination", dst); err != nil {
			return err
		}
		if x, err = asActivation(op, "a", a); err != nil {
			return err
		}
		if y, err = asActivation(op, "b", bb); err != nil {
			return err
		}
		if err := backend.CheckSameShape(op, d, x); err != nil {
			return err
		}
		if y.cols != x.cols || (y.rows != x.rows && y.rows != 1) {
			return fmt.Errorf("add: b %s does not match a %s nor broadcast as 1x%d", shape(y), shape(x), x.cols)
		}
		if d.rows > maxGridYZ {
			return fmt.Errorf("add: %d rows exceed %d per call", d.rows, maxGridYZ)
		}
		if err := checkInPlace(op, d, x); err != nil {
			return err
		}
		if y.rows == x.rows {
			return checkInPlace(op, d, y)
		}
		return checkDisjoint(op, d, y) // a broadcast row must survive every row's write
	}, func() (int64, int64, error) {
		ldb := y.ld
		if y.rows == 1 && x.rows != 1 {
			ldb = 0
		}
		b.args.reset().ptr(x.ptr()).i64(x.ld).ptr(y.ptr()).i64(ldb).ptr(d.ptr()).i64(d.ld).i64(d.cols)
		n := int64(d.rows) * int64(d.cols)
		return 8*n + 4*int64(y.rows)*int64(y.cols), n, b.launch(kernels.Add, Dim3{X: cdiv(d.cols, 256), Y: uint32(d.rows), Z: 1})
	})
}

// Softmax normalizes each row of x in place.
func (b *Backend) Softmax(x backend.Tensor) error {
	const op = "softmax"
	var xa *activation
	return b.run(op, func() error {
		var err error
		xa, err = asActivation(op, "input", x)
		return err
	}, func() (int64, int64, error) {
		b.args.reset().ptr(xa.ptr()).i64(xa.ld).i64(xa.cols)
		n := int64(xa.rows) * int64(xa.cols)
		return 8 * n, 4 * n, b.launch(kernels.Softmax, Dim3{X: uint32(xa.rows), Y: 1, Z: 1})
	})
}

// GatherOutputs: dst[i] = src[b.Outputs[i]], for the batch's output count
// as read on the device.
func (b *Backend) GatherOutputs(dst, src backend.Tensor, bt backend.Batch) error {
	const op = "gather outputs"
	var d, s *activation
	var bb *batch
	return b.run(op, func() error {
		var err error
		if d, err = asActivation(op, "destination", dst); err != nil {
			return err
		}
		if s, err = asActivation(op, "source", src); err != nil {
			return err
		}
		if bb, err = asSetBatch(op, bt); err != nil {
			return err
		}
		if s.rows != bb.n || d.rows != bb.nout || d.cols != s.cols {
			return fmt.Errorf("gather outputs: source %s, destination %s for a batch of %d tokens with %d outputs: want source %dx%d and destination %dx%d",
				shape(s), shape(d), bb.n, bb.nout, bb.n, s.cols, bb.nout, s.cols)
		}
		return checkDisjoint(op, d, s)
	}, func() (int64, int64, error) {
		b.args.reset().ptr(s.ptr()).i64(s.ld).i64(s.rows).ptr(bb.outputs()).ptr(bb.noutPtr()).ptr(d.ptr()).i64(d.ld).i64(d.cols).ptr(b.status)
		return 8 * int64(d.rows) * int64(d.cols), 0, b.launch(kernels.GatherRows, Dim3{X: cdiv(d.cols, 256), Y: uint32(d.rows), Z: 1})
	})
}

// Embed: dst[i] = dequantized row b.IDs[i] of table (ids read on the
// device; one outside the table is reported at the next synchronisation).
func (b *Backend) Embed(dst, table backend.Tensor, bt backend.Batch) error {
	const op = "embed"
	var d *activation
	var tab *weight
	var bb *batch
	return b.run(op, func() error {
		var err error
		if d, err = asActivation(op, "destination", dst); err != nil {
			return err
		}
		if tab, err = asWeight(op, "table", table); err != nil {
			return err
		}
		if bb, err = asSetBatch(op, bt); err != nil {
			return err
		}
		if d.rows != bb.n || d.cols != tab.cols {
			return fmt.Errorf("embed: destination %s for %d tokens of %v: want %dx%d", shape(d), bb.n, tab, bb.n, tab.cols)
		}
		for i, id := range bb.hostArr(0)[:bb.n] {
			if int(id) >= tab.rows {
				return fmt.Errorf("embed: token %d id %d outside %v", i, id, tab)
			}
		}
		return nil
	}, func() (int64, int64, error) {
		rowBytes := tab.lay.size / int64(tab.rows)
		n := int64(d.rows)
		return n * (rowBytes + 4*int64(tab.cols)), n * int64(tab.cols), b.dequant(tab, bb.ids(), 0, d.rows, d.ptr(), d.ld)
	})
}
