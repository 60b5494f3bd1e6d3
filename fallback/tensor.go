package fallback

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"qinfer/fallback/kernels"
	"qinfer/fallback/rowkernels"
	"qinfer/host/backend"
	"qinfer/host/quant"
)

// weightTensor is an uploaded weight. data is the caller's slice (usually
// mmap'd GGUF bytes), kept for row reads (embedding lookups); matrix
// products read packed, kernels.Prepare's form: for Q4_0, and for Q8_0
// where a VNNI kernel runs it, a copy repacked into row panels (decode
// reads a panel with one stream instead of sixteen rows' scattered
// blocks: docs/benchmarks.md has the measurement); otherwise the GGUF
// bytes themselves.
type weightTensor struct {
	name      string
	typ       backend.DType
	rows      int
	cols      int
	rowBytes  int
	data      []byte
	packed    *kernels.Packed
	rowScales []float32
	actScale  float32
	// rowm is set for the row formats (W8, FP8, Ternary, Binary): the
	// weight as fallback/rowkernels multiplies it.
	rowm *rowkernels.Matrix
	// outlierW holds the F16 weights of a split row-format weight's
	// outlier columns (rowm.OutlierCols()), rows x k, for Read.
	outlierW []uint16
	freed    bool
}

func (w *weightTensor) DType() backend.DType { return w.typ }
func (w *weightTensor) Rows() int            { return w.rows }
func (w *weightTensor) Cols() int            { return w.cols }
func (w *weightTensor) String() string {
	return fmt.Sprintf("weight %s (%v %dx%d)", w.name, w.typ, w.rows, w.cols)
}

// row returns the GGUF bytes of row r.
func (w *weightTensor) row(r int) []byte { return w.data[r*w.rowBytes : (r+1)*w.rowBytes] }

// activation is an F32 [rows][cols] tensor whose row i starts at
// data[i*stride]. A view shares data with its parent; data is cut to end
// at the view's last element so that an overlap test on the slices is
// exact enough to reject partial aliasing.
type activation struct {
	name   string
	rows   int
	cols   int
	stride int
	data   []float32
	freed  bool
}

func (a *activation) DType() backend.DType { return backend.F32 }
func (a *activation) Rows() int            { return a.rows }
func (a *activation) Cols() int            { return a.cols }
func (a *activation) String() string {
	return fmt.Sprintf("activation %s (%dx%d)", a.name, a.rows, a.cols)
}

// row returns the cols elements of row i.
func (a *activation) row(i int) []float32 { return a.data[i*a.stride : i*a.stride+a.cols] }

// contiguous reports whether rows follow one another without gaps, so an
// op can treat the tensor as one flat slice.
func (a *activation) contiguous() bool { return a.stride == a.cols || a.rows == 1 }

func (c *CPU) Upload(w *backend.Weight) (backend.Tensor, error) {
	if w == nil {
		return nil, errors.New("upload: nil weight")
	}
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	rb, err := backend.RowBytes(w.Type, w.Cols)
	if err != nil {
		return nil, fmt.Errorf("upload: weight %s: %w", w.Name, err)
	}
	var rowm *rowkernels.Matrix
	var packed *kernels.Packed
	if quant.IsRowFormat(w.Type) {
		if rowm, err = rowkernels.NewMatrix(w); err != nil {
			return nil, fmt.Errorf("upload: %w", err)
		}
	} else if packed, err = kernels.Prepare(w.Type, w.Data, w.Rows, w.Cols); err != nil {
		return nil, fmt.Errorf("upload: weight %s: %w", w.Name, err)
	}
	return &weightTensor{
		name:      w.Name,
		typ:       w.Type,
		rows:      w.Rows,
		cols:      w.Cols,
		rowBytes:  rb,
		data:      w.Data,
		packed:    packed,
		rowScales: w.RowScales,
		actScale:  w.ActScale,
		rowm:      rowm,
		outlierW:  w.OutlierW,
	}, nil
}

// maxElements bounds an activation so that rows*cols neither overflows
// nor asks for an absurd allocation (64 GiB of float32).
const maxElements = min(1<<34, math.MaxInt) // math.MaxInt on 32-bit platforms

func (c *CPU) NewActivation(name string, rows, cols int) (backend.Tensor, error) {
	if rows <= 0 || cols <= 0 || rows > maxElements/cols {
		return nil, fmt.Errorf("new activation %s: bad shape %dx%d", name, rows, cols)
	}
	return &activation{name: name, rows: rows, cols: cols, stride: cols, data: make([]float32, rows*cols)}, nil
}

func (c *CPU) View(t backend.Tensor, row0, rows, col0, cols int) (backend.Tensor, error) {
	a, err := asActivation("view", "source", t)
	if err != nil {
		return nil, err
	}
	if row0 < 0 || rows <= 0 || col0 < 0 || cols <= 0 || row0 > a.rows-rows || col0 > a.cols-cols {
		return nil, fmt.Errorf("view of %v: rows [%d,%d) columns [%d,%d) outside %dx%d",
			a, row0, row0+rows, col0, col0+cols, a.rows, a.cols)
	}
	start := row0*a.stride + col0
	end := start + (rows-1)*a.stride + cols
	return &activation{
		name:   fmt.Sprintf("%s[%d:%d,%d:%d]", a.name, row0, row0+rows, col0, col0+cols),
		rows:   rows,
		cols:   cols,
		stride: a.stride,
		data:   a.data[start:end:end],
	}, nil
}

