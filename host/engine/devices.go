package engine

import (
	"bufio"
	"fmt"
	"io"
	"runtime"
	"strings"

	"golang.org/x/sys/cpu"
)

// GPUInfo is one GPU as the CUDA driver reports it.
type GPUInfo struct {
	Ordinal           int     `json:"ordinal"`
	Name              string  `json:"name"`
	ComputeCapability string  `json:"compute_capability"` // "9.0"
	Major             int     `json:"-"`
	Minor             int     `json:"-"`
	SMs               int     `json:"sms"`
	MemoryBytes       int64   `json:"memory_bytes"`
	PeakGBs           float64 `json:"peak_gbs,omitempty"` // nominal memory bandwidth
	Usable            bool    `json:"usable"`
	// Reason says why the GPU is not usable ("compute capability 5.2 <
	// 6.1", or the driver's error describing it).
	Reason string `json:"reason,omitempty"`
}

// CPUInfo is the host CPU and the instruction set extensions the CPU
// kernels choose between.
type CPUInfo struct {
	Model   string `json:"model"`
	Arch    string `json:"arch"`
	Threads int    `json:"threads"`
	// Features maps the extensions that matter on this architecture
	// (FeatureNames) to whether the CPU and OS support them.
	Features map[string]bool `json:"features"`
}

// FeatureNames lists, per GOARCH, the CPU features the CPU backend's
// kernels use, in display order.
var FeatureNames = map[string][]string{
	"amd64": {"AVX2", "FMA", "F16C", "AVX-VNNI", "AVX512-VNNI"},
	"arm64": {"NEON", "dotprod"},
}

// DetectCPU describes the CPU this process runs on.
func DetectCPU() CPUInfo {
	return CPUInfo{
		Model:    cpuModel(),
		Arch:     runtime.GOARCH,
		Threads:  runtime.NumCPU(),
		Features: cpuFeatures(runtime.GOARCH),
	}
}

// cpuFeatures reads golang.org/x/sys/cpu, which also checks that the OS
// saves the wider registers (an AVX2 CPU under an OS without XSAVE support
// reports no AVX2).
func cpuFeatures(arch string) map[string]bool {
	switch arch {
	case "amd64":
		return map[string]bool{
			"AVX2":        cpu.X86.HasAVX2,
			"FMA":         cpu.X86.HasFMA,
			"F16C":        cpu.X86.HasF16C,
			"AVX-VNNI":    cpu.X86.HasAVXVNNI,
			"AVX512-VNNI": cpu.X86.HasAVX512VNNI,
		}
	case "arm64":
		return map[string]bool{
			"NEON":    cpu.ARM64.HasASIMD,
			"dotprod": cpu.ARM64.HasASIMDDP,
		}
	}
	return map[string]bool{}
}

// FeatureText lists the features in display order, "+" present, "-"
// absent: "+AVX2 +FMA +F16C -AVX-VNNI -AVX512-VNNI".
func (c CPUInfo) FeatureText() string {
	var parts []string
	for _, f := range FeatureNames[c.Arch] {
		if has, ok := c.Features[f]; ok {
			sign := "-"
			if has {
				sign = "+"
			}
			parts = append(parts, sign+f)
		}
	}
	if len(parts) == 0 {
		return "none checked on " + c.Arch
	}
	return strings.Join(parts, " ")
}

// Text is the human-readable form of the probe, as `qinfer devices`
// prints it.
func (p Probe) Text() string {
	var b strings.Builder
	switch {
	case len(p.GPUs) > 0:
		fmt.Fprintf(&b, "CUDA: driver %s (%s binding), CUDA %s\n", p.DriverLib, p.Binding, orUnknown(p.DriverVersion))
		for _, g := range p.GPUs {
			b.WriteString("  " + g.Text() + "\n")
		}
	case p.DriverVersion != "":
		fmt.Fprintf(&b, "CUDA: driver %s (%s binding), CUDA %s: %s\n", p.DriverLib, p.Binding, p.DriverVersion, p.CUDAUnavailable)
	default:
		fmt.Fprintf(&b, "CUDA: %s\n", p.CUDAUnavailable)
	}
	model := p.CPU.Model
	if model == "" {
		model = "unknown model"
	}
	fmt.Fprintf(&b, "CPU: %s, %s, %d threads\n", model, p.CPU.Arch, p.CPU.Threads)
	fmt.Fprintf(&b, "  features: %s\n", p.CPU.FeatureText())
	fmt.Fprintf(&b, "auto: %s (%s)\n", p.Auto.Backend, p.Auto.Reason)
	return b.String()
}

// Text is one line describing the GPU.
func (g GPUInfo) Text() string {
	s := fmt.Sprintf("GPU %d: %s", g.Ordinal, g.Name)
	if g.ComputeCapability != "" {
		s += fmt.Sprintf(", compute %s, %d SMs, %.1f GiB", g.ComputeCapability, g.SMs, float64(g.MemoryBytes)/(1<<30))
		if g.PeakGBs > 0 {
			s += fmt.Sprintf(", %.0f GB/s peak", g.PeakGBs)
		}
	}
	if !g.Usable {
		s += "; not usable: " + g.Reason
	}
	return s
}

// parseCPUInfo finds the CPU's name in /proc/cpuinfo text. x86 kernels
// print "model name"; arm64 kernels usually print only the implementer
// and part numbers, older ones "Hardware" or "Processor".
func parseCPUInfo(r io.Reader) string {
	fields := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, seen := fields[k]; !seen && v != "" {
			fields[k] = v
		}
	}
	for _, k := range []string{"model name", "Hardware", "Processor"} {
		if v := fields[k]; v != "" {
			return v
		}
	}
	if impl, part := fields["CPU implementer"], fields["CPU part"]; impl != "" && part != "" {
		return "implementer " + impl + " part " + part
	}
	return ""
}
