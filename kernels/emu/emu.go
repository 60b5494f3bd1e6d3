//go:build cgo && linux && !noemu

package emu

/*
#cgo CXXFLAGS: -std=c++17 -O2 -fno-strict-aliasing -Wno-unknown-pragmas
#cgo LDFLAGS: -lstdc++
#include <stdlib.h>
#include "runtime.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"qinfer/cuda"
	"qinfer/cuda/cudatest"
	"qinfer/kernels"
)

// Available reports whether this build has the emulator.
const Available = true

// New returns a fake driver (cuda/cudatest) with one device, gpu, whose
// kernels are qinfer's, run by the emulator: the compute_80 variant
// (tensor cores) for compute capability 8.0 and later, the compute_61
// variant (dp4a) below.
func New(gpu cudatest.GPU) (*cudatest.Driver, error) {
	arch := 61
	if gpu.Major >= 8 {
		arch = 80
	}
	d := cudatest.New(gpu)
	d.Kernels = map[string]cudatest.Kernel{}
	for _, k := range kernels.All() {
		cname := C.CString(k.Name)
		var n C.int
		idx := C.qi_emu_lookup(C.int(arch), cname, &n)
		C.free(unsafe.Pointer(cname))
		if idx < 0 {
			return nil, fmt.Errorf("emu: kernel %s is not compiled into the emulator (kernels/emu/kernels.inc)", k.Name)
		}
		if int(n) != len(k.Params) {
			return nil, fmt.Errorf("emu: kernel %s takes %d parameters, the table says %d", k.Name, n, len(k.Params))
		}
		d.Kernels[k.Name] = launcher(arch, int(idx), k)
	}
	return d, nil
}

// Order is the order in which the emulator resumes a block's threads
// after a barrier.
type Order int

const (
	Forward    Order = 0 // warps advance in lock step
	Reverse    Order = 1 // the same, last thread first
	DepthFirst Order = 2 // a warp that passes a barrier runs ahead of the others
)

// SetOrder sets the scheduling order for later launches. A kernel whose
// results change with it relies on an order of threads between barriers,
// a race on a GPU.
func SetOrder(o Order) { C.qi_emu_set_order(C.int(o)) }

func launcher(arch, idx int, k *kernels.Kernel) cudatest.Kernel {
	return func(d *cudatest.Driver, grid, block cuda.Dim3, params []unsafe.Pointer) error {
		if len(params) != len(k.Params) {
			return fmt.Errorf("%s: launched with %d parameters, takes %d", k.Name, len(params), len(k.Params))
		}
		slots := make([]uint64, len(params))
		keep := make([][]byte, 0, len(params))
		for i, p := range params {
			v := *(*uint64)(p)
			slots[i] = v
			if k.Params[i] != kernels.Ptr || v == 0 {
				continue
			}
			// Device memory is host memory in the fake: the kernel gets the
			// address of the allocation's bytes from the pointer onwards.
			b, err := d.Bytes(cuda.DevicePtr(v), 1)
			if err != nil {
				return fmt.Errorf("%s parameter %d: device pointer %#x: %w", k.Name, i, v, err)
			}
			b = b[:cap(b)]
			slots[i] = uint64(uintptr(unsafe.Pointer(&b[0])))
			keep = append(keep, b)
		}
		msg := C.qi_emu_launch(C.int(arch), C.int(idx), C.uint(grid.X), C.uint(grid.Y), C.uint(grid.Z),
			C.uint(block.X), C.uint(block.Y), C.uint(block.Z), (*C.uint64_t)(unsafe.Pointer(&slots[0])))
		runtime.KeepAlive(keep)
		if msg != nil {
			return errors.New(C.GoString(msg))
		}
		return nil
	}
}
