package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"qinfer/cuda"
	"qinfer/fallback"
	"qinfer/host/backend"
)

// Devices accepted by Choose and OpenBackend (--device).
const (
	DeviceAuto = "auto"
	DeviceCPU  = "cpu"
	DeviceCUDA = "cuda"
)

// ProbeOptions says where to look for a GPU.
type ProbeOptions struct {
	// Lib is the CUDA driver library to load at run time. "" uses the
	// binary's default binding: libcuda.so.1 through purego, or the
	// link-time gorgonia binding when built with -tags gorgonia.
	Lib string
	// Driver, when set, is used instead of loading one (a cudatest fake).
	Driver cuda.Driver
}

// Probe is what this machine offers: the GPUs the CUDA driver reports,
// the CPU, and the backend auto picks, with the reason.
type Probe struct {
	DriverLib string `json:"driver_lib"`
	Binding   string `json:"binding,omitempty"`
	// DriverVersion is the CUDA version the driver supports
	// (cuDriverGetVersion), e.g. "12.8"; "" when no driver loaded.
	DriverVersion string    `json:"driver_version,omitempty"`
	GPUs          []GPUInfo `json:"gpus"`
	CPU           CPUInfo   `json:"cpu"`
	Auto          Choice    `json:"auto"`
	// CUDAUnavailable says why the CUDA backend cannot be used; "" when
	// it can.
	CUDAUnavailable string `json:"cuda_unavailable,omitempty"`

	cudaErr error       // the failure behind CUDAUnavailable, if any
	drv     cuda.Driver // the initialised driver, when CUDA is usable
}

// Choice is a selected backend and why it was selected. GPU is set for
// cuda.
type Choice struct {
	Backend string   `json:"backend"`
	Reason  string   `json:"reason"`
	GPU     *GPUInfo `json:"gpu,omitempty"`
}

// ErrCUDAUnavailable matches the error of --device cuda on a machine
// where CUDA cannot work.
var ErrCUDAUnavailable = errors.New("CUDA cannot be used")

// UnavailableError is --device cuda's error where CUDA cannot work. It
// matches ErrCUDAUnavailable and unwraps to the driver's error, if any
// (so errors.Is(err, cuda.ErrNoDevice) works).
type UnavailableError struct {
	Reason string
	Err    error
}

func (e *UnavailableError) Error() string {
	return "--device cuda: CUDA cannot be used: " + e.Reason
}

func (e *UnavailableError) Unwrap() error { return e.Err }

func (e *UnavailableError) Is(target error) bool { return target == ErrCUDAUnavailable }

// ProbeDevices loads the CUDA driver, initialises it and lists its
// devices, and describes the CPU. It never fails: whatever goes wrong
// with CUDA becomes the reason auto picks the CPU. Auto picks the first
// device of compute capability >= 6.1 (order and visibility follow
// CUDA_VISIBLE_DEVICES).
func ProbeDevices(opt ProbeOptions) Probe {
	p := Probe{CPU: DetectCPU(), DriverLib: opt.Lib, GPUs: []GPUInfo{}}
	if p.DriverLib == "" {
		p.DriverLib = cuda.DefaultLib
	}
	drv := opt.Driver
	if drv == nil {
		var err error
		if opt.Lib != "" {
			drv, err = cuda.Load(opt.Lib)
		} else {
			drv, err = cuda.LoadDefault("")
		}
		if err != nil {
			return p.noCUDA(loadReason(err), err)
		}
	}
	p.DriverLib, p.Binding = drv.Library(), drv.Binding()
	if v, err := drv.DriverGetVersion(); err == nil && v > 0 {
		p.DriverVersion = cuda.FormatVersion(v)
	}
	if err := drv.Init(); err != nil {
		return p.noCUDA("cuInit failed: "+resultText(err), err)
	}
	n, err := drv.DeviceGetCount()
	if err != nil {
		return p.noCUDA("cuDeviceGetCount failed: "+resultText(err), err)
	}
	if n == 0 {
		return p.noCUDA("no CUDA device", cuda.ErrNoDevice)
	}
	var rejected []string
	for i := range n {
		g := gpuInfo(drv, i)
		p.GPUs = append(p.GPUs, g)
		if !g.Usable {
			rejected = append(rejected, g.label()+": "+g.Reason)
		}
	}
	for i := range p.GPUs {
		if g := &p.GPUs[i]; g.Usable {
			p.drv = drv
			p.Auto = Choice{Backend: DeviceCUDA, GPU: g, Reason: fmt.Sprintf("%s: compute capability %s >= %d.%d, CUDA %s",
				g.label(), g.ComputeCapability, cuda.MinComputeMajor, cuda.MinComputeMinor, orUnknown(p.DriverVersion))}
			return p
		}
	}
	return p.noCUDA(strings.Join(rejected, "; "), nil)
}

// noCUDA records why CUDA cannot be used and makes auto pick the CPU.
func (p Probe) noCUDA(reason string, err error) Probe {
	p.CUDAUnavailable, p.cudaErr = reason, err
	p.Auto = Choice{Backend: DeviceCPU, Reason: reason}
	return p
}

