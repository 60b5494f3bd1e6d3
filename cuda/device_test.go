package cuda_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/cuda"
	"qinfer/cuda/cudatest"
)

func TestDevicePropertiesFromDriver(t *testing.T) {
	fake := cudatest.New(cudatest.GTX980(), cudatest.H100())
	require.NoError(t, fake.Init())
	p, err := cuda.DeviceProperties(fake, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, p.Ordinal)
	assert.Equal(t, "NVIDIA H100 80GB HBM3", p.Name)
	assert.Equal(t, "9.0", p.ComputeCapability())
	assert.Equal(t, 132, p.SMs)
	assert.Equal(t, int64(85045526528), p.TotalMem)
	assert.Equal(t, 5120, p.BusWidthBits)
	assert.InDelta(t, 3352.32, p.PeakGBs(), 1e-6)
	ok, _ := p.Supported()
	assert.True(t, ok)

	old, err := cuda.DeviceProperties(fake, 0)
	require.NoError(t, err)
	ok, why := old.Supported()
	assert.False(t, ok)
	assert.Equal(t, "compute capability 5.2 < 6.1", why)

	_, err = cuda.DeviceProperties(fake, 2)
	assert.ErrorIs(t, err, &cuda.Error{Code: cuda.CodeInvalidDevice})
	assert.ErrorContains(t, err, "device 2")
}

func TestDevicePropertiesRequiredAttributeFails(t *testing.T) {
	fake := cudatest.New(cudatest.H100())
	require.NoError(t, fake.Init())
	fake.Fail("cuDeviceGetAttribute", cuda.CodeUnknown)
	_, err := cuda.DeviceProperties(fake, 0)
	assert.ErrorContains(t, err, "cuda: device 0 (NVIDIA H100 80GB HBM3) compute capability major: cuDeviceGetAttribute: CUDA_ERROR_UNKNOWN (999)")
}

func TestOpenReportsInitFailure(t *testing.T) {
	fake := cudatest.New(cudatest.H100())
	fake.InitResult = cuda.CodeNoDevice
	_, err := cuda.Open(fake, 0)
	assert.ErrorIs(t, err, cuda.ErrNoDevice)
	assert.ErrorContains(t, err, "cuda: open device 0: cuInit: CUDA_ERROR_NO_DEVICE (100)")
}

func TestOpenReportsContextFailure(t *testing.T) {
	fake := cudatest.New(cudatest.H100())
	fake.Fail("cuCtxCreate_v2", cuda.CodeOutOfMemory)
	_, err := cuda.Open(fake, 0)
	assert.ErrorIs(t, err, cuda.ErrOutOfMemory)
	assert.ErrorContains(t, err, "create context on device 0 (NVIDIA H100 80GB HBM3)")
	assert.Zero(t, fake.Live()["contexts"])
}

// roundTrip allocates device memory from inside Do, copies random bytes
// there and back, and compares.
func roundTrip(dev *cuda.Device, rng *rand.Rand, n int) error {
	src := make([]byte, n)
	for i := range src {
		src[i] = byte(rng.UintN(256))
	}
	dst := make([]byte, n)
	drv := dev.Driver()
	return dev.Do(func() error {
		p, err := drv.MemAlloc(int64(n))
		if err != nil {
			return err
		}
		defer drv.MemFree(p)
		if err := drv.MemcpyHtoD(p, unsafe.Pointer(&src[0]), int64(n)); err != nil {
			return err
		}
		if err := drv.MemcpyDtoH(unsafe.Pointer(&dst[0]), p, int64(n)); err != nil {
			return err
		}
		if !bytes.Equal(src, dst) {
			return fmt.Errorf("round trip of %d bytes differs", n)
		}
		return nil
	})
}

// manyGoroutines issues device work from goroutines that are free to
// migrate between threads; Do must put every call on the context's thread.
func manyGoroutines(t *testing.T, dev *cuda.Device) {
	const workers, iters = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*iters)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range iters {
				if err := roundTrip(dev, rng, 1+rng.IntN(64<<10)); err != nil {
					errs <- err
				}
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
}

// offThread calls fn on a fresh OS thread, which has no current context.
func offThread(fn func() error) error {
	res := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		res <- fn()
	}()
	return <-res
}

