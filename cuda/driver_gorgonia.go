//go:build gorgonia && cgo

package cuda

// The link-time binding on gorgonia.org/cu, built with -tags gorgonia
// (DESIGN.md decision 2). It needs cgo, cuda.h and libcuda at build time;
// on Debian, cu's own #cgo lines (-I/usr/include,
// -L/usr/lib/x86_64-linux-gnu) find nvidia-cuda-toolkit's cuda.h and the
// driver's libcuda.so with no CGO_CFLAGS or CGO_LDFLAGS.
//
// gorgonia.org/cu's package init calls cuInit and, when it fails, prints
// the error and exits the process (status 1, "NoDevice" on a machine with
// the driver library and no GPU). A binary built with this tag therefore
// never falls back to the CPU: it cannot start without a working GPU,
// which is why this binding is never the default.
//
// Where cu lacks a call (stream capture, graph instantiate and launch,
// error names) the method returns an error matching ErrUnsupported, or
// answers from this package's table.

import (
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	"gorgonia.org/cu"
)

func init() {
	linked = func() (Driver, error) { return gorgoniaDriver{}, nil }
}

// cu's handle types are structs holding one C handle; ours are that
// handle as an integer. These fail to compile if cu ever changes a handle
// type's size, which would make the conversions below unsound.
var (
	_ [unsafe.Sizeof(cu.CUContext{})]byte = [unsafe.Sizeof(Context(0))]byte{}
	_ [unsafe.Sizeof(cu.Module{})]byte    = [unsafe.Sizeof(Module(0))]byte{}
	_ [unsafe.Sizeof(cu.Function{})]byte  = [unsafe.Sizeof(Function(0))]byte{}
	_ [unsafe.Sizeof(cu.Stream{})]byte    = [unsafe.Sizeof(Stream(0))]byte{}
	_ [unsafe.Sizeof(cu.Event{})]byte     = [unsafe.Sizeof(Event(0))]byte{}
	_ [unsafe.Sizeof(cu.Graph{})]byte     = [unsafe.Sizeof(Graph(0))]byte{}
	_ [unsafe.Sizeof(cu.ExecGraph{})]byte = [unsafe.Sizeof(GraphExec(0))]byte{}
)

// toCU reinterprets one of our handles as cu's struct of the same size.
func toCU[T any, H ~uintptr](h H) T { return *(*T)(unsafe.Pointer(&h)) }

// fromCU is the inverse of toCU.
func fromCU[H ~uintptr, T any](v T) H { return *(*H)(unsafe.Pointer(&v)) }

type gorgoniaDriver struct{}

const gorgoniaBy = "the gorgonia binding (gorgonia.org/cu lacks it)"

func (gorgoniaDriver) Binding() string { return "gorgonia" }
func (gorgoniaDriver) Library() string { return "libcuda (linked)" }

// check converts cu's error, an unexported integer CUresult type that some
// calls wrap with github.com/pkg/errors, into a *Error for call.
func (gorgoniaDriver) check(call string, err error) error {
	if err == nil {
		return nil
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Int && v.Type().PkgPath() == "gorgonia.org/cu" {
			return NewError(call, int(v.Int()))
		}
	}
	return fmt.Errorf("%s: %w", call, err)
}

func (gorgoniaDriver) GetErrorName(code int) (string, error) {
	if _, ok := resultNames[code]; !ok {
		return "", NewError("cuGetErrorName", CodeInvalidValue)
	}
	return ResultName(code), nil
}

func (gorgoniaDriver) GetErrorString(code int) (string, error) {
	if _, ok := resultNames[code]; !ok {
		return "", NewError("cuGetErrorString", CodeInvalidValue)
	}
	return ResultString(code), nil
}

// Init has nothing to do: cu's package init called cuInit, and the process
// would not be running had it failed.
func (gorgoniaDriver) Init() error { return nil }

func (gorgoniaDriver) DriverGetVersion() (int, error) {
	v := cu.Version()
	if v < 0 {
		return 0, NewError("cuDriverGetVersion", CodeUnknown)
	}
	return v, nil
}

func (g gorgoniaDriver) DeviceGetCount() (int, error) {
	n, err := cu.NumDevices()
	return n, g.check("cuDeviceGetCount", err)
}

func (g gorgoniaDriver) DeviceGet(ordinal int) (DeviceHandle, error) {
	d, err := cu.GetDevice(ordinal)
	return DeviceHandle(d), g.check("cuDeviceGet", err)
}

func (g gorgoniaDriver) DeviceGetName(dev DeviceHandle) (string, error) {
	s, err := cu.Device(dev).Name()
	return s, g.check("cuDeviceGetName", err)
}

func (g gorgoniaDriver) DeviceGetAttribute(attr DeviceAttribute, dev DeviceHandle) (int, error) {
	v, err := cu.Device(dev).Attribute(cu.DeviceAttribute(attr))
	return v, g.check("cuDeviceGetAttribute", err)
}

