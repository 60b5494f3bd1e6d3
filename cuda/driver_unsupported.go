//go:build !(linux && (amd64 || arm64))

package cuda

import (
	"fmt"
	"runtime"
)

// Load fails on platforms without an NVIDIA Linux driver (or where the
// purego loader is not wired up), so the package still builds there and
// callers fall back to the CPU.
func Load(lib string) (Driver, error) {
	if lib == "" {
		lib = DefaultLib
	}
	return nil, &LoadError{Lib: lib, Err: fmt.Errorf("CUDA is not supported on %s/%s", runtime.GOOS, runtime.GOARCH)}
}
