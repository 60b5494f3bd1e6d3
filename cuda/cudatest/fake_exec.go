package cudatest

import (
	"fmt"
	"time"
	"unsafe"

	"qinfer/cuda"
)

func (d *Driver) ModuleLoadData(image []byte) (cuda.Module, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuModuleLoadData", true); e != nil {
		return 0, e
	}
	if len(image) == 0 {
		return 0, cuda.NewError("cuModuleLoadData", cuda.CodeInvalidImage)
	}
	if d.modules == nil {
		d.modules = map[cuda.Module]bool{}
		d.funcs = map[cuda.Function]string{}
	}
	m := cuda.Module(d.id())
	d.modules[m] = true
	return m, nil
}

func (d *Driver) ModuleUnload(m cuda.Module) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuModuleUnload", true); e != nil {
		return e
	}
	if !d.modules[m] {
		return cuda.NewError("cuModuleUnload", cuda.CodeInvalidHandle)
	}
	delete(d.modules, m)
	return nil
}

func (d *Driver) ModuleGetFunction(m cuda.Module, name string) (cuda.Function, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	call := "cuModuleGetFunction(" + name + ")"
	if e := d.enter("cuModuleGetFunction", true); e != nil {
		e.Call = call
		return 0, e
	}
	if !d.modules[m] {
		return 0, cuda.NewError(call, cuda.CodeInvalidHandle)
	}
	if _, ok := d.Kernels[name]; !ok {
		return 0, cuda.NewError(call, cuda.CodeNotFound)
	}
	f := cuda.Function(d.id())
	d.funcs[f] = name
	return f, nil
}

func (d *Driver) LaunchKernel(f cuda.Function, grid, block cuda.Dim3, sharedMem uint32, s cuda.Stream, params []unsafe.Pointer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuLaunchKernel", true); e != nil {
		return e
	}
	name, ok := d.funcs[f]
	if !ok {
		return cuda.NewError("cuLaunchKernel", cuda.CodeInvalidHandle)
	}
	threads := uint64(block.X) * uint64(block.Y) * uint64(block.Z)
	if uint64(grid.X)*uint64(grid.Y)*uint64(grid.Z) == 0 || threads == 0 || threads > 1024 {
		return cuda.NewError("cuLaunchKernel", cuda.CodeInvalidValue)
	}
	// A replayed graph must see the values at capture time, as the driver
	// copies kernel arguments when it records the launch.
	args := make([]unsafe.Pointer, len(params))
	for i, p := range params {
		if p == nil {
			return cuda.NewError("cuLaunchKernel", cuda.CodeInvalidValue)
		}
		v := *(*uint64)(p)
		args[i] = unsafe.Pointer(&v)
	}
	k := d.Kernels[name]
	return d.run("cuLaunchKernel", s, func() error {
		// Kernels read memory through d.Bytes, which takes the lock.
		d.mu.Unlock()
		defer d.mu.Lock()
		if err := k(d, grid, block, args); err != nil {
			return fmt.Errorf("cuLaunchKernel(%s): %w", name, err)
		}
		return nil
	})
}

func (d *Driver) StreamCreate(flags cuda.StreamFlags) (cuda.Stream, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuStreamCreate", true); e != nil {
		return 0, e
	}
	if d.streams == nil {
		d.streams = map[cuda.Stream]*stream{}
	}
	s := cuda.Stream(d.id())
	d.streams[s] = &stream{}
	return s, nil
}

func (d *Driver) StreamDestroy(s cuda.Stream) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuStreamDestroy_v2", true); e != nil {
		return e
	}
	if _, ok := d.streams[s]; !ok {
		return cuda.NewError("cuStreamDestroy_v2", cuda.CodeInvalidHandle)
	}
	delete(d.streams, s)
	return nil
}

func (d *Driver) StreamSynchronize(s cuda.Stream) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuStreamSynchronize", true); e != nil {
		return e
	}
	st, err := d.stream("cuStreamSynchronize", s)
	if err != nil {
		return err
	}
	if st != nil && st.capturing {
		return cuda.NewError("cuStreamSynchronize", cuda.CodeStreamCaptureUnsupported)
	}
	return nil
}

func (d *Driver) EventCreate(flags cuda.EventFlags) (cuda.Event, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuEventCreate", true); e != nil {
		return 0, e
	}
	if d.events == nil {
		d.events = map[cuda.Event]time.Time{}
	}
	e := cuda.Event(d.id())
	d.events[e] = time.Time{}
	return e, nil
}

