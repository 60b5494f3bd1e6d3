package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// MinComputeMajor and MinComputeMinor are the oldest compute capability
// qinfer runs on: 6.1 is the first with dp4a, which the int8 kernels use.
const (
	MinComputeMajor = 6
	MinComputeMinor = 1
)

// Properties describes a device as the driver reports it. Fields whose
// attribute the driver does not report are zero.
type Properties struct {
	Ordinal        int
	Name           string
	Major, Minor   int   // compute capability
	SMs            int   // multiprocessors
	TotalMem       int64 // bytes
	ClockKHz       int
	MemClockKHz    int
	BusWidthBits   int
	L2Bytes        int
	MaxThreads     int // per block
	SharedPerBlock int // bytes, default limit
	SharedOptin    int // bytes, opt-in limit per block
	WarpSize       int
}

// ComputeCapability returns "major.minor".
func (p Properties) ComputeCapability() string { return fmt.Sprintf("%d.%d", p.Major, p.Minor) }

// Supported reports whether qinfer's kernels can run on the device, and
// if not, why.
func (p Properties) Supported() (bool, string) {
	if p.Major < MinComputeMajor || (p.Major == MinComputeMajor && p.Minor < MinComputeMinor) {
		return false, fmt.Sprintf("compute capability %d.%d < %d.%d", p.Major, p.Minor, MinComputeMajor, MinComputeMinor)
	}
	return true, ""
}

// PeakGBs is the nominal memory bandwidth in GB/s: two transfers per
// memory clock (DDR; HBM and GDDR report their clocks to match) times the
// bus width. Zero when the driver does not report clock or width (newer
// drivers may drop the memory clock attribute).
func (p Properties) PeakGBs() float64 {
	return 2 * float64(p.MemClockKHz) * 1e3 * float64(p.BusWidthBits) / 8 / 1e9
}

// DeviceProperties queries device ordinal. It needs an initialised driver
// but no context. The compute capability and SM count are required; the
// other attributes are informational and left zero when unavailable.
func DeviceProperties(drv Driver, ordinal int) (Properties, error) {
	p := Properties{Ordinal: ordinal}
	dev, err := drv.DeviceGet(ordinal)
	if err != nil {
		return p, fmt.Errorf("cuda: device %d: %w", ordinal, err)
	}
	if p.Name, err = drv.DeviceGetName(dev); err != nil {
		return p, fmt.Errorf("cuda: device %d name: %w", ordinal, err)
	}
	if p.TotalMem, err = drv.DeviceTotalMem(dev); err != nil {
		return p, fmt.Errorf("cuda: device %d (%s) memory: %w", ordinal, p.Name, err)
	}
	required := []struct {
		attr DeviceAttribute
		name string
		dst  *int
	}{
		{AttrComputeCapabilityMajor, "compute capability major", &p.Major},
		{AttrComputeCapabilityMinor, "compute capability minor", &p.Minor},
		{AttrMultiprocessorCount, "multiprocessor count", &p.SMs},
	}
	for _, a := range required {
		if *a.dst, err = drv.DeviceGetAttribute(a.attr, dev); err != nil {
			return p, fmt.Errorf("cuda: device %d (%s) %s: %w", ordinal, p.Name, a.name, err)
		}
	}
	optional := []struct {
		attr DeviceAttribute
		dst  *int
	}{
		{AttrClockRate, &p.ClockKHz},
		{AttrMemoryClockRate, &p.MemClockKHz},
		{AttrGlobalMemoryBusWidth, &p.BusWidthBits},
		{AttrL2CacheSize, &p.L2Bytes},
		{AttrMaxThreadsPerBlock, &p.MaxThreads},
		{AttrMaxSharedMemoryPerBlock, &p.SharedPerBlock},
		{AttrMaxSharedMemoryPerBlockOptin, &p.SharedOptin},
		{AttrWarpSize, &p.WarpSize},
	}
	for _, a := range optional {
		if v, err := drv.DeviceGetAttribute(a.attr, dev); err == nil {
			*a.dst = v
		}
	}
	return p, nil
}

