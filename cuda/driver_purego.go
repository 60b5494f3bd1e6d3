//go:build linux && (amd64 || arm64)

package cuda

import (
	"runtime"
	"unsafe"

	"github.com/ebitengine/purego"
)

// pureDriver calls libcuda through purego: dlopen at run time, no cgo, so
// the default build needs no CUDA toolkit and falls back when the library
// is missing (DESIGN.md decision 1). Calls go through purego.SyscallN
// rather than RegisterFunc: it skips reflection, which matters for a
// launch-bound decode loop.
type pureDriver struct {
	lib    string
	handle uintptr
	sym    symbols
}

// symbols are the driver entry points. Zero means an optional symbol the
// library lacks.
type symbols struct {
	init, driverGetVersion                                        uintptr
	deviceGetCount, deviceGet, deviceGetName                      uintptr
	deviceGetAttribute, deviceTotalMem                            uintptr
	ctxCreate, ctxDestroy, ctxSetCurrent, ctxSynchronize          uintptr
	memGetInfo, memAlloc, memFree                                 uintptr
	memcpyHtoD, memcpyDtoH, memcpyDtoD                            uintptr
	memcpyHtoDAsync, memcpyDtoHAsync, memcpyDtoDAsync             uintptr
	memsetD8, memsetD32, memsetD8Async, memsetD32Async            uintptr
	moduleLoadData, moduleUnload, moduleGetFunction               uintptr
	launchKernel                                                  uintptr
	streamCreate, streamDestroy, streamSynchronize                uintptr
	eventCreate, eventRecord, eventSynchronize                    uintptr
	eventElapsedTime, eventDestroy                                uintptr
	streamBeginCapture, streamEndCapture                          uintptr
	graphInstantiate, graphLaunch, graphDestroy, graphExecDestroy uintptr
	getErrorName, getErrorString                                  uintptr
}

type symbol struct {
	name     string
	addr     *uintptr
	required bool
}

// table lists every symbol with its exported name. The _v2 names are what
// cuda.h's macros resolve to; the unversioned ones are the legacy ABI
// (32-bit sizes, for instance) and must not be called.
func (s *symbols) table() []symbol {
	return []symbol{
		{"cuInit", &s.init, true},
		{"cuDriverGetVersion", &s.driverGetVersion, true},
		{"cuDeviceGetCount", &s.deviceGetCount, true},
		{"cuDeviceGet", &s.deviceGet, true},
		{"cuDeviceGetName", &s.deviceGetName, true},
		{"cuDeviceGetAttribute", &s.deviceGetAttribute, true},
		{"cuDeviceTotalMem_v2", &s.deviceTotalMem, true},
		{"cuCtxCreate_v2", &s.ctxCreate, true},
		{"cuCtxDestroy_v2", &s.ctxDestroy, true},
		{"cuCtxSetCurrent", &s.ctxSetCurrent, true},
		{"cuCtxSynchronize", &s.ctxSynchronize, true},
		{"cuMemGetInfo_v2", &s.memGetInfo, true},
		{"cuMemAlloc_v2", &s.memAlloc, true},
		{"cuMemFree_v2", &s.memFree, true},
		{"cuMemcpyHtoD_v2", &s.memcpyHtoD, true},
		{"cuMemcpyDtoH_v2", &s.memcpyDtoH, true},
		{"cuMemcpyDtoD_v2", &s.memcpyDtoD, true},
		{"cuMemcpyHtoDAsync_v2", &s.memcpyHtoDAsync, true},
		{"cuMemcpyDtoHAsync_v2", &s.memcpyDtoHAsync, true},
		{"cuMemcpyDtoDAsync_v2", &s.memcpyDtoDAsync, true},
		{"cuMemsetD8_v2", &s.memsetD8, true},
		{"cuMemsetD32_v2", &s.memsetD32, true},
		{"cuMemsetD8Async", &s.memsetD8Async, true},
		{"cuMemsetD32Async", &s.memsetD32Async, true},
		{"cuModuleLoadData", &s.moduleLoadData, true},
		{"cuModuleUnload", &s.moduleUnload, true},
		{"cuModuleGetFunction", &s.moduleGetFunction, true},
		{"cuLaunchKernel", &s.launchKernel, true},
		{"cuStreamCreate", &s.streamCreate, true},
		{"cuStreamDestroy_v2", &s.streamDestroy, true},
		{"cuStreamSynchronize", &s.streamSynchronize, true},
		{"cuEventCreate", &s.eventCreate, true},
		{"cuEventRecord", &s.eventRecord, true},
		{"cuEventSynchronize", &s.eventSynchronize, true},
		{"cuEventElapsedTime", &s.eventElapsedTime, true},
		{"cuEventDestroy_v2", &s.eventDestroy, true},
		{"cuGetErrorName", &s.getErrorName, true},
		{"cuGetErrorString", &s.getErrorString, true},
		// Graphs are an optimisation the backend can run without, and
		// cuGraphInstantiateWithFlags needs CUDA 11.4.
		{"cuStreamBeginCapture_v2", &s.streamBeginCapture, false},
		{"cuStreamEndCapture", &s.streamEndCapture, false},
		{"cuGraphInstantiateWithFlags", &s.graphInstantiate, false},
		{"cuGraphLaunch", &s.graphLaunch, false},
		{"cuGraphDestroy", &s.graphDestroy, false},
		{"cuGraphExecDestroy", &s.graphExecDestroy, false},
	}
}