func TestDeviceDoFromManyGoroutinesFake(t *testing.T) {
	fake := cudatest.New(cudatest.H100())
	dev, err := cuda.Open(fake, 0)
	require.NoError(t, err)
	manyGoroutines(t, dev)
	assert.Equal(t, 16*20, fake.Calls("cuMemAlloc_v2"))
	assert.Zero(t, fake.Allocated(0), "every allocation freed")

	if runtime.GOOS == "linux" {
		// The same call off the device thread fails: the fake enforces the
		// context-per-thread rule, so the success above is meaningful.
		err = offThread(func() error { _, err := fake.MemAlloc(16); return err })
		assert.ErrorIs(t, err, cuda.ErrInvalidContext)
	}
	require.NoError(t, dev.Close())
	assert.Equal(t, map[string]int{"contexts": 0, "allocations": 0, "modules": 0, "streams": 0, "events": 0, "graphs": 0, "graph execs": 0}, fake.Live())
}

func TestDeviceCloseAndPanic(t *testing.T) {
	fake := cudatest.New(cudatest.P40())
	dev, err := cuda.Open(fake, 0)
	require.NoError(t, err)
	assert.Equal(t, "Tesla P40", dev.Properties().Name)
	assert.NotZero(t, dev.Context())

	err = dev.Do(func() error { panic("kernel table corrupt") })
	assert.ErrorContains(t, err, "panic on the device thread: kernel table corrupt")
	// The thread survives and keeps its context.
	free, total, err := dev.MemInfo()
	require.NoError(t, err)
	assert.Equal(t, int64(24032378880), total)
	assert.Equal(t, total, free)

	require.NoError(t, dev.Close())
	require.NoError(t, dev.Close(), "second Close is a no-op")
	assert.ErrorIs(t, dev.Do(func() error { return nil }), cuda.ErrClosed)
	assert.Zero(t, fake.Live()["contexts"])
}

func TestDeviceCloseReportsStickyError(t *testing.T) {
	fake := cudatest.New(cudatest.H100())
	dev, err := cuda.Open(fake, 0)
	require.NoError(t, err)
	fake.Fail("cuCtxSynchronize", cuda.CodeIllegalAddress)
	err = dev.Close()
	assert.ErrorIs(t, err, &cuda.Error{Code: cuda.CodeIllegalAddress})
	assert.Zero(t, fake.Live()["contexts"], "context destroyed despite the failed synchronize")
}

// axpyKernel is the fake counterpart of the PTX kernel in gpu_test.go:
// y[i] = a*x[i] + y[i] over int32, parameters (a, x, y, n) as 8 bytes each.
func axpyKernel(d *cudatest.Driver, grid, block cuda.Dim3, params []unsafe.Pointer) error {
	a := int32(*(*int64)(params[0]))
	x := *(*cuda.DevicePtr)(params[1])
	y := *(*cuda.DevicePtr)(params[2])
	n := *(*int64)(params[3])
	threads := int64(grid.X) * int64(block.X)
	if threads < n {
		n = threads
	}
	xs, err := d.Bytes(x, 4*n)
	if err != nil {
		return err
	}
	ys, err := d.Bytes(y, 4*n)
	if err != nil {
		return err
	}
	for i := int64(0); i < n; i++ {
		xi := int32(uint32(xs[4*i]) | uint32(xs[4*i+1])<<8 | uint32(xs[4*i+2])<<16 | uint32(xs[4*i+3])<<24)
		yi := int32(uint32(ys[4*i]) | uint32(ys[4*i+1])<<8 | uint32(ys[4*i+2])<<16 | uint32(ys[4*i+3])<<24)
		v := uint32(a*xi + yi)
		ys[4*i], ys[4*i+1], ys[4*i+2], ys[4*i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	return nil
}

func TestKernelsEventsGraphsFake(t *testing.T) {
	fake := cudatest.New(cudatest.H100())
	fake.Kernels = map[string]cudatest.Kernel{"axpy_i32": axpyKernel}
	dev, err := cuda.Open(fake, 0)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, dev.Close())
		assert.Equal(t, map[string]int{"contexts": 0, "allocations": 0, "modules": 0, "streams": 0, "events": 0, "graphs": 0, "graph execs": 0}, fake.Live())
	})
	checkKernelsEventsGraphs(t, dev, []byte("// fake module\n"))
	assert.Equal(t, 2, fake.Calls("cuLaunchKernel"), "one direct launch, one captured")
	assert.Equal(t, 2, fake.Calls("cuGraphLaunch"))
}
