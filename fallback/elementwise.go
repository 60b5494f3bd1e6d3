package fallback

import (
	"fmt"
	"math"

	"qinfer/fallback/vecmath"
	"qinfer/host/backend"
)

// parallelElems is the size below which an elementwise op runs on the
// calling goroutine: waking workers costs more than the work.
const parallelElems = 1 << 15

// ewState carries an elementwise op's arguments to its row function, which
// is bound once in New so that handing it to the pool allocates nothing.
type ewState struct {
	d, a, b *activation
	w       []float32 // RMSNorm weight, dequantized into reusable scratch
	eps     float32

	rmsFn, siluFn, addFn, softFn func(lo, hi int)
}

func (e *ewState) init() {
	e.rmsFn = e.rmsRows
	e.siluFn = e.siluRows
	e.addFn = e.addRows
	e.softFn = e.softRows
}

// release drops references to the op's tensors so that a freed tensor is
// not kept alive by the backend.
func (e *ewState) release() { e.d, e.a, e.b = nil, nil, nil }

// runRows applies fn to rows [0, rows), on the pool when the op is large.
func (c *CPU) runRows(rows, cols int, fn func(lo, hi int)) {
	if rows > 1 && rows*cols >= parallelElems && c.pool.Threads() > 1 {
		grain := max(1, parallelElems/(2*cols))
		c.pool.For(rows, grain, fn)
		return
	}
	fn(0, rows)
}

// RMSNorm follows ggml_compute_forward_rms_norm_f32 and the graph's
// ggml_mul by the weight: the mean of squares of float products is
// accumulated in double, scale = 1/sqrtf(mean+eps) in float, then
// y = (x*scale)*w, each product rounded to float.
func (c *CPU) RMSNorm(dst, x, w backend.Tensor, eps float32) error {
	if err := c.begin(opRMSNorm); err != nil {
		return err
	}
	var st opStats
	defer c.end(&st)

	const op = "rmsnorm"
	d, err := asActivation(op, "destination", dst)
	if err != nil {
		return err
	}
	xa, err := asActivation(op, "input", x)
	if err != nil {
		return err
	}
	wt, err := asWeight(op, "weight", w)
	if err != nil {
		return err
	}
	if err := backend.CheckSameShape(op, d, xa); err != nil {
		return err
	}
	if wt.rows != 1 || wt.cols != xa.cols {
		return fmt.Errorf("rmsnorm: %v for input %s: want a 1x%d weight", wt, shape(xa), xa.cols)
	}
	if !(eps >= 0) {
		return fmt.Errorf("rmsnorm: epsilon %v must be non-negative", eps)
	}
	if err := checkInPlace(op, d, xa); err != nil {
		return err
	}
	if cap(c.normW) < wt.cols {
		c.normW = make([]float32, wt.cols)
	}
	c.ew.w = c.normW[:wt.cols]
	if err := dequantizeRow(wt, 0, c.ew.w); err != nil {
		return fmt.Errorf("rmsnorm: %w", err)
	}
	c.ew.d, c.ew.a, c.ew.eps = d, xa, eps
	c.runRows(xa.rows, xa.cols, c.ew.rmsFn)
	c.ew.release()
	n := int64(xa.rows) * int64(xa.cols)
	st = opStats{bytes: 8*n + int64(wt.rowBytes), ops: 4 * n, ok: true}
	return nil
}

func (e *ewState) rmsRows(lo, hi int) {
	for i := lo; i < hi; i++ {
		x, y := e.a.row(i), e.d.row(i)
		var sum float64
		for _, v := range x {
			sum += float64(float32(v * v))
		}
		mean := float32(sum / float64(len(x)))
		scale := 1 / float32(math.Sqrt(float64(mean+e.eps)))
		for j, v := range x {
			y[j] = float32(float32(v*scale) * e.w[j])
		}
	}
}