func (c *CPU) Write(dst backend.Tensor, src []float32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, err := asActivation("write", "destination", dst)
	if err != nil {
		return err
	}
	if len(src) != a.rows*a.cols {
		return fmt.Errorf("write %v: %d values for %d elements", a, len(src), a.rows*a.cols)
	}
	for i := 0; i < a.rows; i++ {
		copy(a.row(i), src[i*a.cols:(i+1)*a.cols])
	}
	return nil
}

// Read copies an activation out, or dequantizes a weight (handy for
// tests and for inspecting norm weights).
func (c *CPU) Read(src backend.Tensor, dst []float32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch t := src.(type) {
	case *activation:
		if t.freed {
			return fmt.Errorf("read: %v was freed", t)
		}
		if len(dst) != t.rows*t.cols {
			return fmt.Errorf("read %v: %d values for %d elements", t, len(dst), t.rows*t.cols)
		}
		for i := 0; i < t.rows; i++ {
			copy(dst[i*t.cols:(i+1)*t.cols], t.row(i))
		}
		return nil
	case *weightTensor:
		if t.freed {
			return fmt.Errorf("read: %v was freed", t)
		}
		if len(dst) != t.rows*t.cols {
			return fmt.Errorf("read %v: %d values for %d elements", t, len(dst), t.rows*t.cols)
		}
		for r := 0; r < t.rows; r++ {
			if err := dequantizeRow(t, r, dst[r*t.cols:(r+1)*t.cols]); err != nil {
				return fmt.Errorf("read: %w", err)
			}
		}
		return nil
	}
	return fmt.Errorf("read: %T is not a CPU tensor", src)
}

// Free drops the backend's reference to a tensor, cache or batch; using it
// afterwards is an error. A weight's data (the caller's mmap) is released
// to the caller, an activation's memory to the garbage collector once no
// view refers to it.
func (c *CPU) Free(t any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch x := t.(type) {
	case *weightTensor:
		if x.freed {
			return fmt.Errorf("free: %v already freed", x)
		}
		x.freed, x.data, x.packed, x.rowScales, x.rowm, x.outlierW = true, nil, nil, nil, nil, nil
	case *activation:
		if x.freed {
			return fmt.Errorf("free: %v already freed", x)
		}
		x.freed, x.data = true, nil
	case *kvCache:
		if x.freed {
			return errors.New("free: KV cache already freed")
		}
		x.free()
	case *batch:
		if x.freed {
			return errors.New("free: batch already freed")
		}
		x.freed = true
		x.ids, x.pos, x.seq, x.outputs = nil, nil, nil, nil
	case nil:
		return errors.New("free: nil")
	default:
		return fmt.Errorf("free: %T is not a CPU backend object", t)
	}
	return nil
}

// asActivation converts t for op, naming the argument role in errors.
func asActivation(op, role string, t backend.Tensor) (*activation, error) {
	a, ok := t.(*activation)
	if !ok {
		if t == nil {
			return nil, fmt.Errorf("%s: %s is nil", op, role)
		}
		return nil, fmt.Errorf("%s: %s must be a CPU activation, got %T", op, role, t)
	}
	if a.freed {
		return nil, fmt.Errorf("%s: %s %v was freed", op, role, a)
	}
	return a, nil
}

func asWeight(op, role string, t backend.Tensor) (*weightTensor, error) {
	w, ok := t.(*weightTensor)
	if !ok {
		if t == nil {
			return nil, fmt.Errorf("%s: %s is nil", op, role)
		}
		return nil, fmt.Errorf("%s: %s must be an uploaded CPU weight, got %T", op, role, t)
	}
	if w.freed {
		return nil, fmt.Errorf("%s: %s %v was freed", op, role, w)
	}
	return w, nil
}

// span returns the address range [lo, hi) of a's elements.
func span(a *activation) (lo, hi uintptr) {
	if len(a.data) == 0 {
		return 0, 0
	}
	lo = uintptr(unsafe.Pointer(unsafe.SliceData(a.data)))
	return lo, lo + uintptr(len(a.data))*4
}

func overlap(a, b *activation) bool {
	alo, ahi := span(a)
	blo, bhi := span(b)
	return alo < bhi && blo < ahi
}

// identical reports whether a and b address the same elements the same
// way, the only aliasing an in-place op accepts.
func identical(a, b *activation) bool {
	alo, _ := span(a)
	blo, _ := span(b)
	return alo == blo && a.rows == b.rows && a.cols == b.cols && (a.stride == b.stride || a.rows == 1)
}

// checkDisjoint rejects dst overlapping any input.
func checkDisjoint(op string, dst *activation, ins ...*activation) error {
	for _, in := range ins {
		if overlap(dst, in) {
			return fmt.Errorf("%s: destination %v overlaps input %v", op, dst, in)
		}
	}
	return nil
}

// checkInPlace accepts dst identical to an input or disjoint from it.
func checkInPlace(op string, dst *activation, ins ...*activation) error {
	for _, in := range ins {
		if overlap(dst, in) && !identical(dst, in) {
			return fmt.Errorf("%s: destination %v partially overlaps input %v", op, dst, in)
		}
	}
	return nil
}

func shape(t backend.Tensor) string { return fmt.Sprintf("%dx%d", t.Rows(), t.Cols()) }
