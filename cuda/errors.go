package cuda

import (
	"errors"
	"fmt"
)

// CUresult codes that callers act on. The full set the driver knows is in
// resultNames (errors_table.go).
const (
	CodeSuccess                  = 0
	CodeInvalidValue             = 1
	CodeOutOfMemory              = 2
	CodeNotInitialized           = 3
	CodeStubLibrary              = 34
	CodeNoDevice                 = 100
	CodeInvalidDevice            = 101
	CodeInvalidImage             = 200
	CodeInvalidContext           = 201
	CodeInvalidPTX               = 218
	CodeUnsupportedPTXVersion    = 222
	CodeInvalidHandle            = 400
	CodeIllegalState             = 401
	CodeNotFound                 = 500
	CodeNotReady                 = 600
	CodeIllegalAddress           = 700
	CodeLaunchFailed             = 719
	CodeNotSupported             = 801
	CodeStreamCaptureUnsupported = 900
	CodeStreamCaptureInvalidated = 901
	CodeUnknown                  = 999
)

// Sentinels for errors.Is. A *Error matches the one its code stands for,
// so callers can branch on conditions without knowing the binding.
var (
	ErrOutOfMemory    = errors.New("cuda: out of memory")
	ErrNoDevice       = errors.New("cuda: no CUDA-capable device")
	ErrInvalidContext = errors.New("cuda: no valid context current on this thread")
	// ErrNoDriver matches every failure to load the driver library,
	// including platforms where CUDA does not exist.
	ErrNoDriver = errors.New("cuda: driver library not available")
	// ErrUnsupported matches calls that the compiled-in binding or the
	// installed driver cannot perform.
	ErrUnsupported = errors.New("not supported")
	// ErrClosed is returned by a Device after Close.
	ErrClosed = errors.New("cuda: device closed")
)

// Error is a failed driver call: the symbol called and the CUresult it
// returned, with the driver's name and description of that result.
type Error struct {
	Call string // driver symbol, e.g. "cuMemAlloc_v2"
	Code int    // CUresult
	Name string // e.g. "CUDA_ERROR_OUT_OF_MEMORY"
	Desc string // e.g. "out of memory"
}

func (e *Error) Error() string {
	if e.Desc == "" {
		return fmt.Sprintf("%s: %s (%d)", e.Call, e.Name, e.Code)
	}
	return fmt.Sprintf("%s: %s (%d): %s", e.Call, e.Name, e.Code, e.Desc)
}

// Is lets errors.Is match the package sentinels, and another *Error with
// the same code (whatever its Call), so that
// errors.Is(err, &cuda.Error{Code: cuda.CodeNotReady}) works.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrOutOfMemory:
		return e.Code == CodeOutOfMemory
	case ErrNoDevice:
		return e.Code == CodeNoDevice
	case ErrInvalidContext:
		return e.Code == CodeInvalidContext
	}
	if t, ok := target.(*Error); ok {
		return t.Code == e.Code
	}
	return false
}

// ResultName returns the CUresult enumerator name of code as the driver
// reports it, or "CUDA_ERROR_<code>" for codes this package does not know.
func ResultName(code int) string {
	if r, ok := resultNames[code]; ok {
		return r.name
	}
	return fmt.Sprintf("CUDA_ERROR_%d", code)
}

// ResultString returns the driver's description of code, or "" when
// unknown.
func ResultString(code int) string {
	return resultNames[code].desc
}

// NewError builds the *Error for a non-zero CUresult from this package's
// table of names. Bindings that can ask the driver (cuGetErrorName) use
// its answer instead, which also covers codes newer than the table.
func NewError(call string, code int) *Error {
	return &Error{Call: call, Code: code, Name: ResultName(code), Desc: ResultString(code)}
}

// LoadError reports that the driver library could not be loaded, or lacks
// a symbol this package requires.
type LoadError struct {
	Lib    string // library name or path given to Load
	Symbol string // missing required symbol, "" when the library itself failed
	Err    error  // the dynamic loader's message, or the platform restriction
}

func (e *LoadError) Error() string {
	if e.Symbol != "" {
		return fmt.Sprintf("cuda: driver library %s lacks required symbol %s: %v", e.Lib, e.Symbol, e.Err)
	}
	return fmt.Sprintf("cuda: cannot load driver library %s: %v", e.Lib, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// Is makes every load failure match ErrNoDriver: for the caller choosing a
// backend, a library without the needed symbols is as unusable as none.
func (e *LoadError) Is(target error) bool { return target == ErrNoDriver }

// unsupported is the error of a call the binding or driver cannot make.
func unsupported(call, by string) error {
	return fmt.Errorf("cuda: %s is %w by %s", call, ErrUnsupported, by)
}
