package cuda

import (
	"errors"
	"fmt"
	"math"

	"qinfer/host/backend"
)

// devBuf is one device allocation shared by an activation and its views.
type devBuf struct {
	ptr   DevicePtr
	size  int64
	freed bool
}

// activation is an F32 [rows][cols] tensor whose row i starts ld floats
// after row i-1, at byte offset off of buf. A view shares buf.
type activation struct {
	name   string
	buf    *devBuf
	off    int64
	rows   int
	cols   int
	ld     int
	isView bool
	freed  bool
}

func (a *activation) DType() backend.DType { return backend.F32 }
func (a *activation) Rows() int            { return a.rows }
func (a *activation) Cols() int            { return a.cols }
func (a *activation) String() string {
	return fmt.Sprintf("activation %s (%dx%d)", a.name, a.rows, a.cols)
}

// ptr is the device address of element (0, 0).
func (a *activation) ptr() DevicePtr { return a.buf.ptr + DevicePtr(a.off) }

// span is the device address range of the activation's elements.
func (a *activation) span() (lo, hi DevicePtr) {
	lo = a.ptr()
	return lo, lo + DevicePtr(4*((a.rows-1)*a.ld+a.cols))
}

func (a *activation) contiguous() bool { return a.ld == a.cols || a.rows == 1 }

// maxActivation bounds rows*cols (64 GiB of float32), which also keeps
// every index the kernels compute within int64.
const maxActivation = min(1<<34, math.MaxInt) // math.MaxInt on 32-bit platforms

func (b *Backend) NewActivation(name string, rows, cols int) (backend.Tensor, error) {
	if rows <= 0 || cols <= 0 || rows > maxActivation/cols {
		return nil, fmt.Errorf("new activation %s: bad shape %dx%d", name, rows, cols)
	}
	if err := b.enter("new activation"); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	if err := b.noCapture("new activation " + name); err != nil {
		return nil, err
	}
	n := 4 * int64(rows) * int64(cols)
	var p DevicePtr
	err := b.do(func() error {
		var err error
		if p, err = b.alloc("activation "+name, n); err != nil {
			return err
		}
		// Zero, as the CPU backend's fresh activations are.
		return b.drv.MemsetD32Async(p, 0, n/4, b.stream)
	})
	if err != nil {
		return nil, fmt.Errorf("new activation %s (%dx%d): %w", name, rows, cols, err)
	}
	return &activation{name: name, buf: &devBuf{ptr: p, size: n}, rows: rows, cols: cols, ld: cols}, nil
}

func (b *Backend) View(t backend.Tensor, row0, rows, col0, cols int) (backend.Tensor, error) {
	a, err := asActivation("view", "source", t)
	if err != nil {
		return nil, err
	}
	if row0 < 0 || rows <= 0 || col0 < 0 || cols <= 0 || row0 > a.rows-rows || col0 > a.cols-cols {
		return nil, fmt.Errorf("view of %v: rows [%d,%d) columns [%d,%d) outside %dx%d",
			a, row0, row0+rows, col0, col0+cols, a.rows, a.cols)
	}
	return &activation{
		name:   fmt.Sprintf("%s[%d:%d,%d:%d]", a.name, row0, row0+rows, col0, col0+cols),
		buf:    a.buf,
		off:    a.off + 4*(int64(row0)*int64(a.ld)+int64(col0)),
		rows:   rows,
		cols:   cols,
		ld:     a.ld,
		isView: true,
	}, nil
}

