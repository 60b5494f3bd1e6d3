//go:build (!amd64 && !arm64) || purego

package kernels

// cpuPause is the spin-wait hint; without assembly the loop just spins.
func cpuPause() {}

// clearUpperZMM is needed only after AVX-512 kernels.
func clearUpperZMM() {}
