//go:build linux && (amd64 || arm64)

package cuda

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadMissingLibrary(t *testing.T) {
	const lib = "libqinfer-no-such-cuda.so.1"
	drv, err := Load(lib)
	require.Error(t, err)
	assert.Nil(t, drv)
	assert.ErrorIs(t, err, ErrNoDriver)
	var le *LoadError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, lib, le.Lib)
	assert.Empty(t, le.Symbol)
	// The dynamic loader's own words say why.
	assert.Contains(t, err.Error(), "cannot load driver library "+lib)
	assert.Contains(t, err.Error(), "No such file")
}

func TestLoadLibraryWithoutDriverSymbols(t *testing.T) {
	_, err := Load("libc.so.6")
	var le *LoadError
	require.ErrorAs(t, err, &le)
	if le.Symbol == "" {
		t.Skipf("libc.so.6 not loadable here: %v", err)
	}
	assert.Equal(t, "cuInit", le.Symbol, "the first required symbol is reported")
	assert.ErrorIs(t, err, ErrNoDriver)
	assert.Contains(t, err.Error(), "lacks required symbol cuInit")
}

// realDriver loads the installed driver library or skips.
func realDriver(t *testing.T) Driver {
	t.Helper()
	drv, err := Load("")
	if err != nil {
		t.Skipf("no CUDA driver library on this machine: %v", err)
	}
	return drv
}

func TestRealDriverBeforeInit(t *testing.T) {
	drv := realDriver(t)
	assert.Equal(t, "purego", drv.Binding())
	assert.Equal(t, DefaultLib, drv.Library())
	v, err := drv.DriverGetVersion()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, v, 10000, "driver reports CUDA %s", FormatVersion(v))

	name, err := drv.GetErrorName(CodeOutOfMemory)
	require.NoError(t, err)
	assert.Equal(t, "CUDA_ERROR_OUT_OF_MEMORY", name)
	desc, err := drv.GetErrorString(CodeOutOfMemory)
	require.NoError(t, err)
	assert.Equal(t, "out of memory", desc)

	// An unknown code is the driver's CUDA_ERROR_INVALID_VALUE.
	_, err = drv.GetErrorName(123456)
	assert.ErrorIs(t, err, &Error{Code: CodeInvalidValue})
}

// TestRealDriverInitWithoutGPU runs where the driver library is installed
// without a GPU (Debian's libcuda1 on the CI machine): cuInit must fail
// with CUDA_ERROR_NO_DEVICE, reported in the driver's words.
func TestRealDriverInitWithoutGPU(t *testing.T) {
	drv := realDriver(t)
	err := drv.Init()
	if err == nil {
		t.Skip("cuInit succeeded: this machine has a GPU")
	}
	var ce *Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, CodeNoDevice, ce.Code, "cuInit without a GPU: %v", err)
	assert.ErrorIs(t, err, ErrNoDevice)
	assert.Equal(t, "cuInit: CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is detected", err.Error())

	// After a failed cuInit every device call is refused.
	_, err = drv.DeviceGetCount()
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, CodeNotInitialized, ce.Code)
	assert.Equal(t, "cuDeviceGetCount: CUDA_ERROR_NOT_INITIALIZED (3): initialization error", err.Error())
}

func TestRealDriverRejectsNegativeSizes(t *testing.T) {
	drv := realDriver(t)
	_, err := drv.MemAlloc(-1)
	assert.ErrorIs(t, err, &Error{Code: CodeInvalidValue})
	assert.ErrorContains(t, drv.MemcpyDtoD(0, 0, -8), "cuMemcpyDtoD_v2")
}

func TestResultTableMatchesDriver(t *testing.T) {
	drv := realDriver(t)
	for code, want := range resultNames {
		name, err := drv.GetErrorName(code)
		if !assert.NoError(t, err, "code %d (%s)", code, want.name) {
			continue
		}
		// Names are the enum's and never change; descriptions may be
		// reworded by newer drivers, whose words win at run time anyway.
		assert.Equal(t, want.name, name, "code %d", code)
	}
}

func TestOptionalSymbolMissing(t *testing.T) {
	d := &pureDriver{lib: "libcuda.so.1"} // nothing resolved
	_, err := d.GraphInstantiate(1)
	assert.ErrorIs(t, err, ErrUnsupported)
	assert.Contains(t, err.Error(), "cuGraphInstantiateWithFlags")
	assert.False(t, errors.Is(err, ErrNoDriver))
}
