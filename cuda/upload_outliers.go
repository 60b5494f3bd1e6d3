package cuda

import (
	"encoding/binary"
	"fmt"

	"qinfer/host/backend"
	"qinfer/host/quant"
	"qinfer/kernels"
)

// LLM.int8()-style outlier columns of the row formats (docs/formats.md,
// host/quant outliers.go). A split weight keeps its codes and row scales
// in the format's layout, with the code of a zero weight in the outlier
// columns, so the format's GEMV and GEMM kernels run it unchanged once
// the activations of those channels are quantized to 0 (qi_quant_w8 with
// the weight's column mask, which also copies their unquantized values
// aside). MatMul then adds the float part, those values times their F16
// weights, with one more kernel (qi_outlier_add); Embed and Read
// overwrite the outlier columns of the dequantized rows with the F16
// weights (qi_dequant_outliers). Both follow quant.RowSplitDot and
// quant.DequantizeRowSplit bit for bit.

// split locates a split weight's outlier arrays in its allocation
// (layout's comment); k is 0 for a weight without outlier columns. ldo
// is the row stride of the transposed weights: rows rounded up to
// qi_outlier_add's block of rows, whose 16-byte copies stay inside.
type split struct {
	k                         int
	ldo                       int
	ocolsOff, omaskOff, owOff int64
}

// addSplit reserves the arrays of k outlier columns after the parts.
func (l *layout) addSplit(k int) error {
	if k == 0 {
		return nil
	}
	if !quant.IsRowFormat(l.typ) {
		return fmt.Errorf("outlier columns apply to row formats (W8, FP8_E4M3, TERNARY, BINARY), not %v", l.typ)
	}
	if k < 0 || k > l.cols {
		return fmt.Errorf("%d outlier columns for rows of %d", k, l.cols)
	}
	s := split{k: k, ldo: roundUp(l.rows, kernels.OutlierRows), ocolsOff: l.size}
	s.omaskOff = align256(s.ocolsOff + 4*int64(k))
	s.owOff = align256(s.omaskOff + int64(l.kpad/8))
	l.size = align256(s.owOff + 2*int64(k)*int64(s.ldo))
	l.split = s
	return nil
}

// The device addresses of a split weight's arrays.
func (w *weight) ocols() DevicePtr { return w.buf + DevicePtr(w.lay.split.ocolsOff) }
func (w *weight) omask() DevicePtr { return w.buf + DevicePtr(w.lay.split.omaskOff) }
func (w *weight) ow() DevicePtr    { return w.buf + DevicePtr(w.lay.split.owOff) }

// splitTokenStride is the row stride of the outlier values of ntok
// tokens (qi_quant_w8's xo): whole groups of qi_outlier_add's tokens, so
// that each group is whole 16-byte copies.
func splitTokenStride(ntok int) int { return roundUp(ntok, kernels.OutlierTokens) }

// splitQuantArgs appends qi_quant_w8's split arguments (omask, ocols,
// nout, xo, ldxo): the weight's mask and columns and the outlier values'
// place xo, or nothing (null pointers, 0) for a weight without outlier
// columns, which the kernel quantizes as before.
func (w *weight) splitQuantArgs(a *args, xo DevicePtr, ntok int) {
	if w.lay.split.k == 0 {
		a.ptr(0).ptr(0).i64(0).ptr(0).i64(0)
		return
	}
	a.ptr(w.omask()).ptr(w.ocols()).i64(w.lay.split.k).ptr(xo).i64(splitTokenStride(ntok))
}

// splitArrays returns the host images of the column list and the mask.
func splitArrays(ocols []int32, kpad int) (cols, mask []byte) {
	cols = make([]byte, 4*len(ocols))
	mask = make([]byte, kpad/8)
	for j, c := range ocols {
		binary.LittleEndian.PutUint32(cols[4*j:], uint32(c))
		// Bit c%32 of little-endian word c/32 is bit c%8 of byte c/8.
		mask[c/8] |= 1 << (c % 8)
	}
	return cols, mask
}

