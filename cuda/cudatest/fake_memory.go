package cudatest

import (
	"encoding/binary"
	"unsafe"

	"qinfer/cuda"
)

// device returns the ordinal of the current context. The caller holds
// d.mu and has checked the context with enter.
func (d *Driver) device() int { return d.contexts[d.current[threadID()]] }

func (d *Driver) MemGetInfo() (free, total int64, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuMemGetInfo_v2", true); e != nil {
		return 0, 0, e
	}
	dev := d.device()
	total = d.GPUs[dev].Memory
	return total - d.used[dev], total, nil
}

func (d *Driver) MemAlloc(bytes int64) (cuda.DevicePtr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuMemAlloc_v2", true); e != nil {
		return 0, e
	}
	if bytes <= 0 {
		return 0, cuda.NewError("cuMemAlloc_v2", cuda.CodeInvalidValue)
	}
	dev := d.device()
	if d.used[dev]+bytes > d.GPUs[dev].Memory {
		return 0, cuda.NewError("cuMemAlloc_v2", cuda.CodeOutOfMemory)
	}
	if d.mem == nil {
		d.mem = map[cuda.DevicePtr]*alloc{}
		d.used = map[int]int64{}
		d.nextPtr = 0x7f0000000000
	}
	// 256-byte alignment, as cudaMalloc guarantees; a gap after each
	// allocation makes overruns fail rather than hit a neighbour.
	p := d.nextPtr
	d.nextPtr += cuda.DevicePtr((bytes+255)&^255) + 256
	d.mem[p] = &alloc{dev: dev, data: make([]byte, bytes)}
	d.used[dev] += bytes
	return p, nil
}

func (d *Driver) MemFree(p cuda.DevicePtr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuMemFree_v2", true); e != nil {
		return e
	}
	a, ok := d.mem[p]
	if !ok {
		return cuda.NewError("cuMemFree_v2", cuda.CodeInvalidValue)
	}
	d.used[a.dev] -= int64(len(a.data))
	delete(d.mem, p)
	return nil
}

// span returns the device bytes [p, p+n) inside one allocation. The
// caller holds d.mu.
func (d *Driver) span(call string, p cuda.DevicePtr, n int64) ([]byte, error) {
	if n < 0 {
		return nil, cuda.NewError(call, cuda.CodeInvalidValue)
	}
	for base, a := range d.mem {
		if p >= base && p < base+cuda.DevicePtr(len(a.data)) {
			off := int64(p - base)
			if off+n > int64(len(a.data)) {
				return nil, cuda.NewError(call, cuda.CodeInvalidValue)
			}
			return a.data[off : off+n], nil
		}
	}
	if n == 0 {
		return nil, nil
	}
	return nil, cuda.NewError(call, cuda.CodeInvalidValue)
}

func hostBytes(p unsafe.Pointer, n int64) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(p), n)
}

// op runs a stream operation now, or records it when s is capturing. The
// caller holds d.mu; fn runs with d.mu held.
func (d *Driver) op(call string, s cuda.Stream, fn func() error) error {
	if e := d.enter(call, true); e != nil {
		return e
	}
	return d.run(call, s, fn)
}

// run is op after enter.
func (d *Driver) run(call string, s cuda.Stream, fn func() error) error {
	st, err := d.stream(call, s)
	if err != nil {
		return err
	}
	if st != nil && st.capturing {
		st.ops = append(st.ops, fn)
		return nil
	}
	return fn()
}

// syncOp runs a synchronous operation, which no capture may be in
// progress for (the driver's rule in global capture mode).
func (d *Driver) syncOp(call string, fn func() error) error {
	if e := d.enter(call, true); e != nil {
		return e
	}
	for _, s := range d.streams {
		if s.capturing {
			return cuda.NewError(call, cuda.CodeStreamCaptureUnsupported)
		}
	}
	return fn()
}

func (d *Driver) stream(call string, s cuda.Stream) (*stream, error) {
	if s == 0 {
		return nil, nil
	}
	st, ok := d.streams[s]
	if !ok {
		return nil, cuda.NewError(call, cuda.CodeInvalidHandle)
	}
	return st, nil
}

func (d *Driver) copyHtoD(call string, dst cuda.DevicePtr, src unsafe.Pointer, n int64) func() error {
	return func() error {
		b, err := d.span(call, dst, n)
		if err != nil {
			return err
		}
		copy(b, hostBytes(src, n))
		return nil
	}
}

