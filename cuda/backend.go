package cuda

import (
	"errors"
	"fmt"
	"sync"

	"qinfer/host/backend"
	"qinfer/kernels"
)

// Backend is the GPU implementation of backend.Backend (and
// backend.GraphCapturer). Weights are repacked at upload into qinfer's
// device layout (upload.go) and stay resident; activations, the KV cache
// and the batch live in device buffers that are reused across steps. Every
// op enqueues kernels on one stream, so ops run in order and
// asynchronously; Read and Synchronize wait, and report any error a kernel
// recorded (a token id outside the table, a position outside the cache).
//
// All driver calls run on the device's locked thread (Device.Do). The
// methods are safe for concurrent use; they are serialised.
type Backend struct {
	mu sync.Mutex

	dev   *Device
	drv   Driver
	props Properties
	arch  kernels.Arch

	stream  Stream
	modules []Module
	fns     map[*kernels.Kernel]Function
	args    args // reused by every launch (launches are serialised)

	// status is a small device buffer where kernels record the first
	// input they could not honour (kernels/common.cuh); Synchronize and
	// Read check it.
	status     DevicePtr
	statusHost [4]int32

	allocs    map[DevicePtr]int64 // live allocations, freed by Close
	allocated int64

	act  scratch // quantized activations of MatMul
	attn scratch // attention scores

	capturing  bool
	captureErr error
	graphs     map[*graph]struct{} // live graphs, destroyed by Close

	prof profiler

	closed bool
}

var _ backend.Backend = (*Backend)(nil)
var _ backend.GraphCapturer = (*Backend)(nil)

// NewBackend opens the CUDA backend on device ordinal through drv: it
// creates the context (on its own locked thread), checks the compute
// capability, loads the PTX variant for it and resolves every kernel.
func NewBackend(ordinal int, drv Driver) (backend.Backend, error) {
	b, err := NewGPU(ordinal, drv)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return b, nil
}

// NewGPU is NewBackend returning the concrete type, for callers that use
// its extras (MemInfo, Properties, Arch).
func NewGPU(ordinal int, drv Driver) (*Backend, error) {
	dev, err := Open(drv, ordinal)
	if err != nil {
		return nil, fmt.Errorf("cuda backend: %w", err)
	}
	b := &Backend{dev: dev, drv: drv, props: dev.Properties(), allocs: map[DevicePtr]int64{}, fns: map[*kernels.Kernel]Function{}}
	if ok, why := b.props.Supported(); !ok {
		_ = dev.Close()
		return nil, fmt.Errorf("cuda backend: device %d (%s): %s", ordinal, b.props.Name, why)
	}
	if b.arch, err = kernels.Select(b.props.Major, b.props.Minor); err != nil {
		_ = dev.Close()
		return nil, fmt.Errorf("cuda backend: device %d (%s): %w", ordinal, b.props.Name, err)
	}
	if err := dev.Do(b.init); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("cuda backend: device %d (%s): %w", ordinal, b.props.Name, err)
	}
	return b, nil
}

// init runs on the device thread.
func (b *Backend) init() error {
	var err error
	if b.stream, err = b.drv.StreamCreate(StreamNonBlocking); err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	mods := map[string]Module{}
	for _, name := range kernels.Modules {
		ptx, err := kernels.PTX(name, b.arch)
		if err != nil {
			return err
		}
		m, err := b.drv.ModuleLoadData(ptx)
		if err != nil {
			return fmt.Errorf("load kernel module %s: %w", kernels.PTXName(name, b.arch), err)
		}
		b.modules = append(b.modules, m)
		mods[name] = m
	}
	for _, k := range kernels.All() {
		f, err := b.drv.ModuleGetFunction(mods[k.Module], k.Name)
		if err != nil {
			return fmt.Errorf("kernel %s in %s: %w", k.Name, kernels.PTXName(k.Module, b.arch), err)
		}
		b.fns[k] = f
	}
	if b.status, err = b.alloc("status word", 16); err != nil {
		return err
	}
	return b.drv.MemsetD32Async(b.status, 0, 4, b.stream)
}

func (b *Backend) Info() backend.DeviceInfo {
	return backend.DeviceInfo{
		Backend: "cuda",
		Name:    fmt.Sprintf("%s (compute %s, %s PTX)", b.props.Name, b.props.ComputeCapability(), b.arch.Name),
		Memory:  b.props.TotalMem,
		PeakGBs: b.props.PeakGBs(),
	}
}

// Properties returns the device's properties.
func (b *Backend) Properties() Properties { return b.props }

// Arch returns the PTX variant in use.
func (b *Backend) Arch() kernels.Arch { return b.arch }

// MemInfo returns free and total device memory.
func (b *Backend) MemInfo() (free, total int64, err error) { return b.dev.MemInfo() }

// Allocated returns the device memory this backend holds.
func (b *Backend) Allocated() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.allocated
}

// enter starts a public method: it locks the backend, or returns an error
// (unlocked) when the backend is closed. On success the caller defers
// b.mu.Unlock.
func (b *Backend) enter(op string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("%s: cuda backend is closed", op)
	}
	return nil
}

