package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/cuda"
	"qinfer/cuda/cudatest"
	"qinfer/host/backend"
	"qinfer/host/testenv"
)

const missingLib = "libqinfer-no-such-cuda.so.1"

func TestProbeWithFakeMachines(t *testing.T) {
	for _, c := range []struct {
		name    string
		fake    func() *cudatest.Driver
		backend string
		ordinal int    // chosen GPU, for cuda
		reason  string // exact reason
		gpus    int
		noDev   bool // --device cuda's error matches cuda.ErrNoDevice
	}{
		{
			name:    "H100",
			fake:    func() *cudatest.Driver { return cudatest.New(cudatest.H100()) },
			backend: "cuda", ordinal: 0, gpus: 1,
			reason: "GPU 0 (NVIDIA H100 80GB HBM3): compute capability 9.0 >= 6.1, CUDA 12.8",
		},
		{
			name:    "compute capability too old",
			fake:    func() *cudatest.Driver { return cudatest.New(cudatest.GTX980()) },
			backend: "cpu", gpus: 1,
			reason: "GPU 0 (NVIDIA GeForce GTX 980): compute capability 5.2 < 6.1",
		},
		{
			name:    "old card first, usable second",
			fake:    func() *cudatest.Driver { return cudatest.New(cudatest.GTX980(), cudatest.P40()) },
			backend: "cuda", ordinal: 1, gpus: 2,
			reason: "GPU 1 (Tesla P40): compute capability 6.1 >= 6.1, CUDA 12.8",
		},
		{
			name: "two old cards",
			fake: func() *cudatest.Driver {
				old := cudatest.GTX980()
				kepler := cudatest.GTX980()
				kepler.Name, kepler.Major, kepler.Minor = "Tesla K80", 3, 7
				return cudatest.New(old, kepler)
			},
			backend: "cpu", gpus: 2,
			reason: "GPU 0 (NVIDIA GeForce GTX 980): compute capability 5.2 < 6.1; GPU 1 (Tesla K80): compute capability 3.7 < 6.1",
		},
		{
			name:    "no device",
			fake:    func() *cudatest.Driver { return cudatest.New() },
			backend: "cpu", noDev: true,
			reason: "no CUDA device",
		},
		{
			name: "cuInit fails with no device",
			fake: func() *cudatest.Driver {
				d := cudatest.New(cudatest.H100())
				d.InitResult = cuda.CodeNoDevice
				return d
			},
			backend: "cpu", noDev: true,
			reason: "cuInit failed: CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is detected",
		},
		{
			name: "cuInit fails otherwise",
			fake: func() *cudatest.Driver {
				d := cudatest.New(cudatest.H100())
				d.InitResult = 804
				return d
			},
			backend: "cpu",
			reason:  "cuInit failed: CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE (804): forward compatibility was attempted on non supported HW",
		},
		{
			name: "device count fails",
			fake: func() *cudatest.Driver {
				d := cudatest.New(cudatest.H100())
				d.Fail("cuDeviceGetCount", cuda.CodeUnknown)
				return d
			},
			backend: "cpu",
			reason:  "cuDeviceGetCount failed: CUDA_ERROR_UNKNOWN (999): unknown error",
		},
		{
			name: "device cannot be described",
			fake: func() *cudatest.Driver {
				d := cudatest.New(cudatest.H100())
				d.Fail("cuDeviceGetName", cuda.CodeInvalidDevice)
				return d
			},
			backend: "cpu", gpus: 1,
			reason: "GPU 0: cuda: device 0 name: cuDeviceGetName: CUDA_ERROR_INVALID_DEVICE (101): invalid device ordinal",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake := c.fake()
			p := ProbeDevices(ProbeOptions{Driver: fake})
			assert.Equal(t, "fake", p.DriverLib)
			assert.Equal(t, "fake", p.Binding)
			assert.Equal(t, "12.8", p.DriverVersion)
			assert.Len(t, p.GPUs, c.gpus)
			assert.Equal(t, c.backend, p.Auto.Backend)
			assert.Equal(t, c.reason, p.Auto.Reason)

			auto, err := Choose("auto", p)
			require.NoError(t, err)
			assert.Equal(t, p.Auto, auto)
			cpu, err := Choose("cpu", p)
			require.NoError(t, err)
			assert.Equal(t, Choice{Backend: "cpu", Reason: "requested with --device cpu"}, cpu)

			forced, err := Choose("cuda", p)
			if c.backend == "cuda" {
				require.NoError(t, err)
				assert.Empty(t, p.CUDAUnavailable)
				require.NotNil(t, forced.GPU)
				assert.Equal(t, c.ordinal, forced.GPU.Ordinal)
				assert.True(t, forced.GPU.Usable)
				assert.Equal(t, "requested with --device cuda; "+c.reason, forced.Reason)
				return
			}
			assert.Nil(t, p.Auto.GPU)
			assert.Equal(t, c.reason, p.CUDAUnavailable)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrCUDAUnavailable)
			assert.Equal(t, "--device cuda: CUDA cannot be used: "+c.reason, err.Error())
			assert.Equal(t, c.noDev, errors.Is(err, cuda.ErrNoDevice))
		})
	}
}