func (b *Backend) Write(dst backend.Tensor, src []float32) error {
	a, err := asActivation("write", "destination", dst)
	if err != nil {
		return err
	}
	if len(src) != a.rows*a.cols {
		return fmt.Errorf("write %v: %d values for %d elements", a, len(src), a.rows*a.cols)
	}
	if err := b.enter("write"); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := b.noCapture("write " + a.name); err != nil {
		return err
	}
	// The copies are ordered on the stream after the ops that read the old
	// contents; from pageable memory the driver stages them before
	// returning, so src is free again when Write returns.
	return b.do(func() error {
		if a.contiguous() {
			return wrap(b.drv.MemcpyHtoDAsync(a.ptr(), ptrOf(&src[0]), 4*int64(len(src)), b.stream), "write %v", a)
		}
		for i := 0; i < a.rows; i++ {
			row := a.ptr() + DevicePtr(4*int64(i)*int64(a.ld))
			if err := b.drv.MemcpyHtoDAsync(row, ptrOf(&src[i*a.cols]), 4*int64(a.cols), b.stream); err != nil {
				return fmt.Errorf("write %v row %d: %w", a, i, err)
			}
		}
		return nil
	})
}

// Read copies an activation out, or dequantizes a weight, after waiting
// for every enqueued op; it reports kernel errors as Synchronize does.
func (b *Backend) Read(src backend.Tensor, dst []float32) error {
	if err := b.enter("read"); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := b.noCapture("read"); err != nil {
		return err
	}
	switch t := src.(type) {
	case *activation:
		if err := t.usable("read", "source"); err != nil {
			return err
		}
		if len(dst) != t.rows*t.cols {
			return fmt.Errorf("read %v: %d values for %d elements", t, len(dst), t.rows*t.cols)
		}
		return b.do(func() error {
			if err := b.syncLocked(); err != nil {
				return fmt.Errorf("read %v: %w", t, err)
			}
			if t.contiguous() {
				return wrap(b.drv.MemcpyDtoH(ptrOf(&dst[0]), t.ptr(), 4*int64(len(dst))), "read %v", t)
			}
			for i := 0; i < t.rows; i++ {
				row := t.ptr() + DevicePtr(4*int64(i)*int64(t.ld))
				if err := b.drv.MemcpyDtoH(ptrOf(&dst[i*t.cols]), row, 4*int64(t.cols)); err != nil {
					return fmt.Errorf("read %v row %d: %w", t, i, err)
				}
			}
			return nil
		})
	case *weight:
		if t.freed {
			return fmt.Errorf("read: %v was freed", t)
		}
		if len(dst) != t.rows*t.cols {
			return fmt.Errorf("read %v: %d values for %d elements", t, len(dst), t.rows*t.cols)
		}
		return b.do(func() error { return b.readWeight(t, dst) })
	case nil:
		return errors.New("read: nil tensor")
	}
	return fmt.Errorf("read: %T is not a CUDA tensor", src)
}

// readWeight dequantizes w on the device into a temporary buffer and
// copies it out. Device thread.
func (b *Backend) readWeight(w *weight, dst []float32) error {
	n := 4 * int64(w.rows) * int64(w.cols)
	tmp, err := b.alloc("read "+w.name, n)
	if err != nil {
		return err
	}
	defer func() { _ = b.free(tmp) }()
	for r0 := 0; r0 < w.rows; r0 += maxGridYZ {
		rows := min(maxGridYZ, w.rows-r0)
		if err := b.dequant(w, 0, r0, rows, tmp+DevicePtr(4*int64(r0)*int64(w.cols)), w.cols); err != nil {
			return fmt.Errorf("read %v: %w", w, err)
		}
	}
	if err := b.syncLocked(); err != nil {
		return fmt.Errorf("read %v: %w", w, err)
	}
	return wrap(b.drv.MemcpyDtoH(ptrOf(&dst[0]), tmp, n), "read %v", w)
}

