//go:build !(cgo && linux) || noemu

package emu

import (
	"errors"

	"qinfer/cuda/cudatest"
)

// Available reports whether this build has the emulator.
const Available = false

// New fails: the emulator needs cgo on Linux.
func New(gpu cudatest.GPU) (*cudatest.Driver, error) {
	return nil, errors.New("emu: the kernel emulator needs cgo on Linux")
}

// Order is the order in which the emulator resumes a block's threads.
type Order int

const (
	Forward    Order = 0
	Reverse    Order = 1
	DepthFirst Order = 2
)

// SetOrder does nothing without the emulator.
func SetOrder(o Order) {}
