package cuda_test

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/cuda"
	"qinfer/host/testenv"
)

// axpyPTX is
//
//	extern "C" __global__ void axpy_i32(long long a, const int *x, int *y, long long n) {
//	    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
//	    if (i < n) y[i] = (int)a * x[i] + y[i];
//	}
//
// compiled by `nvcc -arch=compute_61 -ptx` (CUDA 11.8), so it loads on any
// device qinfer supports. Its parameters are 8 bytes each, which both
// bindings pass correctly.
const axpyPTX = `.version 7.8
.target sm_61
.address_size 64

.visible .entry axpy_i32(
	.param .u64 axpy_i32_param_0,
	.param .u64 axpy_i32_param_1,
	.param .u64 axpy_i32_param_2,
	.param .u64 axpy_i32_param_3
)
{
	.reg .pred 	%p<2>;
	.reg .b32 	%r<8>;
	.reg .b64 	%rd<13>;

	ld.param.u64 	%rd2, [axpy_i32_param_0];
	ld.param.u64 	%rd3, [axpy_i32_param_1];
	ld.param.u64 	%rd4, [axpy_i32_param_2];
	ld.param.u64 	%rd5, [axpy_i32_param_3];
	mov.u32 	%r1, %ctaid.x;
	mov.u32 	%r2, %ntid.x;
	mul.wide.u32 	%rd6, %r1, %r2;
	mov.u32 	%r3, %tid.x;
	cvt.u64.u32 	%rd7, %r3;
	add.s64 	%rd1, %rd6, %rd7;
	setp.ge.s64 	%p1, %rd1, %rd5;
	@%p1 bra 	$L__BB0_2;

	cvta.to.global.u64 	%rd8, %rd4;
	cvta.to.global.u64 	%rd9, %rd3;
	shl.b64 	%rd10, %rd1, 2;
	add.s64 	%rd11, %rd9, %rd10;
	ld.global.u32 	%r4, [%rd11];
	cvt.u32.u64 	%r5, %rd2;
	add.s64 	%rd12, %rd8, %rd10;
	ld.global.u32 	%r6, [%rd12];
	mad.lo.s32 	%r7, %r4, %r5, %r6;
	st.global.u32 	[%rd12], %r7;

$L__BB0_2:
	ret;
}
`

// openGPU opens device 0 through the binding compiled in, or skips (fails
// under QINFER_REQUIRE_GPU=1) with the reason.
func openGPU(t *testing.T) *cuda.Device {
	t.Helper()
	drv, err := cuda.LoadDefault("")
	if err != nil {
		testenv.NoGPU(t, err.Error())
	}
	if err := drv.Init(); err != nil {
		testenv.NoGPU(t, err.Error())
	}
	dev, err := cuda.Open(drv, 0)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, dev.Close()) })
	p := dev.Properties()
	t.Logf("%s binding, GPU 0: %s, compute %s, %d SMs, %.1f GiB, %.0f GB/s peak",
		drv.Binding(), p.Name, p.ComputeCapability(), p.SMs, float64(p.TotalMem)/(1<<30), p.PeakGBs())
	return dev
}

// TestGPUDoFromManyGoroutines is the context-per-thread rule on hardware:
// calls from many migrating goroutines all succeed through Do, and the
// same call from a thread without the context fails.
func TestGPUDoFromManyGoroutines(t *testing.T) {
	dev := openGPU(t)
	manyGoroutines(t, dev)
	err := offThread(func() error { _, err := dev.Driver().MemAlloc(16); return err })
	assert.ErrorIs(t, err, cuda.ErrInvalidContext)
}

func TestGPUKernelsEventsGraphs(t *testing.T) {
	dev := openGPU(t)
	checkKernelsEventsGraphs(t, dev, []byte(axpyPTX))
}

func int32Bytes(v []int32) unsafe.Pointer { return unsafe.Pointer(&v[0]) }

// on runs fn on the device thread and fails the test (on the test
// goroutine: FailNow must not run on the device thread) if it fails.
func on[T any](t *testing.T, dev *cuda.Device, fn func() (T, error)) T {
	t.Helper()
	var v T
	require.NoError(t, dev.Do(func() error {
		var err error
		v, err = fn()
		return err
	}))
	return v
}

// do is on for calls without a result.
func do(t *testing.T, dev *cuda.Device, fn func() error) {
	t.Helper()
	require.NoError(t, dev.Do(fn))
}

// release runs fn on the device thread at cleanup, before Close.
func release(t *testing.T, dev *cuda.Device, fn func() error) {
	t.Cleanup(func() { assert.NoError(t, dev.Do(fn)) })
}

