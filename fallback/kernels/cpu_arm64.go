//go:build !purego

package kernels

// cpuPause executes YIELD, the spin-wait hint (what the runtime's own
// spin loops use on arm64).
func cpuPause()

// clearUpperZMM is needed only after AVX-512 kernels.
func clearUpperZMM() {}