// SiLUMul computes dst = silu(gate) * up as llama.cpp's graph does
// (ggml_silu, then ggml_mul): ggml_vec_silu_f32 uses ggml_v_silu on each
// row's blocks of 8 and ggml_silu_f32 (libm expf) on the tail.
func (c *CPU) SiLUMul(dst, gate, up backend.Tensor) error {
	if err := c.begin(opSiLUMul); err != nil {
		return err
	}
	var st opStats
	defer c.end(&st)

	const op = "silumul"
	d, err := asActivation(op, "destination", dst)
	if err != nil {
		return err
	}
	g, err := asActivation(op, "gate", gate)
	if err != nil {
		return err
	}
	u, err := asActivation(op, "up", up)
	if err != nil {
		return err
	}
	if err := backend.CheckSameShape(op, d, g); err != nil {
		return err
	}
	if err := backend.CheckSameShape(op, d, u); err != nil {
		return err
	}
	if err := checkInPlace(op, d, g, u); err != nil {
		return err
	}
	c.ew.d, c.ew.a, c.ew.b = d, g, u
	c.runRows(d.rows, d.cols, c.ew.siluFn)
	c.ew.release()
	n := int64(d.rows) * int64(d.cols)
	st = opStats{bytes: 12 * n, ops: 8 * n, ok: true}
	return nil
}

func (e *ewState) siluRows(lo, hi int) {
	for i := lo; i < hi; i++ {
		vecmath.SiLUMul(e.d.row(i), e.a.row(i), e.b.row(i))
	}
}

// Add computes dst = a + b; a one-row b is added to every row of a.
func (c *CPU) Add(dst, a, b backend.Tensor) error {
	if err := c.begin(opAdd); err != nil {
		return err
	}
	var st opStats
	defer c.end(&st)

	const op = "add"
	d, err := asActivation(op, "destination", dst)
	if err != nil {
		return err
	}
	aa, err := asActivation(op, "a", a)
	if err != nil {
		return err
	}
	ba, err := asActivation(op, "b", b)
	if err != nil {
		return err
	}
	if err := backend.CheckSameShape(op, d, aa); err != nil {
		return err
	}
	if ba.cols != aa.cols || (ba.rows != aa.rows && ba.rows != 1) {
		return fmt.Errorf("add: b %s does not match a %s nor broadcast as 1x%d", shape(ba), shape(aa), aa.cols)
	}
	if err := checkInPlace(op, d, aa); err != nil {
		return err
	}
	if ba.rows == aa.rows {
		err = checkInPlace(op, d, ba)
	} else {
		err = checkDisjoint(op, d, ba) // a broadcast row must survive every row's write
	}
	if err != nil {
		return err
	}
	c.ew.d, c.ew.a, c.ew.b = d, aa, ba
	c.runRows(d.rows, d.cols, c.ew.addFn)
	c.ew.release()
	n := int64(d.rows) * int64(d.cols)
	st = opStats{bytes: 8*n + 4*int64(ba.rows)*int64(ba.cols), ops: n, ok: true}
	return nil
}

func (e *ewState) addRows(lo, hi int) {
	for i := lo; i < hi; i++ {
		bi := i
		if e.b.rows == 1 {
			bi = 0
		}
		x, z, y := e.a.row(i), e.b.row(bi), e.d.row(i)
		for j := range y {
			y[j] = x[j] + z[j]
		}
	}
}

// Softmax normalizes each row in place as ggml_soft_max does (no mask,
// scale 1): max-subtracted, v_expf on blocks of 8 with the sum in double.
func (c *CPU) Softmax(x backend.Tensor) error {
	if err := c.begin(opSoftmax); err != nil {
		return err
	}
	var st opStats
	defer c.end(&st)

	xa, err := asActivation("softmax", "input", x)
	if err != nil {
		return err
	}
	c.ew.d = xa
	c.runRows(xa.rows, xa.cols, c.ew.softFn)
	c.ew.release()
	n := int64(xa.rows) * int64(xa.cols)
	st = opStats{bytes: 8 * n, ops: 4 * n, ok: true}
	return nil
}

func (e *ewState) softRows(lo, hi int) {
	for i := lo; i < hi; i++ {
		r := e.d.row(i)
		vecmath.Softmax(r, r, false)
	}
}