func (d *Driver) copyDtoH(call string, dst unsafe.Pointer, src cuda.DevicePtr, n int64) func() error {
	return func() error {
		b, err := d.span(call, src, n)
		if err != nil {
			return err
		}
		copy(hostBytes(dst, n), b)
		return nil
	}
}

func (d *Driver) copyDtoD(call string, dst, src cuda.DevicePtr, n int64) func() error {
	return func() error {
		s, err := d.span(call, src, n)
		if err != nil {
			return err
		}
		t, err := d.span(call, dst, n)
		if err != nil {
			return err
		}
		copy(t, s)
		return nil
	}
}

func (d *Driver) set8(call string, dst cuda.DevicePtr, v uint8, n int64) func() error {
	return func() error {
		b, err := d.span(call, dst, n)
		if err != nil {
			return err
		}
		for i := range b {
			b[i] = v
		}
		return nil
	}
}

func (d *Driver) set32(call string, dst cuda.DevicePtr, v uint32, n int64) func() error {
	return func() error {
		if n < 0 || dst%4 != 0 {
			return cuda.NewError(call, cuda.CodeInvalidValue)
		}
		b, err := d.span(call, dst, 4*n)
		if err != nil {
			return err
		}
		for i := 0; i+4 <= len(b); i += 4 {
			binary.LittleEndian.PutUint32(b[i:], v)
		}
		return nil
	}
}

func (d *Driver) locked(fn func() error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fn()
}

func (d *Driver) MemcpyHtoD(dst cuda.DevicePtr, src unsafe.Pointer, n int64) error {
	return d.locked(func() error {
		return d.syncOp("cuMemcpyHtoD_v2", d.copyHtoD("cuMemcpyHtoD_v2", dst, src, n))
	})
}

func (d *Driver) MemcpyDtoH(dst unsafe.Pointer, src cuda.DevicePtr, n int64) error {
	return d.locked(func() error {
		return d.syncOp("cuMemcpyDtoH_v2", d.copyDtoH("cuMemcpyDtoH_v2", dst, src, n))
	})
}

func (d *Driver) MemcpyDtoD(dst, src cuda.DevicePtr, n int64) error {
	return d.locked(func() error {
		return d.syncOp("cuMemcpyDtoD_v2", d.copyDtoD("cuMemcpyDtoD_v2", dst, src, n))
	})
}

func (d *Driver) MemcpyHtoDAsync(dst cuda.DevicePtr, src unsafe.Pointer, n int64, s cuda.Stream) error {
	return d.locked(func() error {
		return d.op("cuMemcpyHtoDAsync_v2", s, d.copyHtoD("cuMemcpyHtoDAsync_v2", dst, src, n))
	})
}

func (d *Driver) MemcpyDtoHAsync(dst unsafe.Pointer, src cuda.DevicePtr, n int64, s cuda.Stream) error {
	return d.locked(func() error {
		return d.op("cuMemcpyDtoHAsync_v2", s, d.copyDtoH("cuMemcpyDtoHAsync_v2", dst, src, n))
	})
}

func (d *Driver) MemcpyDtoDAsync(dst, src cuda.DevicePtr, n int64, s cuda.Stream) error {
	return d.locked(func() error {
		return d.op("cuMemcpyDtoDAsync_v2", s, d.copyDtoD("cuMemcpyDtoDAsync_v2", dst, src, n))
	})
}

func (d *Driver) MemsetD8(dst cuda.DevicePtr, v uint8, n int64) error {
	return d.locked(func() error { return d.syncOp("cuMemsetD8_v2", d.set8("cuMemsetD8_v2", dst, v, n)) })
}

func (d *Driver) MemsetD32(dst cuda.DevicePtr, v uint32, n int64) error {
	return d.locked(func() error { return d.syncOp("cuMemsetD32_v2", d.set32("cuMemsetD32_v2", dst, v, n)) })
}

func (d *Driver) MemsetD8Async(dst cuda.DevicePtr, v uint8, n int64, s cuda.Stream) error {
	return d.locked(func() error { return d.op("cuMemsetD8Async", s, d.set8("cuMemsetD8Async", dst, v, n)) })
}

func (d *Driver) MemsetD32Async(dst cuda.DevicePtr, v uint32, n int64, s cuda.Stream) error {
	return d.locked(func() error { return d.op("cuMemsetD32Async", s, d.set32("cuMemsetD32Async", dst, v, n)) })
}
