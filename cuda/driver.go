// Package cuda is qinfer's GPU backend. This part is the CUDA driver API
// binding: the Driver interface, the run-time loader of libcuda.so.1
// (purego, no cgo; see DESIGN.md decision 1), the optional link-time
// binding on gorgonia.org/cu (-tags gorgonia), and Device, which owns a
// context on one OS thread (decision 3).
package cuda

import (
	"fmt"
	"unsafe"
)

// DefaultLib is the driver library Load opens when given "".
const DefaultLib = "libcuda.so.1"

// Opaque driver handles. Their values are the driver's own (CUdevice,
// CUcontext, ...); zero means none, and Stream(0) is the legacy default
// stream.
type (
	DeviceHandle int32
	Context      uintptr
	Module       uintptr
	Function     uintptr
	Stream       uintptr
	Event        uintptr
	Graph        uintptr
	GraphExec    uintptr
	// DevicePtr is a device address (CUdeviceptr, 64 bits on every
	// platform CUDA supports).
	DevicePtr uint64
)

// Dim3 is a grid or block size.
type Dim3 struct{ X, Y, Z uint32 }

// DeviceAttribute is a CUdevice_attribute.
type DeviceAttribute int32

// The attributes qinfer reads (values from cuda.h).
const (
	AttrMaxThreadsPerBlock           DeviceAttribute = 1
	AttrMaxSharedMemoryPerBlock      DeviceAttribute = 8
	AttrWarpSize                     DeviceAttribute = 10
	AttrMaxRegistersPerBlock         DeviceAttribute = 12
	AttrClockRate                    DeviceAttribute = 13 // kHz
	AttrMultiprocessorCount          DeviceAttribute = 16
	AttrIntegrated                   DeviceAttribute = 18
	AttrPCIBusID                     DeviceAttribute = 33
	AttrPCIDeviceID                  DeviceAttribute = 34
	AttrMemoryClockRate              DeviceAttribute = 36 // kHz
	AttrGlobalMemoryBusWidth         DeviceAttribute = 37 // bits
	AttrL2CacheSize                  DeviceAttribute = 38 // bytes
	AttrMaxThreadsPerMultiprocessor  DeviceAttribute = 39
	AttrPCIDomainID                  DeviceAttribute = 50
	AttrComputeCapabilityMajor       DeviceAttribute = 75
	AttrComputeCapabilityMinor       DeviceAttribute = 76
	AttrMaxSharedMemoryPerSM         DeviceAttribute = 81
	AttrMaxSharedMemoryPerBlockOptin DeviceAttribute = 97
)

// CtxFlags are cuCtxCreate flags.
type CtxFlags uint32

const (
	CtxSchedAuto         CtxFlags = 0x0
	CtxSchedSpin         CtxFlags = 0x1
	CtxSchedYield        CtxFlags = 0x2
	CtxSchedBlockingSync CtxFlags = 0x4
)

// StreamFlags are cuStreamCreate flags.
type StreamFlags uint32

const (
	StreamDefault     StreamFlags = 0x0
	StreamNonBlocking StreamFlags = 0x1
)

// EventFlags are cuEventCreate flags.
type EventFlags uint32

const (
	EventDefault       EventFlags = 0x0
	EventBlockingSync  EventFlags = 0x1
	EventDisableTiming EventFlags = 0x2
)

// CaptureMode is a CUstreamCaptureMode. DESIGN.md decision 8: capture in
// thread-local or relaxed mode, since in global mode a capture-unsafe call
// from any thread (a finalizer freeing memory) invalidates the capture.
type CaptureMode uint32

const (
	CaptureModeGlobal      CaptureMode = 0
	CaptureModeThreadLocal CaptureMode = 1
	CaptureModeRelaxed     CaptureMode = 2
)

