//go:build amd64 && !purego

package kernels

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"

	"qinfer/host/backend"
)

// streamRead is the AVX2 streaming read of BenchmarkReadBandwidth.
var streamRead = func(b []uint64) uint64 {
	return streamReadAVX2((*byte)(unsafe.Pointer(unsafe.SliceData(b))), len(b)*8/128*128)
}

// featureSetting is one setting of the feature switches.
type featureSetting struct {
	name                string
	avx2, avxvnni, vnni bool
}

// featureSettings are the feature switch settings, fastest first. Each
// turns on only what its kernels need, so that "avxvnni" runs the AVX-VNNI
// kernels with AVX-512 off, as a CPU without AVX-512 would, and "vnni"
// runs where AVX512-VNNI is present without AVX-VNNI (Ice Lake, Zen 4).
var featureSettings = []featureSetting{
	{"vnni", true, false, true},
	{"avxvnni", true, true, false},
	{"avx2", true, false, false},
	{"purego", false, false, false},
}

// skipReason says why the CPU cannot run a setting ("" if it can).
func skipReason(c featureSetting) string {
	if c.avx2 && !hasAVX2 {
		return "CPU lacks AVX2/FMA/F16C: AVX2 kernels not tested"
	}
	if c.avxvnni && !hasAVXVNNI {
		return "CPU lacks AVX-VNNI: AVX-VNNI kernels not tested"
	}
	if c.vnni && !hasVNNI {
		return "CPU lacks AVX512F/BW/VL/VNNI or BMI2: AVX512-VNNI kernels not tested"
	}
	return ""
}

// setFeatures switches the kernels and returns a function restoring them.
func setFeatures(c featureSetting) (restore func()) {
	oldA, oldAV, oldV := useAVX2, useAVXVNNI, useVNNI
	useAVX2, useAVXVNNI, useVNNI = c.avx2, c.avxvnni, c.vnni
	return func() { useAVX2, useAVXVNNI, useVNNI = oldA, oldAV, oldV }
}

// benchFeatures runs a benchmark under each setting the CPU supports but
// pure Go (whose figures are of no use).
func benchFeatures(b *testing.B, fn func(b *testing.B)) {
	for _, c := range featureSettings {
		if !c.avx2 {
			continue
		}
		b.Run(c.name, func(b *testing.B) {
			if r := skipReason(c); r != "" {
				b.Skip(r)
			}
			defer setFeatures(c)()
			fn(b)
		})
	}
}

// featureCases runs fn once per feature switch setting: with the
// AVX512-VNNI kernels, with the AVX-VNNI ones, with AVX2 only, and with
// everything off (pure Go). A setting the CPU cannot run is skipped,
// saying so.
func featureCases(t *testing.T, fn func(t *testing.T)) {
	for _, c := range featureSettings {
		t.Run(c.name, func(t *testing.T) {
			if r := skipReason(c); r != "" {
				t.Skip(r)
			}
			defer setFeatures(c)()
			fn(t)
		})
	}
}

func TestFeatures(t *testing.T) {
	featureCases(t, func(t *testing.T) {
		switch {
		case simdKernel(backend.Q8_0, 1) == nil:
			assert.Equal(t, "pure Go", Features())
		case useVNNI:
			assert.Equal(t, "AVX2+FMA+F16C+AVX512-VNNI", Features())
		case useAVXVNNI:
			assert.Equal(t, "AVX2+FMA+F16C+AVX-VNNI", Features())
		default:
			assert.Equal(t, "AVX2+FMA+F16C", Features())
		}
	})
}
