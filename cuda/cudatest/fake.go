// Package cudatest provides a fake cuda.Driver: a whole machine of
// configurable GPUs, in host memory, so that device selection, Device and
// backend bookkeeping are tested without a GPU (as NVIDIA/go-nvml's fake
// devices do for NVML).
//
// The fake keeps the driver's rules that bite in practice: nothing but
// version and error queries works before Init; a context is current per
// OS thread, so a call from a thread without one fails with
// CUDA_ERROR_INVALID_CONTEXT (on Linux, where the fake can tell threads
// apart); allocations are bounded by device memory; copies are bounds
// checked; synchronous calls on a capturing stream fail. Kernels are Go
// functions registered by name; everything runs synchronously.
package cudatest

import (
	"sync"
	"time"
	"unsafe"

	"qinfer/cuda"
)

// GPU is one fake device.
type GPU struct {
	Name         string
	Major, Minor int
	SMs          int
	Memory       int64 // bytes
	ClockKHz     int
	MemClockKHz  int
	BusWidthBits int
	L2Bytes      int
}

// H100 is an NVIDIA H100 SXM as its driver reports it.
func H100() GPU {
	return GPU{Name: "NVIDIA H100 80GB HBM3", Major: 9, Minor: 0, SMs: 132, Memory: 85045526528,
		ClockKHz: 1980000, MemClockKHz: 2619000, BusWidthBits: 5120, L2Bytes: 52428800}
}

// GTX980 is a Maxwell card, compute capability 5.2: too old for qinfer.
func GTX980() GPU {
	return GPU{Name: "NVIDIA GeForce GTX 980", Major: 5, Minor: 2, SMs: 16, Memory: 4234936320,
		ClockKHz: 1216000, MemClockKHz: 3505000, BusWidthBits: 256, L2Bytes: 2097152}
}

// P40 is a Pascal card, compute capability 6.1: the oldest qinfer runs on.
func P40() GPU {
	return GPU{Name: "Tesla P40", Major: 6, Minor: 1, SMs: 30, Memory: 24032378880,
		ClockKHz: 1531000, MemClockKHz: 3615000, BusWidthBits: 384, L2Bytes: 3145728}
}

// Kernel is a fake kernel: it reads and writes device memory through
// d.Bytes. params point to copies of the launch's parameter values, taken
// at launch as the driver does (so a graph replays the captured values);
// like the gorgonia binding, the fake copies 8 bytes per parameter, so
// kernels take 8-byte parameters.
type Kernel func(d *Driver, grid, block cuda.Dim3, params []unsafe.Pointer) error

// Driver is the fake. Set the exported fields before the first call.
type Driver struct {
	GPUs []GPU
	// Version is what DriverGetVersion reports (default 12080).
	Version int
	// InitResult is the CUresult Init returns; cuda.CodeNoDevice is what
	// the real driver returns on a machine without a GPU. With no GPUs and
	// InitResult 0, Init succeeds and DeviceGetCount reports zero.
	InitResult int
	// Kernels are found by ModuleGetFunction in any loaded module.
	Kernels map[string]Kernel

	mu       sync.Mutex
	inited   bool
	fail     map[string]int
	current  map[int]cuda.Context // OS thread -> current context
	contexts map[cuda.Context]int // context -> device ordinal
	used     map[int]int64        // device ordinal -> bytes allocated
	mem      map[cuda.DevicePtr]*alloc
	nextPtr  cuda.DevicePtr
	nextID   uintptr
	modules  map[cuda.Module]bool
	funcs    map[cuda.Function]string
	streams  map[cuda.Stream]*stream
	events   map[cuda.Event]time.Time
	graphs   map[cuda.Graph][]func() error
	execs    map[cuda.GraphExec][]func() error
	calls    map[string]int
}

type alloc struct {
	dev  int
	data []byte
}

type stream struct {
	capturing bool
	ops       []func() error
}