func (g gorgoniaDriver) DeviceTotalMem(dev DeviceHandle) (int64, error) {
	n, err := cu.Device(dev).TotalMem()
	return n, g.check("cuDeviceTotalMem_v2", err)
}

func (g gorgoniaDriver) CtxCreate(flags CtxFlags, dev DeviceHandle) (Context, error) {
	c, err := cu.Device(dev).MakeContext(cu.ContextFlags(flags))
	return fromCU[Context](c), g.check("cuCtxCreate_v2", err)
}

func (g gorgoniaDriver) CtxDestroy(ctx Context) error {
	c := toCU[cu.CUContext](ctx)
	return g.check("cuCtxDestroy_v2", c.Destroy())
}

func (g gorgoniaDriver) CtxSetCurrent(ctx Context) error {
	return g.check("cuCtxSetCurrent", cu.SetCurrentContext(toCU[cu.CUContext](ctx)))
}

func (g gorgoniaDriver) CtxSynchronize() error {
	return g.check("cuCtxSynchronize", cu.Synchronize())
}

func (g gorgoniaDriver) MemGetInfo() (free, total int64, err error) {
	free, total, err = cu.MemInfo()
	return free, total, g.check("cuMemGetInfo_v2", err)
}

func (g gorgoniaDriver) MemAlloc(bytes int64) (DevicePtr, error) {
	if bytes < 0 {
		return 0, negativeSize("cuMemAlloc_v2", bytes)
	}
	p, err := cu.MemAlloc(bytes)
	return DevicePtr(p), g.check("cuMemAlloc_v2", err)
}

func (g gorgoniaDriver) MemFree(p DevicePtr) error {
	return g.check("cuMemFree_v2", cu.MemFree(cu.DevicePtr(p)))
}

func (g gorgoniaDriver) MemcpyHtoD(dst DevicePtr, src unsafe.Pointer, bytes int64) error {
	if bytes < 0 {
		return negativeSize("cuMemcpyHtoD_v2", bytes)
	}
	return g.check("cuMemcpyHtoD_v2", cu.MemcpyHtoD(cu.DevicePtr(dst), src, bytes))
}

func (g gorgoniaDriver) MemcpyDtoH(dst unsafe.Pointer, src DevicePtr, bytes int64) error {
	if bytes < 0 {
		return negativeSize("cuMemcpyDtoH_v2", bytes)
	}
	return g.check("cuMemcpyDtoH_v2", cu.MemcpyDtoH(dst, cu.DevicePtr(src), bytes))
}

func (g gorgoniaDriver) MemcpyDtoD(dst, src DevicePtr, bytes int64) error {
	if bytes < 0 {
		return negativeSize("cuMemcpyDtoD_v2", bytes)
	}
	return g.check("cuMemcpyDtoD_v2", cu.MemcpyDtoD(cu.DevicePtr(dst), cu.DevicePtr(src), bytes))
}

func (g gorgoniaDriver) MemcpyHtoDAsync(dst DevicePtr, src unsafe.Pointer, bytes int64, s Stream) error {
	if bytes < 0 {
		return negativeSize("cuMemcpyHtoDAsync_v2", bytes)
	}
	return g.check("cuMemcpyHtoDAsync_v2", cu.MemcpyHtoDAsync(cu.DevicePtr(dst), src, bytes, toCU[cu.Stream](s)))
}

func (g gorgoniaDriver) MemcpyDtoHAsync(dst unsafe.Pointer, src DevicePtr, bytes int64, s Stream) error {
	if bytes < 0 {
		return negativeSize("cuMemcpyDtoHAsync_v2", bytes)
	}
	return g.check("cuMemcpyDtoHAsync_v2", cu.MemcpyDtoHAsync(dst, cu.DevicePtr(src), bytes, toCU[cu.Stream](s)))
}

func (g gorgoniaDriver) MemcpyDtoDAsync(dst, src DevicePtr, bytes int64, s Stream) error {
	if bytes < 0 {
		return negativeSize("cuMemcpyDtoDAsync_v2", bytes)
	}
	return g.check("cuMemcpyDtoDAsync_v2", cu.MemcpyDtoDAsync(cu.DevicePtr(dst), cu.DevicePtr(src), bytes, toCU[cu.Stream](s)))
}

func (g gorgoniaDriver) MemsetD8(dst DevicePtr, v uint8, n int64) error {
	if n < 0 {
		return negativeSize("cuMemsetD8_v2", n)
	}
	return g.check("cuMemsetD8_v2", cu.MemsetD8(cu.DevicePtr(dst), v, n))
}

func (g gorgoniaDriver) MemsetD32(dst DevicePtr, v uint32, n int64) error {
	if n < 0 {
		return negativeSize("cuMemsetD32_v2", n)
	}
	return g.check("cuMemsetD32_v2", cu.MemsetD32(cu.DevicePtr(dst), v, n))
}

