//go:build !purego

package kernels

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"qinfer/host/backend"
)

// streamRead is the SIMD streaming read of BenchmarkReadBandwidth; arm64
// has none (the Go loop is the only reader there).
var streamRead func([]uint64) uint64

// featureSettings are the feature switch settings, fastest first.
var featureSettings = []struct {
	name        string
	asimd, sdot bool
}{{"sdot", true, true}, {"asimd", true, false}, {"purego", false, false}}

// skipReason says why the CPU cannot run a setting ("" if it can).
func skipReason(asimd, sdot bool) string {
	if asimd && !hasASIMD {
		return "CPU lacks Advanced SIMD: NEON kernels not tested"
	}
	if sdot && !hasSDOT {
		return "CPU lacks the dot-product instructions (asimddp): SDOT kernels not tested"
	}
	return ""
}

// setFeatures switches the kernels and returns a function restoring them.
func setFeatures(asimd, sdot bool) (restore func()) {
	oldA, oldS := useASIMD, useSDOT
	useASIMD, useSDOT = asimd, sdot
	return func() { useASIMD, useSDOT = oldA, oldS }
}

// benchFeatures runs a benchmark under each setting the CPU supports but
// pure Go (whose figures are of no use).
func benchFeatures(b *testing.B, fn func(b *testing.B)) {
	for _, c := range featureSettings[:2] {
		b.Run(c.name, func(b *testing.B) {
			if r := skipReason(c.asimd, c.sdot); r != "" {
				b.Skip(r)
			}
			defer setFeatures(c.asimd, c.sdot)()
			fn(b)
		})
	}
}

// featureCases runs fn once per feature switch setting: with the SDOT
// kernels, with Advanced SIMD only, and with everything off (pure Go). A
// setting the CPU cannot run is skipped, saying so.
func featureCases(t *testing.T, fn func(t *testing.T)) {
	for _, c := range featureSettings {
		t.Run(c.name, func(t *testing.T) {
			if r := skipReason(c.asimd, c.sdot); r != "" {
				t.Skip(r)
			}
			defer setFeatures(c.asimd, c.sdot)()
			fn(t)
		})
	}
}

func TestFeatures(t *testing.T) {
	featureCases(t, func(t *testing.T) {
		switch {
		case !useASIMD:
			assert.Equal(t, "pure Go", Features())
			assert.Nil(t, simdKernel(backend.Q8_0, 1))
		case useSDOT:
			assert.Equal(t, "ASIMD+ASIMDDP", Features())
			assert.Same(t, &q8_0GEMV[1], simdKernel(backend.Q8_0, 1))
		default:
			assert.Equal(t, "ASIMD", Features())
			assert.Same(t, &q8_0GEMV[0], simdKernel(backend.Q8_0, 1))
		}
	})
}
