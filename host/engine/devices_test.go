package engine

import (
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/cuda"
	"qinfer/cuda/cudatest"
)

func TestDetectCPUFeaturesMatchProcCPUInfo(t *testing.T) {
	c := DetectCPU()
	assert.Equal(t, runtime.GOARCH, c.Arch)
	assert.Positive(t, c.Threads)
	names := FeatureNames[runtime.GOARCH]
	assert.Len(t, c.Features, len(names))
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("feature cross-check reads x86 /proc/cpuinfo flags; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skipf("/proc/cpuinfo: %v", err)
	}
	// The kernel's flags are an independent source: it clears the flags of
	// features the OS does not enable, as x/sys/cpu checks XSAVE state.
	flags := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			for _, f := range strings.Fields(v) {
				flags[f] = true
			}
			break
		}
	}
	require.NotEmpty(t, flags)
	kernel := map[string]string{"AVX2": "avx2", "FMA": "fma", "F16C": "f16c", "AVX-VNNI": "avx_vnni", "AVX512-VNNI": "avx512_vnni"}
	for _, n := range names {
		assert.Equal(t, flags[kernel[n]], c.Features[n], n)
	}
	assert.NotEmpty(t, c.Model)
}

func TestParseCPUInfo(t *testing.T) {
	x86 := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
	assert.Equal(t, "AMD EPYC 7B13", parseCPUInfo(strings.NewReader(x86)))
	arm := "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n"
	assert.Equal(t, "implementer 0x41 part 0xd0c", parseCPUInfo(strings.NewReader(arm)))
	oldArm := "Processor\t: AArch64 Processor rev 4 (aarch64)\nprocessor\t: 0\nHardware\t: Qualcomm Technologies, Inc SDM845\n"
	assert.Equal(t, "Qualcomm Technologies, Inc SDM845", parseCPUInfo(strings.NewReader(oldArm)))
	assert.Empty(t, parseCPUInfo(strings.NewReader("")))
}

func TestFeatureText(t *testing.T) {
	c := CPUInfo{Arch: "amd64", Features: map[string]bool{"AVX2": true, "FMA": true, "F16C": true, "AVX-VNNI": false, "AVX512-VNNI": false}}
	assert.Equal(t, "+AVX2 +FMA +F16C -AVX-VNNI -AVX512-VNNI", c.FeatureText())
	c = CPUInfo{Arch: "arm64", Features: map[string]bool{"NEON": true, "dotprod": false}}
	assert.Equal(t, "+NEON -dotprod", c.FeatureText())
	assert.Equal(t, "none checked on riscv64", CPUInfo{Arch: "riscv64", Features: map[string]bool{}}.FeatureText())
}

var testCPU = CPUInfo{Model: "AMD EPYC 7B13", Arch: "amd64", Threads: 2,
	Features: map[string]bool{"AVX2": true, "FMA": true, "F16C": true, "AVX-VNNI": false, "AVX512-VNNI": false}}

func TestProbeText(t *testing.T) {
	p := ProbeDevices(ProbeOptions{Driver: cudatest.New(cudatest.H100(), cudatest.GTX980())})
	p.CPU = testCPU
	assert.Equal(t, `CUDA: driver fake (fake binding), CUDA 12.8
  GPU 0: NVIDIA H100 80GB HBM3, compute 9.0, 132 SMs, 79.2 GiB, 3352 GB/s peak
  GPU 1: NVIDIA GeForce GTX 980, compute 5.2, 16 SMs, 3.9 GiB, 224 GB/s peak; not usable: compute capability 5.2 < 6.1
CPU: AMD EPYC 7B13, amd64, 2 threads
  features: +AVX2 +FMA +F16C -AVX-VNNI -AVX512-VNNI
auto: cuda (GPU 0 (NVIDIA H100 80GB HBM3): compute capability 9.0 >= 6.1, CUDA 12.8)
`, p.Text())

	fake := cudatest.New(cudatest.H100())
	fake.InitResult = cuda.CodeNoDevice
	p = ProbeDevices(ProbeOptions{Driver: fake})
	p.CPU = testCPU
	assert.Equal(t, `CUDA: driver fake (fake binding), CUDA 12.8: cuInit failed: CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is detected
CPU: AMD EPYC 7B13, amd64, 2 threads
  features: +AVX2 +FMA +F16C -AVX-VNNI -AVX512-VNNI
auto: cpu (cuInit failed: CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is detected)
`, p.Text())

	p = ProbeDevices(ProbeOptions{Lib: missingLib})
	p.CPU = testCPU
	text := p.Text()
	assert.True(t, strings.HasPrefix(text, "CUDA: no CUDA driver library ("+missingLib), text)
	assert.True(t, strings.HasSuffix(text, "\nauto: cpu ("+p.CUDAUnavailable+")\n"), text)
}

func TestProbeJSON(t *testing.T) {
	p := ProbeDevices(ProbeOptions{Driver: cudatest.New(cudatest.GTX980(), cudatest.P40())})
	p.CPU = testCPU
	data, err := json.Marshal(p)
	require.NoError(t, err)
	var v struct {
		DriverLib     string `json:"driver_lib"`
		DriverVersion string `json:"driver_version"`
		GPUs          []map[string]any
		CPU           map[string]any
		Auto          struct {
			Backend, Reason string
			GPU             map[string]any
		}
	}
	require.NoError(t, json.Unmarshal(data, &v), string(data))
	assert.Equal(t, "fake", v.DriverLib)
	assert.Equal(t, "12.8", v.DriverVersion)
	require.Len(t, v.GPUs, 2)
	assert.Equal(t, map[string]any{"ordinal": 0.0, "name": "NVIDIA GeForce GTX 980", "compute_capability": "5.2", "sms": 16.0,
		"memory_bytes": 4234936320.0, "peak_gbs": 224.32, "usable": false, "reason": "compute capability 5.2 < 6.1"}, v.GPUs[0])
	assert.Equal(t, true, v.GPUs[1]["usable"])
	assert.Equal(t, "cuda", v.Auto.Backend)
	assert.Equal(t, "Tesla P40", v.Auto.GPU["name"])
	assert.Equal(t, map[string]any{"model": "AMD EPYC 7B13", "arch": "amd64", "threads": 2.0,
		"features": map[string]any{"AVX2": true, "FMA": true, "F16C": true, "AVX-VNNI": false, "AVX512-VNNI": false}}, v.CPU)
	assert.NotContains(t, string(data), "cuda_unavailable", "omitted when CUDA is usable")
}
