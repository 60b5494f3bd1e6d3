package cuda

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestErrorFormat(t *testing.T) {
	e := &Error{Call: "cuMemAlloc_v2", Code: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY", Desc: "out of memory"}
	assert.Equal(t, "cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory", e.Error())
	assert.Equal(t, "cuInit: CUDA_ERROR_1234 (1234)", NewError("cuInit", 1234).Error())
	assert.Equal(t, "cuInit: CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is detected", NewError("cuInit", 100).Error())
}

func TestErrorIs(t *testing.T) {
	oom := fmt.Errorf("upload blk.0.attn_q.weight: %w", NewError("cuMemAlloc_v2", 2))
	assert.ErrorIs(t, oom, ErrOutOfMemory)
	assert.NotErrorIs(t, oom, ErrNoDevice)
	assert.ErrorIs(t, oom, &Error{Code: CodeOutOfMemory})
	assert.NotErrorIs(t, oom, &Error{Code: CodeNotReady})

	nodev := NewError("cuInit", 100)
	assert.ErrorIs(t, nodev, ErrNoDevice)
	assert.NotErrorIs(t, nodev, ErrOutOfMemory)
	assert.ErrorIs(t, NewError("cuMemAlloc_v2", 201), ErrInvalidContext)

	var ce *Error
	require.ErrorAs(t, oom, &ce)
	assert.Equal(t, "cuMemAlloc_v2", ce.Call)
}

func TestLoadErrorMatchesNoDriver(t *testing.T) {
	inner := errors.New("libcuda.so.1: cannot open shared object file: No such file or directory")
	e := &LoadError{Lib: "libcuda.so.1", Err: inner}
	assert.ErrorIs(t, e, ErrNoDriver)
	assert.ErrorIs(t, e, inner)
	assert.Equal(t, "cuda: cannot load driver library libcuda.so.1: "+inner.Error(), e.Error())

	s := &LoadError{Lib: "libc.so.6", Symbol: "cuInit", Err: errors.New("undefined symbol: cuInit")}
	assert.ErrorIs(t, s, ErrNoDriver)
	assert.Equal(t, "cuda: driver library libc.so.6 lacks required symbol cuInit: undefined symbol: cuInit", s.Error())
}

func TestUnsupportedMatches(t *testing.T) {
	err := unsupported("cuGraphLaunch", "the gorgonia binding (gorgonia.org/cu lacks it)")
	assert.ErrorIs(t, err, ErrUnsupported)
	assert.Equal(t, "cuda: cuGraphLaunch is not supported by the gorgonia binding (gorgonia.org/cu lacks it)", err.Error())
}

func TestNegativeSizeIsInvalidValue(t *testing.T) {
	err := negativeSize("cuMemAlloc_v2", -5)
	assert.ErrorIs(t, err, &Error{Code: CodeInvalidValue})
	assert.Contains(t, err.Error(), "negative size -5")
}

func TestNulTerminated(t *testing.T) {
	ptx := []byte(".version 7.8")
	got := nulTerminated(ptx)
	assert.Equal(t, append([]byte(".version 7.8"), 0), got)
	assert.Equal(t, []byte(".version 7.8"), ptx, "input must not be modified")
	term := []byte{'a', 0}
	assert.Same(t, &term[0], &nulTerminated(term)[0], "already terminated input is not copied")
}

func TestFormatVersion(t *testing.T) {
	assert.Equal(t, "12.8", FormatVersion(12080))
	assert.Equal(t, "11.4", FormatVersion(11040))
	assert.Equal(t, "13.0", FormatVersion(13000))
}

func TestSupported(t *testing.T) {
	for _, c := range []struct {
		major, minor int
		ok           bool
	}{{5, 2, false}, {6, 0, false}, {6, 1, true}, {7, 0, true}, {9, 0, true}, {3, 7, false}} {
		ok, why := Properties{Major: c.major, Minor: c.minor}.Supported()
		assert.Equal(t, c.ok, ok, "%d.%d", c.major, c.minor)
		if !c.ok {
			assert.Equal(t, fmt.Sprintf("compute capability %d.%d < 6.1", c.major, c.minor), why)
		}
	}
}

func TestPeakGBs(t *testing.T) {
	// H100 SXM: 2619 MHz HBM3 on a 5120-bit bus, 3.35 TB/s nominal.
	p := Properties{MemClockKHz: 2619000, BusWidthBits: 5120}
	assert.InDelta(t, 3352.32, p.PeakGBs(), 1e-6)
	assert.Zero(t, Properties{BusWidthBits: 5120}.PeakGBs())
}
