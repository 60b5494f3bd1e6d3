package cuda

import (
	"errors"
	"fmt"

	"qinfer/host/backend"
	"qinfer/host/quant"
	"qinfer/kernels"
)

// weight is an uploaded weight in qinfer's device layout.
type weight struct {
	name     string
	typ      backend.DType
	rows     int
	cols     int
	lay      *layout
	buf      DevicePtr
	actScale float32
	freed    bool
}

func (w *weight) DType() backend.DType { return w.typ }
func (w *weight) Rows() int            { return w.rows }
func (w *weight) Cols() int            { return w.cols }
func (w *weight) String() string {
	return fmt.Sprintf("weight %s (%v %dx%d)", w.name, w.typ, w.rows, w.cols)
}

// part returns the device address of part i.
func (w *weight) part(i int) DevicePtr { return w.buf + DevicePtr(w.lay.parts[i].off) }

// uploadChunk bounds the host staging of one upload step.
const uploadChunk = 32 << 20

// Upload repacks w into the device layout (upload_layout.go) and copies it
// to device memory, where it stays until Free. Running out of device
// memory is an error that says how much the weight needs and how much is
// free.
func (b *Backend) Upload(w *backend.Weight) (backend.Tensor, error) {
	if w == nil {
		return nil, errors.New("upload: nil weight")
	}
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	lay, err := newLayout(w.Type, w.Rows, w.Cols)
	if err != nil {
		return nil, fmt.Errorf("upload weight %s: %w", w.Name, err)
	}
	rowFmt := quant.IsRowFormat(w.Type)
	if rowFmt {
		if err := checkRowWeight(w); err != nil {
			return nil, fmt.Errorf("upload weight %s: %w", w.Name, err)
		}
		if err := lay.addSplit(len(w.OutlierCols)); err != nil {
			return nil, fmt.Errorf("upload weight %s: %w", w.Name, err)
		}
	}
	rb, _ := backend.RowBytes(w.Type, w.Cols)
	if err := b.enter("upload"); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	if err := b.noCapture("upload " + w.Name); err != nil {
		return nil, err
	}
	t := &weight{name: w.Name, typ: w.Type, rows: w.Rows, cols: w.Cols, lay: lay, actScale: w.ActScale}
	what := fmt.Sprintf("weight %s (%v %dx%d)", w.Name, w.Type, w.Rows, w.Cols)
	err = b.do(func() error {
		free, total, err := b.drv.MemGetInfo()
		if err != nil {
			return fmt.Errorf("query device memory: %w", err)
		}
		if lay.size > free {
			return oomError(what, lay.size, free, total, ErrOutOfMemory)
		}
		if t.buf, err = b.alloc(what, lay.size); err != nil {
			return err
		}
		// Repack a chunk of rows at a time, so host staging stays small.
		step := max(1, uploadChunk/max(rb, 1))
		for r0 := 0; r0 < w.Rows; r0 += step {
			n := min(step, w.Rows-r0)
			c := lay.newChunk(r0, n)
			for r := r0; r < r0+n; r++ {
				var scale float32
				if rowFmt {
					scale = w.RowScales[r]
				}
				c.repackRow(r, w.Data[r*rb:(r+1)*rb], scale)
			}
			for i, p := range lay.parts {
				dst := t.buf + DevicePtr(p.off+int64(r0)*int64(p.rowBytes))
				if len(c.bufs[i]) == 0 {
					continue
				}
				if err := b.drv.MemcpyHtoDAsync(dst, ptrOf(&c.bufs[i][0]), int64(len(c.bufs[i])), b.stream); err != nil {
					_ = b.free(t.buf)
					return fmt.Errorf("copy rows %d..%d (%s): %w", r0, r0+n, p.name, err)
				}
			}
		}
		if err := b.uploadSplit(t, w); err != nil {
			_ = b.free(t.buf)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", what, err)
	}
	return t, nil
}

// checkRowWeight applies the CPU backend's checks to a row-format weight
// (the same quant functions, so both backends accept the same weights):
// rows no longer than the int32 sums hold exactly, a static activation
// scale that is finite with a finite inverse, no code the kernels do not
// handle (a ternary 3, an FP8 NaN), and for a weight split into outlier
// columns, quant.CheckOutliers (columns increasing and in range, finite
// F16 weights, the code of a zero weight in those columns).
func checkRowWeight(w *backend.Weight) error {
	if w.Cols > quant.MaxRowCols {
		return fmt.Errorf("rows of %d elements, at most %d supported", w.Cols, quant.MaxRowCols)
	}
	if w.ActScale != 0 {
		if err := quant.CheckActScale(w.ActScale); err != nil {
			return err
		}
	}
	if err := quant.CheckRowData(w.Type, w.Data, w.Rows, w.Cols); err != nil {
		return err
	}
	if len(w.OutlierCols) == 0 && len(w.OutlierW) == 0 {
		return nil
	}
	return quant.CheckOutliers(w.Type, w.Data, w.Rows, w.Cols, w.OutlierCols, w.OutlierW)
}

// oomError says what could not be allocated, how much it needed and how
// much the device had free; errors.Is(err, ErrOutOfMemory) holds. free
// and total are negative when unknown.
func oomError(what string, need, free, total int64, cause error) error {
	if free < 0 {
		return fmt.Errorf("allocate %s: needs %s of device memory: %w", what, fmtBytes(need), cause)
	}
	err := fmt.Errorf("allocate %s: needs %s of device memory, %s free of %s: %w",
		what, fmtBytes(need), fmtBytes(free), fmtBytes(total), cause)
	if !errors.Is(err, ErrOutOfMemory) && need > free {
		err = fmt.Errorf("%w (%w)", err, ErrOutOfMemory)
	}
	return err
}

// fmtBytes renders a byte count in binary units with one decimal.
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

// dequantRowKernels are the row formats' dequantization kernels, which
// share one parameter list.
var dequantRowKernels = map[backend.DType]*kernels.Kernel{
	backend.W8: kernels.DequantW8, backend.FP8: kernels.DequantFP8,
	backend.Ternary: kernels.DequantTernary, backend.Binary: kernels.DequantBinary,
}

// dequant enqueues the dequantization of n rows of w, either rows
// row0..row0+n (ids 0) or the rows ids[i], into y (row stride ldy).
// Device thread.
func (b *Backend) dequant(w *weight, ids DevicePtr, row0, n int, y DevicePtr, ldy int) error {
	a := b.args.reset()
	var k *kernels.Kernel
	var w0 DevicePtr
	if ids == 0 {
		// Rows from row0: shift the row base instead of the ids.
		w0 = DevicePtr(row0)
	}
	rowOff := func(i int) DevicePtr { return w.part(i) + w0*DevicePtr(w.lay.parts[i].rowBytes) }
	rows := w.rows
	if ids == 0 {
		rows = w.rows - row0
	}
	switch w.typ {
	case backend.F32, backend.F16:
		f16 := 0
		if w.typ == backend.F16 {
			f16 = 1
		}
		k = kernels.DequantF
		a.ptr(rowOff(0)).i64(f16).ptr(ids).ptr(y).i64(ldy).i64(rows).i64(w.cols).i64(w.lay.kpad).ptr(b.status)
	case backend.Q8_0:
		k = kernels.DequantQ8_0
		a.ptr(rowOff(0)).ptr(rowOff(1)).ptr(ids).ptr(y).i64(ldy).i64(rows).i64(w.cols).i64(w.lay.kpad).ptr(b.status)
	case backend.Q4_0:
		k = kernels.DequantQ4_0
		a.ptr(rowOff(0)).ptr(rowOff(1)).ptr(ids).ptr(y).i64(ldy).i64(rows).i64(w.cols).i64(w.lay.kpad).ptr(b.status)
	case backend.Q4_K:
		k = kernels.DequantK4
		a.ptr(rowOff(0)).ptr(0).ptr(rowOff(1)).ptr(rowOff(2)).ptr(ids).ptr(y).i64(ldy).i64(rows).i64(w.cols).ptr(b.status)
	case backend.Q5_K:
		k = kernels.DequantK4
		a.ptr(rowOff(0)).ptr(rowOff(1)).ptr(rowOff(2)).ptr(rowOff(3)).ptr(ids).ptr(y).i64(ldy).i64(rows).i64(w.cols).ptr(b.status)
	case backend.Q6_K:
		k = kernels.DequantQ6_K
		a.ptr(rowOff(0)).ptr(rowOff(1)).ptr(rowOff(2)).ptr(rowOff(3)).ptr(ids).ptr(y).i64(ldy).i64(rows).i64(w.cols).ptr(b.status)
	case backend.W8, backend.FP8, backend.Ternary, backend.Binary:
		k = dequantRowKernels[w.typ]
		a.ptr(rowOff(0)).ptr(rowOff(1)).ptr(ids).ptr(y).i64(ldy).i64(rows).i64(w.cols).i64(w.lay.kpad).ptr(b.status)
	default:
		return fmt.Errorf("dequantize %v: unsupported type", w)
	}
	if err := b.launch(k, Dim3{X: cdiv(w.cols, 256), Y: uint32(n), Z: 1}); err != nil {
		return err
	}
	return b.dequantSplit(w, ids, row0, n, y, ldy)
}
