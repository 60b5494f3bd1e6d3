// Package kernels holds qinfer's CUDA kernels: the CUDA C sources
// (kernels/*.cu), the PTX that `./build.sh kernels` compiles from them
// (kernels/ptx/<module>.<arch>.ptx, committed and embedded so that
// `go build` never needs nvcc), and the table of entry points the GPU
// backend launches, with their parameter lists.
//
// Every module is compiled for two virtual architectures: compute_61
// (dp4a, the oldest device qinfer supports) and compute_80 (int8 tensor
// cores through mma.sync, cp.async). Select picks the newest variant a
// device can run; the driver JIT-compiles it for the actual GPU.
//
// Each PTX file starts with a line "// qinfer-source-sha256: <hex>", the
// SHA-256 of its module's source followed by the local headers the source
// includes (SourceHash), so a test can tell when a source changed and its
// PTX was not regenerated (DESIGN.md decision 4).
package kernels

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

//go:embed ptx/*.ptx
var ptxFS embed.FS

// Arch is a virtual architecture the PTX is compiled for.
type Arch struct {
	Name string // "compute_80"
	CC   int    // the oldest compute capability that runs it, 10*major+minor
}

// Archs are the compiled variants, oldest first.
var Archs = []Arch{{Name: "compute_61", CC: 61}, {Name: "compute_80", CC: 80}}

// Modules are the kernel sources (kernels/<module>.cu), in load order.
var Modules = []string{"quantize", "gemv", "gemm", "ops", "attention", "rowfmt", "outliers"}

// HashHeader starts the first line of every PTX file.
const HashHeader = "// qinfer-source-sha256: "

// Select returns the newest variant a device of compute capability
// major.minor runs.
func Select(major, minor int) (Arch, error) {
	cc := 10*major + minor
	for i := len(Archs) - 1; i >= 0; i-- {
		if Archs[i].CC <= cc {
			return Archs[i], nil
		}
	}
	return Arch{}, fmt.Errorf("kernels: compute capability %d.%d is older than %d.%d, the oldest the kernels support",
		major, minor, Archs[0].CC/10, Archs[0].CC%10)
}

// PTXName is the file name of module's PTX for arch.
func PTXName(module string, arch Arch) string { return module + "." + arch.Name + ".ptx" }

// PTX returns the embedded PTX of module for arch.
func PTX(module string, arch Arch) ([]byte, error) {
	b, err := fs.ReadFile(ptxFS, "ptx/"+PTXName(module, arch))
	if err != nil {
		return nil, fmt.Errorf("kernels: no PTX for module %s, %s (run ./build.sh kernels): %w", module, arch.Name, err)
	}
	return b, nil
}

// EmbeddedPTX lists the embedded PTX file names.
func EmbeddedPTX() []string {
	ents, _ := fs.ReadDir(ptxFS, "ptx")
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// RecordedHash returns the source hash a PTX file records in its first
// line.
func RecordedHash(ptx []byte) (string, error) {
	line, _, _ := bytes.Cut(ptx, []byte("\n"))
	s := string(line)
	if !strings.HasPrefix(s, HashHeader) {
		return "", fmt.Errorf("kernels: PTX does not start with %q", strings.TrimSpace(HashHeader))
	}
	return strings.TrimSpace(strings.TrimPrefix(s, HashHeader)), nil
}

var includeRE = regexp.MustCompile(`(?m)^#include "([^"]+)"`)

// SourceHash is the hash a module's PTX must record: SHA-256 over the
// source followed by each local header it includes ("name", not <name>),
// in order of appearance. read returns a file of the kernels folder.
// build.sh computes the same with cat and sha256sum.
func SourceHash(src []byte, read func(name string) ([]byte, error)) (string, error) {
	h := sha256.New()
	h.Write(src)
	for _, m := range includeRE.FindAllSubmatch(src, -1) {
		b, err := read(string(m[1]))
		if err != nil {
			return "", fmt.Errorf("kernels: included header %s: %w", m[1], err)
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