// Device is one GPU with a context that lives on a dedicated goroutine
// locked to its OS thread. A CUDA context is current per OS thread, and a
// goroutine that migrates between threads sees CUDA_ERROR_INVALID_CONTEXT
// (DESIGN.md decision 3), so every driver call that needs the context goes
// through Do.
type Device struct {
	drv   Driver
	props Properties
	ctx   Context

	work chan func()
	done chan struct{}

	// mu orders Do against Close: Do holds it shared while its function
	// is queued or running, Close exclusively.
	mu     sync.RWMutex
	closed bool
}

// Open initialises the driver, creates a context on device ordinal on a
// new goroutine locked to its OS thread, and returns once the context is
// current there.
func Open(drv Driver, ordinal int) (*Device, error) {
	if err := drv.Init(); err != nil {
		return nil, fmt.Errorf("cuda: open device %d: %w", ordinal, err)
	}
	props, err := DeviceProperties(drv, ordinal)
	if err != nil {
		return nil, err
	}
	d := &Device{drv: drv, props: props, work: make(chan func()), done: make(chan struct{})}
	ready := make(chan error, 1)
	go d.loop(ordinal, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Device) loop(ordinal int, ready chan<- error) {
	// Never unlocked: when this goroutine ends the runtime retires its
	// thread, so no other goroutine inherits the thread's CUDA state.
	runtime.LockOSThread()
	defer close(d.done)
	dev, err := d.drv.DeviceGet(ordinal)
	if err != nil {
		ready <- fmt.Errorf("cuda: device %d: %w", ordinal, err)
		return
	}
	ctx, err := d.drv.CtxCreate(CtxSchedAuto, dev)
	if err != nil {
		ready <- fmt.Errorf("cuda: create context on device %d (%s): %w", ordinal, d.props.Name, err)
		return
	}
	d.ctx = ctx
	ready <- nil
	for fn := range d.work {
		fn()
	}
}

// Do runs fn on the device thread, where the context is current, and
// returns its error. Calls are serialised. fn must not call Do or Close
// (either would wait for itself). A panic in fn is returned as an error, so the device
// thread survives it.
func (d *Device) Do(fn func() error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrClosed
	}
	res := make(chan error, 1)
	d.work <- func() {
		defer func() {
			if r := recover(); r != nil {
				res <- fmt.Errorf("cuda: device %d: panic on the device thread: %v\n%s", d.props.Ordinal, r, debug.Stack())
			}
		}()
		res <- fn()
	}
	return <-res
}

// Close synchronises and destroys the context and ends the device
// goroutine. Do after Close returns ErrClosed; a second Close does
// nothing.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var syncErr, destroyErr error
	fin := make(chan struct{})
	d.work <- func() {
		defer close(fin)
		// A sticky error (a faulted kernel) fails the synchronize; the
		// context must be destroyed all the same.
		if e := d.drv.CtxSynchronize(); e != nil {
			syncErr = fmt.Errorf("cuda: device %d: synchronize before close: %w", d.props.Ordinal, e)
		}
		if e := d.drv.CtxDestroy(d.ctx); e != nil {
			destroyErr = fmt.Errorf("cuda: device %d: destroy context: %w", d.props.Ordinal, e)
		}
	}
	<-fin
	close(d.work)
	<-d.done
	return errors.Join(syncErr, destroyErr)
}

// Driver returns the binding the device uses.
func (d *Device) Driver() Driver { return d.drv }

// Context returns the device's context, current on the device thread.
func (d *Device) Context() Context { return d.ctx }

// Properties returns what the driver reported when the device was opened.
func (d *Device) Properties() Properties { return d.props }

// MemInfo returns free and total device memory in bytes.
func (d *Device) MemInfo() (free, total int64, err error) {
	err = d.Do(func() error {
		var e error
		free, total, e = d.drv.MemGetInfo()
		return e
	})
	return free, total, err
}
