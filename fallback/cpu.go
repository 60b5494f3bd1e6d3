package fallback

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"qinfer/fallback/kernels"
	"qinfer/fallback/rowkernels"
	"qinfer/host/backend"
)

// CPU is the CPU implementation of backend.Backend. Ops run synchronously
// on the calling goroutine plus the worker pool; a mutex serializes them,
// since they share scratch buffers.
type CPU struct {
	mu     sync.Mutex
	pool   *kernels.Pool
	name   string
	closed bool

	// actq holds activations quantized for a MatMul; it grows to the
	// largest call seen and is reused.
	actq []byte
	// rowActs holds activations quantized per token for row-format
	// weights, reused the same way.
	rowActs rowkernels.Acts

	// normW holds an RMSNorm weight as float32.
	normW []float32

	ew   ewState
	attn attnState
	rope ropeState
	prof profiler
}

var _ backend.Backend = (*CPU)(nil)

// maxThreads bounds the worker count: more goroutines than any host has
// cores only cost memory and scheduling.
const maxThreads = 4096

// New returns a CPU backend with threads workers (<= 0: GOMAXPROCS).
func New(threads int) (*CPU, error) {
	if threads > maxThreads {
		return nil, fmt.Errorf("cpu backend: %d threads, at most %d", threads, maxThreads)
	}
	c := &CPU{pool: kernels.NewPool(threads), name: cpuModelName()}
	c.ew.init()
	c.attn.init()
	c.rope.init()
	return c, nil
}

func (c *CPU) Info() backend.DeviceInfo {
	return backend.DeviceInfo{Backend: "cpu", Name: c.name, Threads: c.pool.Threads()}
}

// Synchronize returns at once: every op has finished when it returns.
func (c *CPU) Synchronize() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	return nil
}

// Close stops the worker pool; later ops return an error.
func (c *CPU) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	c.closed = true
	c.pool.Close()
	c.actq = nil
	return nil
}

var errClosed = errors.New("cpu backend: closed")

// begin locks the backend for one op and starts its clock when profiling
// is on. The op must call end, usually deferred.
func (c *CPU) begin(op opID) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", opNames[op], errClosed)
	}
	if c.prof.on {
		c.prof.start(op)
	}
	return nil
}

// end unlocks the backend, recording st when profiling is on and the op
// succeeded (st.ok).
func (c *CPU) end(st *opStats) {
	if c.prof.on && c.prof.running {
		c.prof.stop(st)
	}
	c.mu.Unlock()
}

// cpuModelName reads the "model name" of /proc/cpuinfo on Linux; elsewhere,
// or when the file lacks it (Linux on arm64), the architecture stands in.
func cpuModelName() string {
	if runtime.GOOS == "linux" {
		if f, err := os.Open("/proc/cpuinfo"); err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				k, v, ok := strings.Cut(sc.Text(), ":")
				if ok && strings.TrimSpace(k) == "model name" {
					if v = strings.TrimSpace(v); v != "" {
						return v
					}
				}
			}
		}
	}
	return runtime.GOARCH
}
