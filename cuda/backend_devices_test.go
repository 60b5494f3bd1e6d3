package cuda_test

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/cuda"
	"qinfer/cuda/cudatest"
	"qinfer/host/testenv"
	"qinfer/kernels/emu"
)

// The GPU backend's tests run against every device under test:
//
//   - "gpu": the real GPU, when libcuda loads and device 0 opens. Without
//     one the subtest skips and says why, or fails when
//     QINFER_REQUIRE_GPU=1 (testenv.NoGPU).
//   - "emu-sm80" and "emu-sm61": the kernels run by the CPU emulator
//     (kernels/emu) behind cuda/cudatest's fake driver, as the compute_80
//     variant (tensor cores) and the compute_61 variant (dp4a). They need
//     cgo; the binaries built for the GPU machine (CGO_ENABLED=0) have
//     only "gpu".
//
// The emulator is slow, so shapes stay small; the real GPU runs the same
// cases.

var (
	realOnce sync.Once
	realBE   *cuda.Backend
	realErr  error
)

// realGPU returns the shared backend on the real device 0, or skips (or
// fails, with QINFER_REQUIRE_GPU=1).
func realGPU(t testing.TB) *cuda.Backend {
	t.Helper()
	realOnce.Do(func() {
		drv, err := cuda.LoadDefault("")
		if err != nil {
			realErr = err
			return
		}
		realBE, realErr = cuda.NewGPU(0, drv)
	})
	if realErr != nil {
		testenv.NoGPU(t, realErr.Error())
	}
	return realBE
}

type emuDevice struct {
	name  string
	gpu   cudatest.GPU
	once  sync.Once
	be    *cuda.Backend
	fake  *cudatest.Driver
	err   error
	users sync.Mutex // one test at a time: fake devices are cheap, state is not
}

var emuDevices = []*emuDevice{
	{name: "emu-sm80", gpu: cudatest.H100()},
	{name: "emu-sm61", gpu: cudatest.P40()},
}

func (d *emuDevice) open() (*cuda.Backend, error) {
	d.once.Do(func() {
		if d.fake, d.err = emu.New(d.gpu); d.err != nil {
			return
		}
		d.be, d.err = cuda.NewGPU(0, d.fake)
	})
	return d.be, d.err
}

// device is one backend under test.
type device struct {
	name string
	be   *cuda.Backend
	emu  bool
}

// forEachDevice runs fn as a subtest on every device under test.
func forEachDevice(t *testing.T, fn func(t *testing.T, d device)) {
	t.Helper()
	t.Run("gpu", func(t *testing.T) {
		be := realGPU(t)
		fn(t, device{name: "gpu", be: be})
	})
	for _, ed := range emuDevices {
		t.Run(ed.name, func(t *testing.T) {
			if !emu.Available {
				t.Skip("the kernel emulator needs cgo on Linux")
			}
			be, err := ed.open()
			require.NoError(t, err)
			ed.users.Lock()
			defer ed.users.Unlock()
			fn(t, device{name: ed.name, be: be, emu: true})
		})
	}
}

// newEmuBackend opens a private emulated backend (tests that inspect the
// fake driver's allocations or shrink its memory).
func newEmuBackend(t *testing.T, gpu cudatest.GPU) (*cuda.Backend, *cudatest.Driver) {
	t.Helper()
	if !emu.Available {
		t.Skip("the kernel emulator needs cgo on Linux")
	}
	fake, err := emu.New(gpu)
	require.NoError(t, err)
	be, err := cuda.NewGPU(0, fake)
	require.NoError(t, err)
	return be, fake
}

func TestMain(m *testing.M) {
	code := m.Run()
	if realBE != nil {
		if err := realBE.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close GPU backend:", err)
			code = 1
		}
	}
	for _, d := range emuDevices {
		if d.be != nil {
			_ = d.be.Close()
		}
	}
	os.Exit(code)
}