// checkKernelsEventsGraphs launches axpy_i32 directly and from a captured
// graph and compares with the same arithmetic in Go.
func checkKernelsEventsGraphs(t *testing.T, dev *cuda.Device, image []byte) {
	drv := dev.Driver()
	const n = 3000
	rng := rand.New(rand.NewPCG(42, 1))
	x := make([]int32, n)
	y := make([]int32, n)
	for i := range x {
		x[i] = int32(rng.Uint32())
		y[i] = int32(rng.Uint32())
	}
	a := int64(rng.IntN(200) - 100)
	if a == 0 {
		a = 37
	}
	want1 := make([]int32, n)
	want3 := make([]int32, n)
	for i := range x {
		want1[i] = int32(a)*x[i] + y[i]
		want3[i] = 3*int32(a)*x[i] + y[i]
	}
	got := make([]int32, n)
	gotCopy := make([]int32, n)

	mod := on(t, dev, func() (cuda.Module, error) { return drv.ModuleLoadData(image) })
	release(t, dev, func() error { return drv.ModuleUnload(mod) })
	fn := on(t, dev, func() (cuda.Function, error) { return drv.ModuleGetFunction(mod, "axpy_i32") })
	err := dev.Do(func() error { _, err := drv.ModuleGetFunction(mod, "no_such_kernel"); return err })
	assert.ErrorIs(t, err, &cuda.Error{Code: cuda.CodeNotFound})
	assert.ErrorContains(t, err, "cuModuleGetFunction(no_such_kernel)")

	err = dev.Do(func() error { _, err := drv.MemAlloc(1 << 50); return err })
	assert.ErrorIs(t, err, cuda.ErrOutOfMemory)

	bytes := int64(4 * n)
	var ptrs [3]cuda.DevicePtr
	for i := range ptrs {
		p := on(t, dev, func() (cuda.DevicePtr, error) { return drv.MemAlloc(bytes) })
		release(t, dev, func() error { return drv.MemFree(p) })
		ptrs[i] = p
	}
	dx, dy, dz := ptrs[0], ptrs[1], ptrs[2]
	do(t, dev, func() error { return drv.MemcpyHtoD(dx, int32Bytes(x), bytes) })
	do(t, dev, func() error { return drv.MemcpyHtoD(dy, int32Bytes(y), bytes) })
	do(t, dev, func() error { return drv.MemsetD32(dz, 0xdeadbeef, n) })

	s := on(t, dev, func() (cuda.Stream, error) { return drv.StreamCreate(cuda.StreamNonBlocking) })
	release(t, dev, func() error { return drv.StreamDestroy(s) })
	start := on(t, dev, func() (cuda.Event, error) { return drv.EventCreate(cuda.EventDefault) })
	release(t, dev, func() error { return drv.EventDestroy(start) })
	end := on(t, dev, func() (cuda.Event, error) { return drv.EventCreate(cuda.EventDefault) })
	release(t, dev, func() error { return drv.EventDestroy(end) })

	nn := int64(n)
	params := []unsafe.Pointer{unsafe.Pointer(&a), unsafe.Pointer(&dx), unsafe.Pointer(&dy), unsafe.Pointer(&nn)}
	grid, block := cuda.Dim3{X: (n + 255) / 256, Y: 1, Z: 1}, cuda.Dim3{X: 256, Y: 1, Z: 1}
	do(t, dev, func() error {
		if err := drv.EventRecord(start, s); err != nil {
			return err
		}
		if err := drv.LaunchKernel(fn, grid, block, 0, s, params); err != nil {
			return err
		}
		if err := drv.EventRecord(end, s); err != nil {
			return err
		}
		return drv.EventSynchronize(end)
	})
	ms := on(t, dev, func() (float32, error) { return drv.EventElapsedTime(start, end) })
	assert.GreaterOrEqual(t, ms, float32(0))
	do(t, dev, func() error { return drv.MemcpyDtoHAsync(unsafe.Pointer(&got[0]), dy, bytes, s) })
	do(t, dev, func() error { return drv.StreamSynchronize(s) })
	assert.Equal(t, want1, got, "direct launch")

	// Capture launch + copy once, replay twice: y gains 2*a*x, z = y.
	err = dev.Do(func() error { return drv.StreamBeginCapture(s, cuda.CaptureModeThreadLocal) })
	if drv.Binding() == "gorgonia" {
		assert.ErrorIs(t, err, cuda.ErrUnsupported)
		return
	}
	require.NoError(t, err)
	do(t, dev, func() error { return drv.LaunchKernel(fn, grid, block, 0, s, params) })
	do(t, dev, func() error { return drv.MemcpyDtoDAsync(dz, dy, bytes, s) })
	g := on(t, dev, func() (cuda.Graph, error) { return drv.StreamEndCapture(s) })
	release(t, dev, func() error { return drv.GraphDestroy(g) })
	// The driver copied the arguments at capture; later changes to the
	// host values must not reach the replay.
	a = 1000
	ge := on(t, dev, func() (cuda.GraphExec, error) { return drv.GraphInstantiate(g) })
	release(t, dev, func() error { return drv.GraphExecDestroy(ge) })
	do(t, dev, func() error { return drv.GraphLaunch(ge, s) })
	do(t, dev, func() error { return drv.GraphLaunch(ge, s) })
	do(t, dev, func() error { return drv.StreamSynchronize(s) })
	do(t, dev, func() error { return drv.MemcpyDtoH(unsafe.Pointer(&got[0]), dy, bytes) })
	do(t, dev, func() error { return drv.MemcpyDtoH(unsafe.Pointer(&gotCopy[0]), dz, bytes) })
	assert.Equal(t, want3, got, "graph replay")
	assert.Equal(t, want3, gotCopy, "graph copy node")
	do(t, dev, drv.CtxSynchronize)
}
