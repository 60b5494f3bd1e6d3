package fallback

import (
	"fmt"

	"qinfer/fallback/kernels"
	"qinfer/fallback/rowkernels"
	"qinfer/host/backend"
)

// MatMul computes dst[t][n] = sum_k w[n][k] * x[t][k]. The activations are
// first quantized to the weight type's activation format (as llama.cpp's
// CPU matmul does: Q8_0 for Q8_0/Q4_0, Q8_K for K-quants, F16 for F16)
// into a scratch buffer owned by the backend, then the kernels multiply
// the quantized rows with the weight as Upload prepared it.
func (c *CPU) MatMul(dst, w, x backend.Tensor) error {
	if err := c.begin(opMatMul); err != nil {
		return err
	}
	var st opStats
	defer c.end(&st)

	const op = "matmul"
	d, err := asActivation(op, "destination", dst)
	if err != nil {
		return err
	}
	wt, err := asWeight(op, "weight", w)
	if err != nil {
		return err
	}
	xa, err := asActivation(op, "input", x)
	if err != nil {
		return err
	}
	if xa.cols != wt.cols || d.rows != xa.rows || d.cols != wt.rows {
		return fmt.Errorf("matmul: %v times input %s into destination %s: want input Nx%d and destination Nx%d",
			wt, shape(xa), shape(d), wt.cols, wt.rows)
	}
	if err := checkDisjoint(op, d, xa); err != nil {
		return err
	}
	if wt.rowm != nil {
		return c.matMulRows(d, wt, xa, &st)
	}
	ntok := xa.rows
	arb, err := kernels.ActRowBytes(wt.typ, wt.cols)
	if err != nil {
		return fmt.Errorf("matmul %v: %w", wt, err)
	}
	need := arb * ntok
	if cap(c.actq) < need {
		c.actq = make([]byte, need)
	}
	xq := c.actq[:need]
	if err := kernels.QuantizeActs(c.pool, wt.typ, xa.data, xa.stride, ntok, xa.cols, xq); err != nil {
		return fmt.Errorf("matmul %v: quantize input %v: %w", wt, xa, err)
	}
	if err := kernels.MatMulPacked(c.pool, wt.packed, xq, ntok, d.data, d.stride); err != nil {
		return fmt.Errorf("matmul %v: %w", wt, err)
	}
	st = opStats{
		bytes: int64(len(wt.data)) + 4*int64(ntok)*int64(wt.cols+wt.rows),
		ops:   2 * int64(wt.rows) * int64(wt.cols) * int64(ntok),
		ok:    true,
	}
	return nil
}

// matMulRows runs a row-format weight (W8, FP8, Ternary, Binary): the
// input quantized per token to int8 (with the weight's static activation
// scale when it has one, and without its outlier channels when it is
// split), then fallback/rowkernels' exact integer products scaled by row
// and token scales, plus the float product of the outlier columns.
func (c *CPU) matMulRows(d *activation, wt *weightTensor, xa *activation, st *opStats) error {
	ocols := wt.rowm.OutlierCols()
	if err := rowkernels.QuantizeActsSplit(c.pool, xa.data, xa.stride, xa.rows, xa.cols, wt.actScale, ocols, &c.rowActs); err != nil {
		return fmt.Errorf("matmul %v: quantize input %v: %w", wt, xa, err)
	}
	if err := rowkernels.MatMul(c.pool, wt.rowm, &c.rowActs, d.data, d.stride); err != nil {
		return fmt.Errorf("matmul %v: %w", wt, err)
	}
	k := int64(len(ocols))
	*st = opStats{
		bytes: int64(len(wt.data)) + 4*int64(wt.rows) + 2*k*int64(wt.rows) + 4*int64(xa.rows)*int64(wt.cols+wt.rows),
		ops:   2 * int64(wt.rows) * int64(wt.cols) * int64(xa.rows),
		ok:    true,
	}
	return nil
}