// Driver is the part of the CUDA driver API the GPU backend uses. Methods
// mirror the driver calls of the same name (the _v2 variants where the
// driver has them); a failed call returns a *Error naming the symbol.
//
// A context is current per OS thread: every call after CtxCreate must run
// on the thread the context is current on (use Device.Do), or set it
// current first.
//
// Host memory passed as unsafe.Pointer must stay reachable until the call
// returns, or, for the Async copies, until the stream has passed the copy.
// Async copies from pageable (ordinary Go) memory are staged by the driver
// and are not truly asynchronous.
type Driver interface {
	// Binding names the implementation: "purego", "gorgonia" or a fake's.
	Binding() string
	// Library is the driver library in use, as given to Load.
	Library() string

	Init() error
	// DriverGetVersion returns the CUDA version the driver supports,
	// 1000*major + 10*minor (12080 for 12.8). It works before Init.
	DriverGetVersion() (int, error)
	DeviceGetCount() (int, error)
	DeviceGet(ordinal int) (DeviceHandle, error)
	DeviceGetName(dev DeviceHandle) (string, error)
	DeviceGetAttribute(attr DeviceAttribute, dev DeviceHandle) (int, error)
	DeviceTotalMem(dev DeviceHandle) (int64, error)

	// CtxCreate creates a context and makes it current on the calling
	// thread.
	CtxCreate(flags CtxFlags, dev DeviceHandle) (Context, error)
	CtxDestroy(ctx Context) error
	CtxSetCurrent(ctx Context) error
	CtxSynchronize() error

	MemGetInfo() (free, total int64, err error)
	MemAlloc(bytes int64) (DevicePtr, error)
	MemFree(p DevicePtr) error
	MemcpyHtoD(dst DevicePtr, src unsafe.Pointer, bytes int64) error
	MemcpyDtoH(dst unsafe.Pointer, src DevicePtr, bytes int64) error
	MemcpyDtoD(dst, src DevicePtr, bytes int64) error
	MemcpyHtoDAsync(dst DevicePtr, src unsafe.Pointer, bytes int64, s Stream) error
	MemcpyDtoHAsync(dst unsafe.Pointer, src DevicePtr, bytes int64, s Stream) error
	MemcpyDtoDAsync(dst, src DevicePtr, bytes int64, s Stream) error
	// MemsetD8 and MemsetD32 set n elements (bytes or 32-bit words).
	MemsetD8(dst DevicePtr, v uint8, n int64) error
	MemsetD32(dst DevicePtr, v uint32, n int64) error
	MemsetD8Async(dst DevicePtr, v uint8, n int64, s Stream) error
	MemsetD32Async(dst DevicePtr, v uint32, n int64, s Stream) error

	// ModuleLoadData loads PTX, a cubin or a fatbin. PTX need not be
	// NUL-terminated (go:embed data is not); the binding terminates it.
	ModuleLoadData(image []byte) (Module, error)
	ModuleUnload(m Module) error
	ModuleGetFunction(m Module, name string) (Function, error)
	// LaunchKernel launches f; params holds one pointer per kernel
	// parameter, to that parameter's value, as cuLaunchKernel takes them.
	// The gorgonia binding copies exactly 8 bytes from each pointer, so
	// kernels meant to run under both bindings take 8-byte parameters
	// (pointers, int64, uint64) only.
	LaunchKernel(f Function, grid, block Dim3, sharedMem uint32, s Stream, params []unsafe.Pointer) error

	StreamCreate(flags StreamFlags) (Stream, error)
	StreamDestroy(s Stream) error
	StreamSynchronize(s Stream) error

	EventCreate(flags EventFlags) (Event, error)
	EventRecord(e Event, s Stream) error
	EventSynchronize(e Event) error
	// EventElapsedTime returns milliseconds from start to end.
	EventElapsedTime(start, end Event) (float32, error)
	EventDestroy(e Event) error

	// Graph capture and replay. Drivers older than CUDA 11.4 (and the
	// gorgonia binding) return an error matching ErrUnsupported.
	StreamBeginCapture(s Stream, mode CaptureMode) error
	StreamEndCapture(s Stream) (Graph, error)
	GraphInstantiate(g Graph) (GraphExec, error)
	GraphLaunch(e GraphExec, s Stream) error
	GraphDestroy(g Graph) error
	GraphExecDestroy(e GraphExec) error

	// GetErrorName and GetErrorString describe a CUresult; they work
	// before Init.
	GetErrorName(code int) (string, error)
	GetErrorString(code int) (string, error)
}

// FormatVersion renders a DriverGetVersion value as "major.minor".
func FormatVersion(v int) string {
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}

// LoadDefault returns the binding this binary prefers: the link-time
// gorgonia binding when built with -tags gorgonia (lib is then ignored,
// since that library was chosen at link time), otherwise Load(lib).
func LoadDefault(lib string) (Driver, error) {
	if linked != nil {
		return linked()
	}
	return Load(lib)
}

// linked is set by the init of the gorgonia binding when it is compiled in.
var linked func() (Driver, error)

// nulTerminated returns image with a terminating NUL, copying only when
// it lacks one: the driver reads PTX as a C string.
func nulTerminated(image []byte) []byte {
	if len(image) > 0 && image[len(image)-1] == 0 {
		return image
	}
	img := make([]byte, len(image)+1)
	copy(img, image)
	return img
}

// negativeSize is the error for a negative byte or element count, which
// would wrap to a huge size_t in the driver.
func negativeSize(call string, n int64) error {
	e := NewError(call, CodeInvalidValue)
	e.Desc = fmt.Sprintf("%s: negative size %d", e.Desc, n)
	return e
}

// withKernel adds the kernel name to a cuModuleGetFunction failure, which
// the driver's message alone does not identify.
func withKernel(err error, name string) error {
	if e, ok := err.(*Error); ok {
		e.Call += "(" + name + ")"
	}
	return err
}
