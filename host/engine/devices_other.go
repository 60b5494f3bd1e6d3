//go:build !linux && !darwin

package engine

// cpuModel has no portable source on this OS.
func cpuModel() string { return "" }
