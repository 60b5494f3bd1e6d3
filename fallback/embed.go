package fallback

import (
	"fmt"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

// Embed writes the dequantized table row of each batch token's id:
// ggml_get_rows, which dequantizes with the type's to_float, the same
// dequantize_row_* as quant.Dequantize.
func (c *CPU) Embed(dst, table backend.Tensor, bt backend.Batch) error {
	if err := c.begin(opEmbed); err != nil {
		return err
	}
	var st opStats
	defer c.end(&st)

	const op = "embed"
	d, err := asActivation(op, "destination", dst)
	if err != nil {
		return err
	}
	tab, err := asWeight(op, "table", table)
	if err != nil {
		return err
	}
	b, err := asSetBatch(op, bt)
	if err != nil {
		return err
	}
	if d.rows != b.n || d.cols != tab.cols {
		return fmt.Errorf("embed: destination %s for %d tokens of %v: want %dx%d", shape(d), b.n, tab, b.n, tab.cols)
	}
	for i, id := range b.ids[:b.n] {
		if int(id) >= tab.rows {
			return fmt.Errorf("embed: token %d id %d outside %v", i, id, tab)
		}
	}
	for i, id := range b.ids[:b.n] {
		if err := dequantizeRow(tab, int(id), d.row(i)); err != nil {
			return fmt.Errorf("embed: token %d: %w", i, err)
		}
	}
	st = opStats{bytes: int64(b.n) * int64(tab.rowBytes+4*tab.cols), ops: int64(b.n) * int64(tab.cols), ok: true}
	return nil
}

// dequantizeRow decodes row r of w into dst (len w.cols).
func dequantizeRow(w *weightTensor, r int, dst []float32) error {
	src := w.row(r)
	if w.rowm != nil {
		if err := quant.DequantizeRow(w.typ, src, w.rowScales[r], dst); err != nil {
			return fmt.Errorf("%v row %d: %w", w, r, err)
		}
		outlierRow(w, r, dst)
		return nil
	}
	if err := quant.Dequantize(w.typ, src, dst); err != nil {
		return fmt.Errorf("%v row %d: %w", w, r, err)
	}
	return nil
}

// GatherOutputs copies the batch rows whose logits are wanted:
// dst[i] = src[b.Outputs[i]].
func (c *CPU) GatherOutputs(dst, src backend.Tensor, bt backend.Batch) error {
	if err := c.begin(opGather); err != nil {
		return err
	}
	var st opStats
	defer c.end(&st)

	const op = "gather outputs"
	d, err := asActivation(op, "destination", dst)
	if err != nil {
		return err
	}
	s, err := asActivation(op, "source", src)
	if err != nil {
		return err
	}
	b, err := asSetBatch(op, bt)
	if err != nil {
		return err
	}
	if s.rows != b.n || d.rows != b.nout || d.cols != s.cols {
		return fmt.Errorf("gather outputs: source %s, destination %s for a batch of %d tokens with %d outputs: want source %dx%d and destination %dx%d",
			shape(s), shape(d), b.n, b.nout, b.n, s.cols, b.nout, s.cols)
	}
	if err := checkDisjoint(op, d, s); err != nil {
		return err
	}
	for i, o := range b.outputs[:b.nout] {
		copy(d.row(i), s.row(int(o)))
	}
	st = opStats{bytes: 8 * int64(b.nout) * int64(s.cols), ok: true}
	return nil
}