func (g gorgoniaDriver) MemsetD8Async(dst DevicePtr, v uint8, n int64, s Stream) error {
	if n < 0 {
		return negativeSize("cuMemsetD8Async", n)
	}
	return g.check("cuMemsetD8Async", cu.MemsetD8Async(cu.DevicePtr(dst), v, n, toCU[cu.Stream](s)))
}

func (g gorgoniaDriver) MemsetD32Async(dst DevicePtr, v uint32, n int64, s Stream) error {
	if n < 0 {
		return negativeSize("cuMemsetD32Async", n)
	}
	return g.check("cuMemsetD32Async", cu.MemsetD32Async(cu.DevicePtr(dst), uint(v), n, toCU[cu.Stream](s)))
}

func (g gorgoniaDriver) ModuleLoadData(image []byte) (Module, error) {
	if len(image) == 0 {
		return 0, NewError("cuModuleLoadData", CodeInvalidImage)
	}
	// cu.LoadData copies the image with C.CString, which terminates it.
	m, err := cu.LoadData(string(image))
	return fromCU[Module](m), g.check("cuModuleLoadData", err)
}

func (g gorgoniaDriver) ModuleUnload(m Module) error {
	return g.check("cuModuleUnload", toCU[cu.Module](m).Unload())
}

func (g gorgoniaDriver) ModuleGetFunction(m Module, name string) (Function, error) {
	f, err := toCU[cu.Module](m).Function(name)
	if err != nil {
		return 0, withKernel(g.check("cuModuleGetFunction", err), name)
	}
	return fromCU[Function](f), nil
}

// LaunchKernel goes through cu's Function.Launch, which copies 8 bytes
// from each parameter pointer into C memory (cgo forbids handing C a Go
// pointer to Go pointers); see Driver.LaunchKernel.
func (g gorgoniaDriver) LaunchKernel(f Function, grid, block Dim3, sharedMem uint32, s Stream, params []unsafe.Pointer) error {
	for _, p := range params {
		if p == nil {
			return NewError("cuLaunchKernel", CodeInvalidValue)
		}
	}
	err := toCU[cu.Function](f).Launch(int(grid.X), int(grid.Y), int(grid.Z),
		int(block.X), int(block.Y), int(block.Z), int(sharedMem), toCU[cu.Stream](s), params)
	return g.check("cuLaunchKernel", err)
}

func (g gorgoniaDriver) StreamCreate(flags StreamFlags) (Stream, error) {
	s, err := cu.MakeStream(cu.StreamFlags(flags))
	return fromCU[Stream](s), g.check("cuStreamCreate", err)
}

func (g gorgoniaDriver) StreamDestroy(s Stream) error {
	cs := toCU[cu.Stream](s)
	return g.check("cuStreamDestroy_v2", cs.Destroy())
}

func (g gorgoniaDriver) StreamSynchronize(s Stream) error {
	return g.check("cuStreamSynchronize", toCU[cu.Stream](s).Synchronize())
}

func (g gorgoniaDriver) EventCreate(flags EventFlags) (Event, error) {
	e, err := cu.MakeEvent(cu.EventFlags(flags))
	return fromCU[Event](e), g.check("cuEventCreate", err)
}

func (g gorgoniaDriver) EventRecord(e Event, s Stream) error {
	return g.check("cuEventRecord", toCU[cu.Event](e).Record(toCU[cu.Stream](s)))
}

func (g gorgoniaDriver) EventSynchronize(e Event) error {
	return g.check("cuEventSynchronize", toCU[cu.Event](e).Synchronize())
}

func (g gorgoniaDriver) EventElapsedTime(start, end Event) (float32, error) {
	ms, err := toCU[cu.Event](start).Elapsed(toCU[cu.Event](end))
	return float32(ms), g.check("cuEventElapsedTime", err)
}

func (g gorgoniaDriver) EventDestroy(e Event) error {
	ce := toCU[cu.Event](e)
	return g.check("cuEventDestroy_v2", cu.DestroyEvent(&ce))
}

func (gorgoniaDriver) StreamBeginCapture(Stream, CaptureMode) error {
	return unsupported("cuStreamBeginCapture_v2", gorgoniaBy)
}

func (gorgoniaDriver) StreamEndCapture(Stream) (Graph, error) {
	return 0, unsupported("cuStreamEndCapture", gorgoniaBy)
}

func (gorgoniaDriver) GraphInstantiate(Graph) (GraphExec, error) {
	return 0, unsupported("cuGraphInstantiateWithFlags", gorgoniaBy)
}

func (gorgoniaDriver) GraphLaunch(GraphExec, Stream) error {
	return unsupported("cuGraphLaunch", gorgoniaBy)
}

func (g gorgoniaDriver) GraphDestroy(gr Graph) error {
	return g.check("cuGraphDestroy", toCU[cu.Graph](gr).Destroy())
}

func (g gorgoniaDriver) GraphExecDestroy(e GraphExec) error {
	return g.check("cuGraphExecDestroy", toCU[cu.ExecGraph](e).Destroy())
}