// transposeOutliers writes columns j0..j0+n of the rows x k F16 weights
// ow (row-major) as n rows of ldo halves, zeros past rows.
func transposeOutliers(dst []byte, ow []uint16, rows, k, ldo, j0, n int) {
	clear(dst[:2*n*ldo])
	for j := j0; j < j0+n; j++ {
		out := dst[2*(j-j0)*ldo:]
		for r := 0; r < rows; r++ {
			binary.LittleEndian.PutUint16(out[2*r:], ow[r*k+j])
		}
	}
}

// uploadSplit copies the outlier arrays of w into t's allocation, the
// transposed weights a bounded number of columns at a time (device
// thread).
func (b *Backend) uploadSplit(t *weight, w *backend.Weight) error {
	s := t.lay.split
	if s.k == 0 {
		return nil
	}
	cols, mask := splitArrays(w.OutlierCols, t.lay.kpad)
	if err := b.drv.MemcpyHtoDAsync(t.ocols(), ptrOf(&cols[0]), int64(len(cols)), b.stream); err != nil {
		return fmt.Errorf("copy outlier columns: %w", err)
	}
	if err := b.drv.MemcpyHtoDAsync(t.omask(), ptrOf(&mask[0]), int64(len(mask)), b.stream); err != nil {
		return fmt.Errorf("copy outlier column mask: %w", err)
	}
	step := max(1, uploadChunk/(2*s.ldo))
	for j0 := 0; j0 < s.k; j0 += step {
		n := min(step, s.k-j0)
		buf := make([]byte, 2*n*s.ldo)
		transposeOutliers(buf, w.OutlierW, w.Rows, s.k, s.ldo, j0, n)
		dst := t.ow() + DevicePtr(2*int64(j0)*int64(s.ldo))
		if err := b.drv.MemcpyHtoDAsync(dst, ptrOf(&buf[0]), int64(len(buf)), b.stream); err != nil {
			return fmt.Errorf("copy outlier weights of columns %d..%d: %w", j0, j0+n, err)
		}
	}
	return nil
}

// outlierAdd enqueues the float part of a split weight's product into d,
// which holds the int8 part of ntok tokens, from the outlier values xo
// that qi_quant_w8 copied (device thread). Nothing for a weight without
// outlier columns.
func (b *Backend) outlierAdd(d *activation, w *weight, ntok int, xo DevicePtr) error {
	s := w.lay.split
	if s.k == 0 {
		return nil
	}
	b.args.reset().ptr(xo).i64(splitTokenStride(ntok)).ptr(w.ow()).i64(s.k).i64(s.ldo).
		ptr(d.ptr()).i64(d.ld).i64(w.rows).i64(ntok)
	return b.launch(kernels.OutlierAdd, Dim3{X: cdiv(w.rows, kernels.OutlierRows), Y: cdiv(ntok, kernels.OutlierTokens), Z: 1})
}

// dequantSplit overwrites the outlier columns of n dequantized rows of w
// in y (row stride ldy), dequant's rows: ids[i], or row0+i when ids is 0
// (device thread). Nothing for a weight without outlier columns.
func (b *Backend) dequantSplit(w *weight, ids DevicePtr, row0, n int, y DevicePtr, ldy int) error {
	s := w.lay.split
	if s.k == 0 {
		return nil
	}
	ow, rows := w.ow(), w.rows
	if ids == 0 {
		// Rows from row0: shift the weights' base, as dequant shifts rows.
		ow += DevicePtr(2 * row0)
		rows -= row0
	}
	b.args.reset().ptr(ids).ptr(w.ocols()).ptr(ow).i64(s.k).i64(s.ldo).ptr(y).i64(ldy).i64(rows)
	return b.launch(kernels.DequantOutliers, Dim3{X: cdiv(s.k, 256), Y: uint32(n), Z: 1})
}
