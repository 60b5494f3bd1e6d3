//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || solaris || illumos || aix || android || ios)

package gguf

import "os"

// mapFile reads the whole file: without mmap support (Windows, wasm) the
// weights do land on the Go heap.
func mapFile(path string) ([]byte, func([]byte) error, error) {
	data, err := os.ReadFile(path)
	return data, nil, err
}