// loadReason words a driver load failure for the log line.
func loadReason(err error) string {
	var le *cuda.LoadError
	if errors.As(err, &le) {
		if le.Symbol != "" {
			return fmt.Sprintf("CUDA driver library %s lacks %s", le.Lib, le.Symbol)
		}
		return fmt.Sprintf("no CUDA driver library (%v)", le.Err)
	}
	return fmt.Sprintf("no CUDA driver library (%v)", err)
}

// resultText is a driver error without its call name: the code's name and
// number, and the driver's description.
func resultText(err error) string {
	var ce *cuda.Error
	if errors.As(err, &ce) {
		return strings.TrimPrefix(ce.Error(), ce.Call+": ")
	}
	return err.Error()
}

func orUnknown(s string) string {
	if s == "" {
		return "version unknown"
	}
	return s
}

// label names a GPU in reasons: "GPU 1 (Tesla P40)".
func (g *GPUInfo) label() string {
	if g.Name == "" {
		return fmt.Sprintf("GPU %d", g.Ordinal)
	}
	return fmt.Sprintf("GPU %d (%s)", g.Ordinal, g.Name)
}

// gpuInfo describes device ordinal; a device the driver cannot describe
// is listed as unusable with the error.
func gpuInfo(drv cuda.Driver, ordinal int) GPUInfo {
	props, err := cuda.DeviceProperties(drv, ordinal)
	if err != nil {
		return GPUInfo{Ordinal: ordinal, Name: props.Name, Reason: err.Error()}
	}
	ok, why := props.Supported()
	return GPUInfo{
		Ordinal: ordinal, Name: props.Name,
		ComputeCapability: props.ComputeCapability(), Major: props.Major, Minor: props.Minor,
		SMs: props.SMs, MemoryBytes: props.TotalMem, PeakGBs: props.PeakGBs(),
		Usable: ok, Reason: why,
	}
}

// normalizeDevice lower-cases a --device value; "" means auto.
func normalizeDevice(device string) string {
	d := strings.ToLower(strings.TrimSpace(device))
	if d == "" {
		return DeviceAuto
	}
	return d
}

// Choose applies --device to a probe: auto takes the probe's choice, cpu
// always works, cuda is an error carrying the reason when CUDA cannot
// work.
func Choose(device string, p Probe) (Choice, error) {
	switch normalizeDevice(device) {
	case DeviceAuto:
		return p.Auto, nil
	case DeviceCPU:
		return Choice{Backend: DeviceCPU, Reason: "requested with --device cpu"}, nil
	case DeviceCUDA:
		if p.Auto.Backend != DeviceCUDA {
			reason := p.CUDAUnavailable
			if reason == "" {
				reason = "not probed"
			}
			return Choice{}, &UnavailableError{Reason: reason, Err: p.cudaErr}
		}
		return Choice{Backend: DeviceCUDA, GPU: p.Auto.GPU, Reason: "requested with --device cuda; " + p.Auto.Reason}, nil
	}
	return Choice{}, fmt.Errorf("unknown device %q: valid devices are %s, %s, %s", device, DeviceAuto, DeviceCPU, DeviceCUDA)
}

// cudaBackend and cpuBackend open the backends; variables so tests can
// observe the choice without a GPU backend.
var (
	cudaBackend = cuda.NewBackend
	cpuBackend  = func(threads int) (backend.Backend, error) {
		cpu, err := fallback.New(threads)
		if err != nil {
			return nil, err
		}
		return cpu, nil
	}
)

// OpenBackend chooses a backend for --device (probing only when the choice
// needs it), opens it, and logs the choice and its reason in one line.
// Under auto, a CUDA backend that fails to open falls back to the CPU with
// that failure as the reason; under cuda it is an error.
func OpenBackend(device string, threads int, opt ProbeOptions, log *slog.Logger) (backend.Backend, Choice, error) {
	if log == nil {
		log = slog.Default()
	}
	dev := normalizeDevice(device)
	var p Probe
	if dev != DeviceCPU {
		p = ProbeDevices(opt)
	}
	choice, err := Choose(dev, p)
	if err != nil {
		return nil, Choice{}, err
	}
	if choice.Backend == DeviceCUDA {
		g := choice.GPU
		be, err := cudaBackend(g.Ordinal, p.drv)
		if err == nil {
			log.Info("backend", "device", choice.Backend, "reason", choice.Reason, "name", be.Info().Name)
			return be, choice, nil
		}
		if dev == DeviceCUDA {
			return nil, Choice{}, fmt.Errorf("--device cuda: %s: %w", g.label(), err)
		}
		choice = Choice{Backend: DeviceCPU, Reason: fmt.Sprintf("CUDA backend failed on %s: %v", g.label(), err)}
	}
	be, err := cpuBackend(threads)
	if err != nil {
		return nil, Choice{}, fmt.Errorf("CPU backend with %d threads: %w", threads, err)
	}
	info := be.Info()
	log.Info("backend", "device", choice.Backend, "reason", choice.Reason, "name", info.Name, "threads", info.Threads)
	return be, choice, nil
}
