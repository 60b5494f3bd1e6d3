package cuda

import (
	"errors"

	"qinfer/host/backend"
)

// NewBackend opens the CUDA backend on device ordinal through drv.
//
// This stub stands in until the GPU backend lands (cuda/backend.go, which
// replaces this file), so that host/engine's selection compiles and auto
// falls back to the CPU with this reason.
func NewBackend(ordinal int, drv Driver) (backend.Backend, error) {
	return nil, errors.New("CUDA backend: not built yet")
}