func (d *Driver) EventRecord(e cuda.Event, s cuda.Stream) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter("cuEventRecord", true); err != nil {
		return err
	}
	if _, ok := d.events[e]; !ok {
		return cuda.NewError("cuEventRecord", cuda.CodeInvalidHandle)
	}
	return d.run("cuEventRecord", s, func() error {
		d.events[e] = time.Now()
		return nil
	})
}

func (d *Driver) EventSynchronize(e cuda.Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter("cuEventSynchronize", true); err != nil {
		return err
	}
	if _, ok := d.events[e]; !ok {
		return cuda.NewError("cuEventSynchronize", cuda.CodeInvalidHandle)
	}
	return nil
}

func (d *Driver) EventElapsedTime(start, end cuda.Event) (float32, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter("cuEventElapsedTime", true); err != nil {
		return 0, err
	}
	t0, ok0 := d.events[start]
	t1, ok1 := d.events[end]
	if !ok0 || !ok1 {
		return 0, cuda.NewError("cuEventElapsedTime", cuda.CodeInvalidHandle)
	}
	if t0.IsZero() || t1.IsZero() {
		return 0, cuda.NewError("cuEventElapsedTime", cuda.CodeNotReady)
	}
	return float32(t1.Sub(t0).Seconds() * 1e3), nil
}

func (d *Driver) EventDestroy(e cuda.Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter("cuEventDestroy_v2", true); err != nil {
		return err
	}
	if _, ok := d.events[e]; !ok {
		return cuda.NewError("cuEventDestroy_v2", cuda.CodeInvalidHandle)
	}
	delete(d.events, e)
	return nil
}

func (d *Driver) StreamBeginCapture(s cuda.Stream, mode cuda.CaptureMode) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuStreamBeginCapture_v2", true); e != nil {
		return e
	}
	st, err := d.stream("cuStreamBeginCapture_v2", s)
	if err != nil {
		return err
	}
	// The legacy default stream cannot be captured.
	if st == nil {
		return cuda.NewError("cuStreamBeginCapture_v2", cuda.CodeStreamCaptureUnsupported)
	}
	if st.capturing {
		return cuda.NewError("cuStreamBeginCapture_v2", cuda.CodeInvalidValue)
	}
	st.capturing, st.ops = true, nil
	return nil
}

func (d *Driver) StreamEndCapture(s cuda.Stream) (cuda.Graph, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuStreamEndCapture", true); e != nil {
		return 0, e
	}
	st, err := d.stream("cuStreamEndCapture", s)
	if err != nil {
		return 0, err
	}
	if st == nil || !st.capturing {
		return 0, cuda.NewError("cuStreamEndCapture", cuda.CodeIllegalState)
	}
	if d.graphs == nil {
		d.graphs = map[cuda.Graph][]func() error{}
	}
	g := cuda.Graph(d.id())
	d.graphs[g] = st.ops
	st.capturing, st.ops = false, nil
	return g, nil
}

func (d *Driver) GraphInstantiate(g cuda.Graph) (cuda.GraphExec, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuGraphInstantiateWithFlags", true); e != nil {
		return 0, e
	}
	ops, ok := d.graphs[g]
	if !ok {
		return 0, cuda.NewError("cuGraphInstantiateWithFlags", cuda.CodeInvalidHandle)
	}
	if d.execs == nil {
		d.execs = map[cuda.GraphExec][]func() error{}
	}
	x := cuda.GraphExec(d.id())
	d.execs[x] = ops
	return x, nil
}

func (d *Driver) GraphLaunch(x cuda.GraphExec, s cuda.Stream) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuGraphLaunch", true); e != nil {
		return e
	}
	ops, ok := d.execs[x]
	if !ok {
		return cuda.NewError("cuGraphLaunch", cuda.CodeInvalidHandle)
	}
	return d.run("cuGraphLaunch", s, func() error {
		for _, op := range ops {
			if err := op(); err != nil {
				return err
			}
		}
		return nil
	})
}

func (d *Driver) GraphDestroy(g cuda.Graph) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuGraphDestroy", true); e != nil {
		return e
	}
	if _, ok := d.graphs[g]; !ok {
		return cuda.NewError("cuGraphDestroy", cuda.CodeInvalidHandle)
	}
	delete(d.graphs, g)
	return nil
}

func (d *Driver) GraphExecDestroy(x cuda.GraphExec) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.enter("cuGraphExecDestroy", true); e != nil {
		return e
	}
	if _, ok := d.execs[x]; !ok {
		return cuda.NewError("cuGraphExecDestroy", cuda.CodeInvalidHandle)
	}
	delete(d.execs, x)
	return nil
}