// Free releases a tensor, cache or batch; using it afterwards is an
// error. Freeing an activation frees its memory, which its views share.
func (b *Backend) Free(t any) error {
	if t == nil {
		return errors.New("free: nil")
	}
	if err := b.enter("free"); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := b.noCapture("free"); err != nil {
		return err
	}
	var p DevicePtr
	switch x := t.(type) {
	case *activation:
		if x.freed {
			return fmt.Errorf("free: %v already freed", x)
		}
		x.freed = true
		if x.isView {
			return nil
		}
		x.buf.freed = true
		p = x.buf.ptr
	case *weight:
		if x.freed {
			return fmt.Errorf("free: %v already freed", x)
		}
		x.freed = true
		p = x.buf
	case *kvCache:
		if x.freed {
			return errors.New("free: KV cache already freed")
		}
		x.freed = true
		p = x.buf
	case *batch:
		if x.freed {
			return errors.New("free: batch already freed")
		}
		x.freed = true
		p = x.buf
	default:
		return fmt.Errorf("free: %T is not a CUDA backend object", t)
	}
	return b.do(func() error {
		// Kernels already enqueued may still use the memory.
		if err := b.drv.StreamSynchronize(b.stream); err != nil {
			return fmt.Errorf("free: %w", err)
		}
		return b.free(p)
	})
}

// usable rejects a freed activation or one whose memory was freed.
func (a *activation) usable(op, role string) error {
	if a.freed || a.buf.freed {
		return fmt.Errorf("%s: %s %v was freed", op, role, a)
	}
	return nil
}

// asActivation converts t for op, naming the argument's role in errors.
func asActivation(op, role string, t backend.Tensor) (*activation, error) {
	a, ok := t.(*activation)
	if !ok {
		if t == nil {
			return nil, fmt.Errorf("%s: %s is nil", op, role)
		}
		return nil, fmt.Errorf("%s: %s must be a CUDA activation, got %T", op, role, t)
	}
	return a, a.usable(op, role)
}

func asWeight(op, role string, t backend.Tensor) (*weight, error) {
	w, ok := t.(*weight)
	if !ok {
		if t == nil {
			return nil, fmt.Errorf("%s: %s is nil", op, role)
		}
		return nil, fmt.Errorf("%s: %s must be an uploaded CUDA weight, got %T", op, role, t)
	}
	if w.freed {
		return nil, fmt.Errorf("%s: %s %v was freed", op, role, w)
	}
	return w, nil
}

func overlap(a, b *activation) bool {
	alo, ahi := a.span()
	blo, bhi := b.span()
	return alo < bhi && blo < ahi
}

// identical reports whether a and b address the same elements the same
// way, the only aliasing an in-place op accepts.
func identical(a, b *activation) bool {
	return a.ptr() == b.ptr() && a.rows == b.rows && a.cols == b.cols && (a.ld == b.ld || a.rows == 1)
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

// wrap annotates a driver error, or returns nil.
func wrap(err error, format string, a ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(a, err)...)
}

// scratch is a device buffer that grows to the largest request and is
// reused by every op after it (ops are ordered on the stream). It cannot
// grow during graph capture.
type scratch struct {
	ptr  DevicePtr
	size int64
}

// ensure returns a buffer of at least n bytes (device thread).
func (b *Backend) ensure(s *scratch, what string, n int64) (DevicePtr, error) {
	if n <= s.size {
		return s.ptr, nil
	}
	if b.capturing {
		return 0, fmt.Errorf("%s needs %d bytes of scratch, %d allocated: run the step once before capturing it", what, n, s.size)
	}
	if s.ptr != 0 {
		if err := b.drv.StreamSynchronize(b.stream); err != nil {
			return 0, err
		}
		if err := b.free(s.ptr); err != nil {
			return 0, err
		}
		s.ptr, s.size = 0, 0
	}
	// Round up so that growing token counts do not reallocate each step.
	n = (n + (1 << 20) - 1) &^ ((1 << 20) - 1)
	p, err := b.alloc(what+" scratch", n)
	if err != nil {
		return 0, err
	}
	s.ptr, s.size = p, n
	return p, nil
}

// align256 rounds an offset up to the driver's allocation alignment, so
// that each part of a packed buffer is aligned for 16-byte loads.
func align256(n int64) int64 { return (n + 255) &^ 255 }