// noCapture refuses operations that synchronise or allocate while a graph
// is being captured (they would invalidate the capture).
func (b *Backend) noCapture(op string) error {
	if b.capturing {
		return fmt.Errorf("%s: not allowed while a CUDA graph is being captured (it synchronises or allocates)", op)
	}
	return nil
}

// do runs fn on the device thread.
func (b *Backend) do(fn func() error) error { return b.dev.Do(fn) }

// alloc allocates device memory on the device thread (the caller is in
// Do) and tracks it.
func (b *Backend) alloc(what string, n int64) (DevicePtr, error) {
	if n <= 0 {
		return 0, fmt.Errorf("allocate %s: %d bytes", what, n)
	}
	p, err := b.drv.MemAlloc(n)
	if err != nil {
		free, total, ierr := b.drv.MemGetInfo()
		if ierr != nil {
			free, total = -1, -1
		}
		return 0, oomError(what, n, free, total, err)
	}
	b.allocs[p] = n
	b.allocated += n
	return p, nil
}

// free releases a tracked allocation (on the device thread).
func (b *Backend) free(p DevicePtr) error {
	n, ok := b.allocs[p]
	if !ok {
		return fmt.Errorf("free device memory %#x: not allocated by this backend", uint64(p))
	}
	delete(b.allocs, p)
	b.allocated -= n
	return b.drv.MemFree(p)
}

// Synchronize waits for every enqueued op and reports errors: the
// driver's (a kernel that faulted) and those kernels recorded.
func (b *Backend) Synchronize() error {
	if err := b.enter("synchronize"); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := b.noCapture("synchronize"); err != nil {
		return err
	}
	return b.do(b.syncLocked)
}

// syncLocked synchronises the stream, collects profile timings and checks
// the status word. Device thread.
func (b *Backend) syncLocked() error {
	if err := b.drv.StreamSynchronize(b.stream); err != nil {
		return fmt.Errorf("cuda: a kernel failed: %w", err)
	}
	if err := b.prof.collect(b.drv); err != nil {
		return err
	}
	return b.checkStatus()
}

// checkStatus reads the status word and turns a recorded error into a Go
// error, clearing it. Device thread, stream idle.
func (b *Backend) checkStatus() error {
	if err := b.drv.MemcpyDtoH(ptrOf(&b.statusHost[0]), b.status, 16); err != nil {
		return fmt.Errorf("cuda: read kernel status: %w", err)
	}
	s := b.statusHost
	if s[0] == 0 {
		return nil
	}
	if err := b.drv.MemsetD32Async(b.status, 0, 4, b.stream); err != nil {
		return fmt.Errorf("cuda: clear kernel status: %w", err)
	}
	return statusError(s)
}

// statusError describes a status word recorded by a kernel.
func statusError(s [4]int32) error {
	switch s[0] {
	case kernels.StatusTokenID:
		return fmt.Errorf("cuda: embed: token %d id %d outside the table of %d rows", s[1], s[2], s[3])
	case kernels.StatusPosition:
		return fmt.Errorf("cuda: attention: token %d position %d outside context of %d", s[1], s[2], s[3])
	case kernels.StatusSequence:
		return fmt.Errorf("cuda: attention: token %d sequence %d outside %d sequence slots", s[1], s[2], s[3])
	case kernels.StatusOutputRow:
		return fmt.Errorf("cuda: gather outputs: output %d is row %d, outside batch of %d", s[1], s[2], s[3])
	case -1:
		return errors.New("cuda: a kernel was interrupted while recording an error")
	}
	return fmt.Errorf("cuda: kernel status %d (%d, %d, %d)", s[0], s[1], s[2], s[3])
}

// Close frees everything the backend allocated and destroys the context.
// Tensors, caches, batches and graphs must not be used afterwards.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	var errs []error
	err := b.dev.Do(func() error {
		if b.capturing {
			if g, err := b.drv.StreamEndCapture(b.stream); err == nil && g != 0 {
				_ = b.drv.GraphDestroy(g)
			}
			b.capturing = false
		}
		if b.stream != 0 {
			if err := b.drv.StreamSynchronize(b.stream); err != nil {
				errs = append(errs, fmt.Errorf("synchronize: %w", err))
			}
		}
		b.prof.release(b.drv)
		for g := range b.graphs {
			if err := b.drv.GraphExecDestroy(g.exec); err != nil {
				errs = append(errs, err)
			}
			g.freed = true
		}
		b.graphs = nil
		for p := range b.allocs {
			if err := b.free(p); err != nil {
				errs = append(errs, err)
			}
		}
		for _, m := range b.modules {
			if err := b.drv.ModuleUnload(m); err != nil {
				errs = append(errs, err)
			}
		}
		b.modules = nil
		if b.stream != 0 {
			if err := b.drv.StreamDestroy(b.stream); err != nil {
				errs = append(errs, err)
			}
			b.stream = 0
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	if err := b.dev.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cuda backend: close: %w", err)
	}
	return nil
}