func TestChooseDeviceNames(t *testing.T) {
	p := ProbeDevices(ProbeOptions{Driver: cudatest.New(cudatest.H100())})
	for _, d := range []string{"", "auto", "AUTO", " Auto "} {
		c, err := Choose(d, p)
		require.NoError(t, err, "%q", d)
		assert.Equal(t, "cuda", c.Backend, "%q", d)
	}
	c, err := Choose("CPU", p)
	require.NoError(t, err)
	assert.Equal(t, "cpu", c.Backend)

	_, err = Choose("tpu", p)
	assert.EqualError(t, err, `unknown device "tpu": valid devices are auto, cpu, cuda`)
}

// TestProbeMissingLibrary uses the real loader with a library that does
// not exist.
func TestProbeMissingLibrary(t *testing.T) {
	p := ProbeDevices(ProbeOptions{Lib: missingLib})
	assert.Equal(t, missingLib, p.DriverLib)
	assert.Empty(t, p.GPUs)
	data, err := json.Marshal(p)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"gpus":[]`, "an empty list, not null, for JSON readers")
	assert.Empty(t, p.DriverVersion)
	assert.Equal(t, "cpu", p.Auto.Backend)
	assert.True(t, strings.HasPrefix(p.Auto.Reason, "no CUDA driver library ("), p.Auto.Reason)
	assert.Contains(t, p.Auto.Reason, missingLib)

	_, err = Choose("cuda", p)
	assert.ErrorIs(t, err, ErrCUDAUnavailable)
	assert.ErrorIs(t, err, cuda.ErrNoDriver)
	assert.Contains(t, err.Error(), missingLib)
}

// TestProbeRealDriverWithoutGPU runs where the driver library is installed
// without a GPU: cuInit's code and name become the reason.
func TestProbeRealDriverWithoutGPU(t *testing.T) {
	drv, err := cuda.Load(cuda.DefaultLib)
	if err != nil {
		t.Skipf("no CUDA driver library on this machine: %v", err)
	}
	if err := drv.Init(); err == nil {
		t.Skip("cuInit succeeded: this machine has a GPU")
	}
	p := ProbeDevices(ProbeOptions{Lib: cuda.DefaultLib})
	assert.Equal(t, "purego", p.Binding)
	assert.NotEmpty(t, p.DriverVersion, "the driver reports its CUDA version before cuInit")
	assert.Equal(t, "cpu", p.Auto.Backend)
	assert.Equal(t, "cuInit failed: CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is detected", p.Auto.Reason)

	var buf bytes.Buffer
	be, _, err := OpenBackend("cuda", 1, ProbeOptions{Lib: cuda.DefaultLib}, slog.New(slog.NewTextHandler(&buf, nil)))
	assert.Nil(t, be)
	assert.EqualError(t, err, "--device cuda: CUDA cannot be used: cuInit failed: CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is detected")
	assert.ErrorIs(t, err, cuda.ErrNoDevice)
	assert.Empty(t, buf.String(), "nothing chosen, nothing logged")
}

// TestProbeRealGPU runs where a GPU is present (QINFER_REQUIRE_GPU=1
// makes its absence a failure): auto must pick it through the real loader.
func TestProbeRealGPU(t *testing.T) {
	p := ProbeDevices(ProbeOptions{})
	if len(p.GPUs) == 0 {
		testenv.NoGPU(t, p.CUDAUnavailable)
	}
	t.Log("\n" + p.Text())
	require.Equal(t, "cuda", p.Auto.Backend, p.Auto.Reason)
	require.NotNil(t, p.Auto.GPU)
	assert.True(t, p.Auto.GPU.Usable)
	assert.Positive(t, p.Auto.GPU.SMs)
	assert.Positive(t, p.Auto.GPU.MemoryBytes)
	assert.NotEmpty(t, p.DriverVersion)
	c, err := Choose("cuda", p)
	require.NoError(t, err)
	assert.Equal(t, p.Auto.GPU, c.GPU)
}

// logLines returns a logger writing to a buffer and a function returning
// the lines written so far.
func logLines() (*slog.Logger, func() []string) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	return log, func() []string {
		s := strings.TrimSpace(buf.String())
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
}

func TestOpenBackendForcedCPU(t *testing.T) {
	fake := cudatest.New(cudatest.H100())
	log, lines := logLines()
	be, choice, err := OpenBackend("cpu", 2, ProbeOptions{Driver: fake}, log)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, be.Close()) })
	assert.Equal(t, "cpu", be.Info().Backend)
	assert.Equal(t, 2, be.Info().Threads)
	assert.Equal(t, Choice{Backend: "cpu", Reason: "requested with --device cpu"}, choice)
	assert.Zero(t, fake.Calls("cuInit"), "--device cpu does not touch the driver")
	l := lines()
	require.Len(t, l, 1)
	assert.Contains(t, l[0], `msg=backend device=cpu reason="requested with --device cpu"`)
}

func TestOpenBackendAutoFallsBackForMissingLibrary(t *testing.T) {
	log, lines := logLines()
	be, choice, err := OpenBackend("auto", 1, ProbeOptions{Lib: missingLib}, log)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, be.Close()) })
	assert.Equal(t, "cpu", be.Info().Backend)
	assert.Equal(t, "cpu", choice.Backend)
	assert.Contains(t, choice.Reason, "no CUDA driver library")
	l := lines()
	require.Len(t, l, 1)
	assert.Contains(t, l[0], "msg=backend device=cpu")
	assert.Contains(t, l[0], missingLib)
}

func TestOpenBackendCUDAWithoutGPUIsError(t *testing.T) {
	log, lines := logLines()
	be, _, err := OpenBackend("cuda", 1, ProbeOptions{Lib: missingLib}, log)
	assert.Nil(t, be)
	assert.ErrorIs(t, err, ErrCUDAUnavailable)
	assert.Contains(t, err.Error(), "--device cuda: CUDA cannot be used: no CUDA driver library")
	assert.Empty(t, lines())

	_, _, err = OpenBackend("gpu", 1, ProbeOptions{Lib: missingLib}, log)
	assert.EqualError(t, err, `unknown device "gpu": valid devices are auto, cpu, cuda`)
}

// stubBackend stands in for the CUDA backend.
type stubBackend struct {
	backend.Backend
	name string
}

func (s stubBackend) Info() backend.DeviceInfo {
	return backend.DeviceInfo{Backend: "cuda", Name: s.name}
}

func TestOpenBackendCUDA(t *testing.T) {
	fake := cudatest.New(cudatest.GTX980(), cudatest.H100())
	var gotOrdinal int
	var gotDrv cuda.Driver
	orig := cudaBackend
	t.Cleanup(func() { cudaBackend = orig })
	cudaBackend = func(ordinal int, drv cuda.Driver) (backend.Backend, error) {
		gotOrdinal, gotDrv = ordinal, drv
		return stubBackend{name: "NVIDIA H100 80GB HBM3"}, nil
	}
	for _, dev := range []string{"auto", "cuda"} {
		log, lines := logLines()
		be, choice, err := OpenBackend(dev, 1, ProbeOptions{Driver: fake}, log)
		require.NoError(t, err, dev)
		assert.Equal(t, "cuda", be.Info().Backend)
		assert.Equal(t, "cuda", choice.Backend)
		assert.Equal(t, 1, gotOrdinal, "the first usable GPU, not the first GPU")
		assert.Same(t, fake, gotDrv)
		l := lines()
		require.Len(t, l, 1)
		assert.Contains(t, l[0], "msg=backend device=cuda")
		assert.Contains(t, l[0], "compute capability 9.0 >= 6.1")
	}
}

func TestOpenBackendCUDAFailure(t *testing.T) {
	fake := cudatest.New(cudatest.H100())
	orig := cudaBackend
	t.Cleanup(func() { cudaBackend = orig })
	boom := errors.New("kernels: ptx for sm_90 failed to load")
	cudaBackend = func(int, cuda.Driver) (backend.Backend, error) { return nil, boom }

	// auto falls back to the CPU, saying why.
	log, lines := logLines()
	be, choice, err := OpenBackend("auto", 1, ProbeOptions{Driver: fake}, log)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, be.Close()) })
	assert.Equal(t, "cpu", be.Info().Backend)
	assert.Equal(t, Choice{Backend: "cpu", Reason: "CUDA backend failed on GPU 0 (NVIDIA H100 80GB HBM3): " + boom.Error()}, choice)
	require.Len(t, lines(), 1)

	// cuda does not.
	forced, _, err := OpenBackend("cuda", 1, ProbeOptions{Driver: fake}, log)
	assert.Nil(t, forced)
	assert.ErrorIs(t, err, boom)
	assert.EqualError(t, err, "--device cuda: GPU 0 (NVIDIA H100 80GB HBM3): "+boom.Error())
}