// Load opens the driver library (DefaultLib when lib is "") and resolves
// every symbol the Driver interface needs. It does not call cuInit. A
// failure is a *LoadError, matching ErrNoDriver. The library stays loaded
// for the life of the process: unloading it under live contexts would
// leave the driver's threads running unmapped code.
func Load(lib string) (Driver, error) {
	if lib == "" {
		lib = DefaultLib
	}
	h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, &LoadError{Lib: lib, Err: err}
	}
	d := &pureDriver{lib: lib, handle: h}
	for _, s := range d.sym.table() {
		addr, err := purego.Dlsym(h, s.name)
		if err != nil {
			if s.required {
				// Closing is best effort: the load already failed.
				_ = purego.Dlclose(h)
				return nil, &LoadError{Lib: lib, Symbol: s.name, Err: err}
			}
			continue
		}
		*s.addr = addr
	}
	return d, nil
}

func (d *pureDriver) Binding() string { return "purego" }
func (d *pureDriver) Library() string { return d.lib }

// check turns a CUresult into nil or a *Error for call.
func (d *pureDriver) check(call string, r uintptr) error {
	code := int(int32(r))
	if code == CodeSuccess {
		return nil
	}
	e := &Error{Call: call, Code: code, Name: ResultName(code), Desc: ResultString(code)}
	// The driver knows codes newer than our table; its words win.
	if name, err := d.GetErrorName(code); err == nil {
		e.Name = name
	}
	if desc, err := d.GetErrorString(code); err == nil {
		e.Desc = desc
	}
	return e
}

// optional returns the error for a call to a symbol the library lacks.
func (d *pureDriver) optional(addr uintptr, call string) error {
	if addr == 0 {
		return unsupported(call, "this driver ("+d.lib+" lacks the symbol)")
	}
	return nil
}

