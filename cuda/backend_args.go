package cuda

import (
	"fmt"
	"math"
	"unsafe"

	"qinfer/kernels"
)

// maxArgs bounds a kernel's parameter list.
const maxArgs = 16

// args marshals one launch's kernel arguments: each in its own 8-byte
// slot (pointers and ints as 64-bit values, a float in the slot's first 4
// bytes), with params pointing at the slots as cuLaunchKernel takes them.
// 8-byte slots suit both bindings: the driver reads each parameter's own
// size, and the gorgonia binding copies 8 bytes per parameter. The kinds
// are recorded so a launch can be checked against the kernel table.
type args struct {
	slots  [maxArgs]uint64
	params [maxArgs]unsafe.Pointer
	kinds  [maxArgs]kernels.Param
	n      int
	err    error
}

func (a *args) reset() *args {
	a.n, a.err = 0, nil
	return a
}

func (a *args) push(kind kernels.Param, v uint64) *args {
	if a.n == maxArgs {
		a.err = fmt.Errorf("more than %d kernel arguments", maxArgs)
		return a
	}
	a.slots[a.n] = v
	a.params[a.n] = unsafe.Pointer(&a.slots[a.n])
	a.kinds[a.n] = kind
	a.n++
	return a
}

// ptr appends a device pointer.
func (a *args) ptr(p DevicePtr) *args { return a.push(kernels.Ptr, uint64(p)) }

// i64 appends a long long.
func (a *args) i64(v int) *args { return a.push(kernels.Int, uint64(int64(v))) }

// f32 appends a float.
func (a *args) f32(v float32) *args { return a.push(kernels.Float, uint64(math.Float32bits(v))) }

// check verifies the arguments against k's parameter list.
func (a *args) check(k *kernels.Kernel) error {
	if a.err != nil {
		return fmt.Errorf("kernel %s: %w", k.Name, a.err)
	}
	if a.n != len(k.Params) {
		return fmt.Errorf("kernel %s: %d arguments for %d parameters", k.Name, a.n, len(k.Params))
	}
	for i, p := range k.Params {
		if a.kinds[i] != p {
			return fmt.Errorf("kernel %s: argument %d is %c, the parameter is %c", k.Name, i, a.kinds[i], p)
		}
	}
	return nil
}

// cdiv returns ceil(n/d), at least 1, as a grid dimension.
func cdiv(n, d int) uint32 {
	if n <= 0 {
		return 1
	}
	return uint32((n + d - 1) / d)
}

// maxGridYZ is the largest grid dimension y or z.
const maxGridYZ = 65535

// launch enqueues kernel k with b.args on the stream (device thread).
func (b *Backend) launch(k *kernels.Kernel, grid Dim3) error {
	if err := b.args.check(k); err != nil {
		return err
	}
	if grid.X == 0 || grid.Y == 0 || grid.Z == 0 || grid.Y > maxGridYZ || grid.Z > maxGridYZ {
		return fmt.Errorf("kernel %s: grid %dx%dx%d outside the device's limits", k.Name, grid.X, grid.Y, grid.Z)
	}
	f, ok := b.fns[k]
	if !ok {
		return fmt.Errorf("kernel %s: not loaded", k.Name)
	}
	block := Dim3{X: uint32(k.Threads), Y: 1, Z: 1}
	if err := b.drv.LaunchKernel(f, grid, block, 0, b.stream, b.args.params[:b.args.n]); err != nil {
		return fmt.Errorf("launch %s: %w", k.Name, err)
	}
	return nil
}

// ptrOf is the address of host memory passed to a copy.
func ptrOf[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
