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

// featureSettings are the feature switch settings, fastest first.
var featureSettings = []struct {
	name       string
	avx2, vnni bool
}{{"vnni", true, true}, {"avx2", true, false}, {"purego", false, false}}

// skipReason says why the CPU cannot run a setting ("" if it can).
func skipReason(avx2, vnni bool) string {
	if avx2 && !hasAVX2 {
		return "CPU lacks AVX2/FMA/F16C: AVX2 kernels not tested"
	}
	if vnni && !hasVNNI {
		return "CPU lacks AVX512F/BW/VL/VNNI or BMI2: AVX512-VNNI kernels not tested"
	}
	return ""
}

// setFeatures switches the kernels and returns a function restoring them.
func setFeatures(avx2, vnni bool) (restore func()) {
	oldA, oldV := useAVX2, useVNNI
	useAVX2, useVNNI = avx2, vnni
	return func() { useAVX2, useVNNI = oldA, oldV }
}

// benchFeatures runs a benchmark under each setting the CPU supports but
// pure Go (whose figures are of no use).
func benchFeatures(b *testing.B, fn func(b *testing.B)) {
	for _, c := range featureSettings[:2] {
		b.Run(c.name, func(b *testing.B) {
			if r := skipReason(c.avx2, c.vnni); r != "" {
				b.Skip(r)
			}
			defer setFeatures(c.avx2, c.vnni)()
			fn(b)
		})
	}
}

// featureCases runs fn once per feature switch setting: with the
// AVX512-VNNI kernels, with AVX2 only, and with everything off (pure Go).
// A setting the CPU cannot run is skipped, saying so.
func featureCases(t *testing.T, fn func(t *testing.T)) {
	for _, c := range featureSettings {
		t.Run(c.name, func(t *testing.T) {
			if r := skipReason(c.avx2, c.vnni); r != "" {
				t.Skip(r)
			}
			defer setFeatures(c.avx2, c.vnni)()
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
		default:
			assert.Equal(t, "AVX2+FMA+F16C", Features())
		}
	})
}