// goString copies a NUL-terminated C string.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// cString returns s NUL-terminated.
func cString(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

func (d *pureDriver) GetErrorName(code int) (string, error) {
	var p *byte
	r, _, _ := purego.SyscallN(d.sym.getErrorName, uintptr(uint32(code)), uintptr(unsafe.Pointer(&p)))
	if c := int(int32(r)); c != CodeSuccess {
		// Not d.check: describing this failure would recurse.
		return "", NewError("cuGetErrorName", c)
	}
	return goString(p), nil
}

func (d *pureDriver) GetErrorString(code int) (string, error) {
	var p *byte
	r, _, _ := purego.SyscallN(d.sym.getErrorString, uintptr(uint32(code)), uintptr(unsafe.Pointer(&p)))
	if c := int(int32(r)); c != CodeSuccess {
		return "", NewError("cuGetErrorString", c)
	}
	return goString(p), nil
}

func (d *pureDriver) Init() error {
	r, _, _ := purego.SyscallN(d.sym.init, 0)
	return d.check("cuInit", r)
}

func (d *pureDriver) DriverGetVersion() (int, error) {
	var v int32
	r, _, _ := purego.SyscallN(d.sym.driverGetVersion, uintptr(unsafe.Pointer(&v)))
	return int(v), d.check("cuDriverGetVersion", r)
}

func (d *pureDriver) DeviceGetCount() (int, error) {
	var n int32
	r, _, _ := purego.SyscallN(d.sym.deviceGetCount, uintptr(unsafe.Pointer(&n)))
	return int(n), d.check("cuDeviceGetCount", r)
}

func (d *pureDriver) DeviceGet(ordinal int) (DeviceHandle, error) {
	var dev int32
	r, _, _ := purego.SyscallN(d.sym.deviceGet, uintptr(unsafe.Pointer(&dev)), uintptr(uint32(int32(ordinal))))
	return DeviceHandle(dev), d.check("cuDeviceGet", r)
}

func (d *pureDriver) DeviceGetName(dev DeviceHandle) (string, error) {
	var buf [256]byte
	r, _, _ := purego.SyscallN(d.sym.deviceGetName, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(uint32(dev)))
	if err := d.check("cuDeviceGetName", r); err != nil {
		return "", err
	}
	// The driver truncates and terminates names longer than the buffer.
	buf[len(buf)-1] = 0
	return goString(&buf[0]), nil
}

func (d *pureDriver) DeviceGetAttribute(attr DeviceAttribute, dev DeviceHandle) (int, error) {
	var v int32
	r, _, _ := purego.SyscallN(d.sym.deviceGetAttribute, uintptr(unsafe.Pointer(&v)), uintptr(uint32(attr)), uintptr(uint32(dev)))
	return int(v), d.check("cuDeviceGetAttribute", r)
}

func (d *pureDriver) DeviceTotalMem(dev DeviceHandle) (int64, error) {
	var n uint64
	r, _, _ := purego.SyscallN(d.sym.deviceTotalMem, uintptr(unsafe.Pointer(&n)), uintptr(uint32(dev)))
	return int64(n), d.check("cuDeviceTotalMem_v2", r)
}

func (d *pureDriver) CtxCreate(flags CtxFlags, dev DeviceHandle) (Context, error) {
	var c uintptr
	r, _, _ := purego.SyscallN(d.sym.ctxCreate, uintptr(unsafe.Pointer(&c)), uintptr(flags), uintptr(uint32(dev)))
	return Context(c), d.check("cuCtxCreate_v2", r)
}

func (d *pureDriver) CtxDestroy(ctx Context) error {
	r, _, _ := purego.SyscallN(d.sym.ctxDestroy, uintptr(ctx))
	return d.check("cuCtxDestroy_v2", r)
}

func (d *pureDriver) CtxSetCurrent(ctx Context) error {
	r, _, _ := purego.SyscallN(d.sym.ctxSetCurrent, uintptr(ctx))
	return d.check("cuCtxSetCurrent", r)
}

func (d *pureDriver) CtxSynchronize() error {
	r, _, _ := purego.SyscallN(d.sym.ctxSynchronize)
	return d.check("cuCtxSynchronize", r)
}

func (d *pureDriver) MemGetInfo() (free, total int64, err error) {
	var f, t uint64
	r, _, _ := purego.SyscallN(d.sym.memGetInfo, uintptr(unsafe.Pointer(&f)), uintptr(unsafe.Pointer(&t)))
	return int64(f), int64(t), d.check("cuMemGetInfo_v2", r)
}

func (d *pureDriver) MemAlloc(bytes int64) (DevicePtr, error) {
	if bytes < 0 {
		return 0, negativeSize("cuMemAlloc_v2", bytes)
	}
	var p uint64
	r, _, _ := purego.SyscallN(d.sym.memAlloc, uintptr(unsafe.Pointer(&p)), uintptr(bytes))
	return DevicePtr(p), d.check("cuMemAlloc_v2", r)
}

func (d *pureDriver) MemFree(p DevicePtr) error {
	r, _, _ := purego.SyscallN(d.sym.memFree, uintptr(p))
	return d.check("cuMemFree_v2", r)
}

func (d *pureDriver) MemcpyHtoD(dst DevicePtr, src unsafe.Pointer, bytes int64) error {
	if bytes < 0 {
		return negativeSize("cuMemcpyHtoD_v2", bytes)
	}
	r, _, _ := purego.SyscallN(d.sym.memcpyHtoD, uintptr(dst), uintptr(src), uintptr(bytes))
	return d.check("cuMemcpyHtoD_v2", r)
}

func (d *pureDriver) MemcpyDtoH(dst unsafe.Pointer, src DevicePtr, bytes int64) error {
	if bytes < 0 {
		return negativeSize("cuMemcpyDtoH_v2", bytes)
	}
	r, _, _ := purego.SyscallN(d.sym.memcpyDtoH, uintptr(dst), uintptr(src), uintptr(bytes))
	return d.check("cuMemcpyDtoH_v2", r)
}

func (d *pureDriver) MemcpyDtoD(dst, src DevicePtr, bytes int64) error {
	if bytes < 0 {
		return negativeSize("cuMemcpyDtoD_v2", bytes)
	}
	r, _, _ := purego.SyscallN(d.sym.memcpyDtoD, uintptr(dst), uintptr(src), uintptr(bytes))
	return d.check("cuMemcpyDtoD_v2", r)
}

func (d *pureDriver) MemcpyHtoDAsync(dst DevicePtr, src unsafe.Pointer, bytes int64, s Stream) error {
	if bytes < 0 {
		return negativeSize("cuMemcpyHtoDAsync_v2", bytes)
	}
	r, _, _ := purego.SyscallN(d.sym.memcpyHtoDAsync, uintptr(dst), uintptr(src), uintptr(bytes), uintptr(s))
	return d.check("cuMemcpyHtoDAsync_v2", r)
}

func (d *pureDriver) MemcpyDtoHAsync(dst unsafe.Pointer, src DevicePtr, bytes int64, s Stream) error {
	if bytes < 0 {
		return negativeSize("cuMemcpyDtoHAsync_v2", bytes)
	}
	r, _, _ := purego.SyscallN(d.sym.memcpyDtoHAsync, uintptr(dst), uintptr(src), uintptr(bytes), uintptr(s))
	return d.check("cuMemcpyDtoHAsync_v2", r)
}

func (d *pureDriver) MemcpyDtoDAsync(dst, src DevicePtr, bytes int64, s Stream) error {
	if bytes < 0 {
		return negativeSize("cuMemcpyDtoDAsync_v2", bytes)
	}
	r, _, _ := purego.SyscallN(d.sym.memcpyDtoDAsync, uintptr(dst), uintptr(src), uintptr(bytes), uintptr(s))
	return d.check("cuMemcpyDtoDAsync_v2", r)
}

func (d *pureDriver) MemsetD8(dst DevicePtr, v uint8, n int64) error {
	if n < 0 {
		return negativeSize("cuMemsetD8_v2", n)
	}
	r, _, _ := purego.SyscallN(d.sym.memsetD8, uintptr(dst), uintptr(v), uintptr(n))
	return d.check("cuMemsetD8_v2", r)
}

func (d *pureDriver) MemsetD32(dst DevicePtr, v uint32, n int64) error {
	if n < 0 {
		return negativeSize("cuMemsetD32_v2", n)
	}
	r, _, _ := purego.SyscallN(d.sym.memsetD32, uintptr(dst), uintptr(v), uintptr(n))
	return d.check("cuMemsetD32_v2", r)
}

func (d *pureDriver) MemsetD8Async(dst DevicePtr, v uint8, n int64, s Stream) error {
	if n < 0 {
		return negativeSize("cuMemsetD8Async", n)
	}
	r, _, _ := purego.SyscallN(d.sym.memsetD8Async, uintptr(dst), uintptr(v), uintptr(n), uintptr(s))
	return d.check("cuMemsetD8Async", r)
}

func (d *pureDriver) MemsetD32Async(dst DevicePtr, v uint32, n int64, s Stream) error {
	if n < 0 {
		return negativeSize("cuMemsetD32Async", n)
	}
	r, _, _ := purego.SyscallN(d.sym.memsetD32Async, uintptr(dst), uintptr(v), uintptr(n), uintptr(s))
	return d.check("cuMemsetD32Async", r)
}

func (d *pureDriver) ModuleLoadData(image []byte) (Module, error) {
	if len(image) == 0 {
		return 0, NewError("cuModuleLoadData", CodeInvalidImage)
	}
	img := nulTerminated(image)
	var m uintptr
	r, _, _ := purego.SyscallN(d.sym.moduleLoadData, uintptr(unsafe.Pointer(&m)), uintptr(unsafe.Pointer(&img[0])))
	runtime.KeepAlive(img)
	return Module(m), d.check("cuModuleLoadData", r)
}

func (d *pureDriver) ModuleUnload(m Module) error {
	r, _, _ := purego.SyscallN(d.sym.moduleUnload, uintptr(m))
	return d.check("cuModuleUnload", r)
}

func (d *pureDriver) ModuleGetFunction(m Module, name string) (Function, error) {
	cname := cString(name)
	var f uintptr
	r, _, _ := purego.SyscallN(d.sym.moduleGetFunction, uintptr(unsafe.Pointer(&f)), uintptr(m), uintptr(unsafe.Pointer(&cname[0])))
	runtime.KeepAlive(cname)
	if err := d.check("cuModuleGetFunction", r); err != nil {
		return 0, withKernel(err, name)
	}
	return Function(f), nil
}

func (d *pureDriver) LaunchKernel(f Function, grid, block Dim3, sharedMem uint32, s Stream, params []unsafe.Pointer) error {
	// The driver reads params (and the values they point to) during the
	// call only; SyscallN's uintptrescapes keeps them alive until then.
	r, _, _ := purego.SyscallN(d.sym.launchKernel, uintptr(f),
		uintptr(grid.X), uintptr(grid.Y), uintptr(grid.Z),
		uintptr(block.X), uintptr(block.Y), uintptr(block.Z),
		uintptr(sharedMem), uintptr(s), uintptr(unsafe.Pointer(unsafe.SliceData(params))), 0)
	runtime.KeepAlive(params)
	return d.check("cuLaunchKernel", r)
}

func (d *pureDriver) StreamCreate(flags StreamFlags) (Stream, error) {
	var s uintptr
	r, _, _ := purego.SyscallN(d.sym.streamCreate, uintptr(unsafe.Pointer(&s)), uintptr(flags))
	return Stream(s), d.check("cuStreamCreate", r)
}

func (d *pureDriver) StreamDestroy(s Stream) error {
	r, _, _ := purego.SyscallN(d.sym.streamDestroy, uintptr(s))
	return d.check("cuStreamDestroy_v2", r)
}

func (d *pureDriver) StreamSynchronize(s Stream) error {
	r, _, _ := purego.SyscallN(d.sym.streamSynchronize, uintptr(s))
	return d.check("cuStreamSynchronize", r)
}

func (d *pureDriver) EventCreate(flags EventFlags) (Event, error) {
	var e uintptr
	r, _, _ := purego.SyscallN(d.sym.eventCreate, uintptr(unsafe.Pointer(&e)), uintptr(flags))
	return Event(e), d.check("cuEventCreate", r)
}

func (d *pureDriver) EventRecord(e Event, s Stream) error {
	r, _, _ := purego.SyscallN(d.sym.eventRecord, uintptr(e), uintptr(s))
	return d.check("cuEventRecord", r)
}

func (d *pureDriver) EventSynchronize(e Event) error {
	r, _, _ := purego.SyscallN(d.sym.eventSynchronize, uintptr(e))
	return d.check("cuEventSynchronize", r)
}

func (d *pureDriver) EventElapsedTime(start, end Event) (float32, error) {
	var ms float32
	r, _, _ := purego.SyscallN(d.sym.eventElapsedTime, uintptr(unsafe.Pointer(&ms)), uintptr(start), uintptr(end))
	return ms, d.check("cuEventElapsedTime", r)
}

func (d *pureDriver) EventDestroy(e Event) error {
	r, _, _ := purego.SyscallN(d.sym.eventDestroy, uintptr(e))
	return d.check("cuEventDestroy_v2", r)
}

func (d *pureDriver) StreamBeginCapture(s Stream, mode CaptureMode) error {
	if err := d.optional(d.sym.streamBeginCapture, "cuStreamBeginCapture_v2"); err != nil {
		return err
	}
	r, _, _ := purego.SyscallN(d.sym.streamBeginCapture, uintptr(s), uintptr(mode))
	return d.check("cuStreamBeginCapture_v2", r)
}

func (d *pureDriver) StreamEndCapture(s Stream) (Graph, error) {
	if err := d.optional(d.sym.streamEndCapture, "cuStreamEndCapture"); err != nil {
		return 0, err
	}
	var g uintptr
	r, _, _ := purego.SyscallN(d.sym.streamEndCapture, uintptr(s), uintptr(unsafe.Pointer(&g)))
	return Graph(g), d.check("cuStreamEndCapture", r)
}

func (d *pureDriver) GraphInstantiate(g Graph) (GraphExec, error) {
	if err := d.optional(d.sym.graphInstantiate, "cuGraphInstantiateWithFlags"); err != nil {
		return 0, err
	}
	var e uintptr
	r, _, _ := purego.SyscallN(d.sym.graphInstantiate, uintptr(unsafe.Pointer(&e)), uintptr(g), 0)
	return GraphExec(e), d.check("cuGraphInstantiateWithFlags", r)
}

func (d *pureDriver) GraphLaunch(e GraphExec, s Stream) error {
	if err := d.optional(d.sym.graphLaunch, "cuGraphLaunch"); err != nil {
		return err
	}
	r, _, _ := purego.SyscallN(d.sym.graphLaunch, uintptr(e), uintptr(s))
	return d.check("cuGraphLaunch", r)
}

func (d *pureDriver) GraphDestroy(g Graph) error {
	if err := d.optional(d.sym.graphDestroy, "cuGraphDestroy"); err != nil {
		return err
	}
	r, _, _ := purego.SyscallN(d.sym.graphDestroy, uintptr(g))
	return d.check("cuGraphDestroy", r)
}

func (d *pureDriver) GraphExecDestroy(e GraphExec) error {
	if err := d.optional(d.sym.graphExecDestroy, "cuGraphExecDestroy"); err != nil {
		return err
	}
	r, _, _ := purego.SyscallN(d.sym.graphExecDestroy, uintptr(e))
	return d.check("cuGraphExecDestroy", r)
}