// New returns a fake machine with gpus.
func New(gpus ...GPU) *Driver {
	return &Driver{GPUs: gpus}
}

// Fail makes every later call of the named driver symbol (as cuda.Error
// reports it, e.g. "cuMemAlloc_v2") return code; code 0 clears it.
func (d *Driver) Fail(call string, code int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail == nil {
		d.fail = map[string]int{}
	}
	if code == 0 {
		delete(d.fail, call)
		return
	}
	d.fail[call] = code
}

// Calls returns how often the named symbol was called.
func (d *Driver) Calls(call string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[call]
}

// Allocated returns the bytes currently allocated on device ordinal.
func (d *Driver) Allocated(ordinal int) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.used[ordinal]
}

// Live reports the contexts, allocations, modules, streams, events, graphs
// and graph execs not yet destroyed, for leak checks.
func (d *Driver) Live() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return map[string]int{
		"contexts": len(d.contexts), "allocations": len(d.mem), "modules": len(d.modules),
		"streams": len(d.streams), "events": len(d.events), "graphs": len(d.graphs), "graph execs": len(d.execs),
	}
}

// Bytes returns the n bytes of device memory at p, for kernels and tests.
func (d *Driver) Bytes(p cuda.DevicePtr, n int64) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := d.span("fake memory access", p, n)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (d *Driver) Binding() string { return "fake" }
func (d *Driver) Library() string { return "fake" }

// enter starts a call: it counts it, applies an injected failure, and
// checks initialisation and, when needsCtx, a current context on this
// thread. The caller holds d.mu.
func (d *Driver) enter(call string, needsCtx bool) *cuda.Error {
	if d.calls == nil {
		d.calls = map[string]int{}
	}
	d.calls[call]++
	if code, ok := d.fail[call]; ok {
		return cuda.NewError(call, code)
	}
	if !d.inited {
		return cuda.NewError(call, cuda.CodeNotInitialized)
	}
	if needsCtx {
		if _, ok := d.contexts[d.current[threadID()]]; !ok {
			return cuda.NewError(call, cuda.CodeInvalidContext)
		}
	}
	return nil
}

// call is enter without the lock held, returning a plain error.
func (d *Driver) call(name string, needsCtx bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter(name, needsCtx); e != nil {
		return e
	}
	return nil
}

func (d *Driver) id() uintptr {
	d.nextID += 0x10
	return 0x1000 + d.nextID
}

func (d *Driver) GetErrorName(code int) (string, error) {
	if cuda.ResultString(code) == "" {
		return "", cuda.NewError("cuGetErrorName", cuda.CodeInvalidValue)
	}
	return cuda.ResultName(code), nil
}

func (d *Driver) GetErrorString(code int) (string, error) {
	s := cuda.ResultString(code)
	if s == "" {
		return "", cuda.NewError("cuGetErrorString", cuda.CodeInvalidValue)
	}
	return s, nil
}

func (d *Driver) Init() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.calls == nil {
		d.calls = map[string]int{}
	}
	d.calls["cuInit"]++
	if code, ok := d.fail["cuInit"]; ok {
		return cuda.NewError("cuInit", code)
	}
	if d.InitResult != cuda.CodeSuccess {
		return cuda.NewError("cuInit", d.InitResult)
	}
	d.inited = true
	return nil
}

func (d *Driver) DriverGetVersion() (int, error) {
	if d.Version == 0 {
		return 12080, nil
	}
	return d.Version, nil
}

func (d *Driver) DeviceGetCount() (int, error) {
	if err := d.call("cuDeviceGetCount", false); err != nil {
		return 0, err
	}
	return len(d.GPUs), nil
}

func (d *Driver) gpu(call string, dev cuda.DeviceHandle) (GPU, error) {
	if err := d.call(call, false); err != nil {
		return GPU{}, err
	}
	if dev < 0 || int(dev) >= len(d.GPUs) {
		return GPU{}, cuda.NewError(call, cuda.CodeInvalidDevice)
	}
	return d.GPUs[dev], nil
}

func (d *Driver) DeviceGet(ordinal int) (cuda.DeviceHandle, error) {
	_, err := d.gpu("cuDeviceGet", cuda.DeviceHandle(ordinal))
	if err != nil {
		return 0, err
	}
	return cuda.DeviceHandle(ordinal), nil
}

func (d *Driver) DeviceGetName(dev cuda.DeviceHandle) (string, error) {
	g, err := d.gpu("cuDeviceGetName", dev)
	return g.Name, err
}

func (d *Driver) DeviceGetAttribute(attr cuda.DeviceAttribute, dev cuda.DeviceHandle) (int, error) {
	g, err := d.gpu("cuDeviceGetAttribute", dev)
	if err != nil {
		return 0, err
	}
	switch attr {
	case cuda.AttrComputeCapabilityMajor:
		return g.Major, nil
	case cuda.AttrComputeCapabilityMinor:
		return g.Minor, nil
	case cuda.AttrMultiprocessorCount:
		return g.SMs, nil
	case cuda.AttrClockRate:
		return g.ClockKHz, nil
	case cuda.AttrMemoryClockRate:
		return g.MemClockKHz, nil
	case cuda.AttrGlobalMemoryBusWidth:
		return g.BusWidthBits, nil
	case cuda.AttrL2CacheSize:
		return g.L2Bytes, nil
	case cuda.AttrMaxThreadsPerBlock:
		return 1024, nil
	case cuda.AttrWarpSize:
		return 32, nil
	case cuda.AttrMaxSharedMemoryPerBlock:
		return 48 << 10, nil
	}
	return 0, cuda.NewError("cuDeviceGetAttribute", cuda.CodeInvalidValue)
}

func (d *Driver) DeviceTotalMem(dev cuda.DeviceHandle) (int64, error) {
	g, err := d.gpu("cuDeviceTotalMem_v2", dev)
	return g.Memory, err
}

func (d *Driver) CtxCreate(flags cuda.CtxFlags, dev cuda.DeviceHandle) (cuda.Context, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuCtxCreate_v2", false); e != nil {
		return 0, e
	}
	if dev < 0 || int(dev) >= len(d.GPUs) {
		return 0, cuda.NewError("cuCtxCreate_v2", cuda.CodeInvalidDevice)
	}
	if d.contexts == nil {
		d.contexts = map[cuda.Context]int{}
		d.current = map[int]cuda.Context{}
	}
	c := cuda.Context(d.id())
	d.contexts[c] = int(dev)
	d.current[threadID()] = c
	return c, nil
}

func (d *Driver) CtxDestroy(ctx cuda.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuCtxDestroy_v2", false); e != nil {
		return e
	}
	if _, ok := d.contexts[ctx]; !ok {
		return cuda.NewError("cuCtxDestroy_v2", cuda.CodeInvalidContext)
	}
	delete(d.contexts, ctx)
	for t, c := range d.current {
		if c == ctx {
			delete(d.current, t)
		}
	}
	return nil
}

func (d *Driver) CtxSetCurrent(ctx cuda.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuCtxSetCurrent", false); e != nil {
		return e
	}
	if ctx == 0 {
		delete(d.current, threadID())
		return nil
	}
	if _, ok := d.contexts[ctx]; !ok {
		return cuda.NewError("cuCtxSetCurrent", cuda.CodeInvalidContext)
	}
	d.current[threadID()] = ctx
	return nil
}

func (d *Driver) CtxSynchronize() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuCtxSynchronize", true); e != nil {
		return e
	}
	for _, s := range d.streams {
		if s.capturing {
			return cuda.NewError("cuCtxSynchronize", cuda.CodeStreamCaptureUnsupported)
		}
	}
	return nil
}

var _ cuda.Driver = (*Driver)(nil)
