//go:build amd64 && !purego

package kernels

import (
	"testing"

	"golang.org/x/sys/cpu"
)

// featureCases runs fn once per feature switch setting this CPU supports:
// with the AVX2 kernels and with them switched off.
func featureCases(t *testing.T, fn func(t *testing.T)) {
	hasAVX2 := cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C
	for _, c := range []struct {
		name string
		on   bool
	}{{"avx2", true}, {"purego", false}} {
		t.Run(c.name, func(t *testing.T) {
			if c.on && !hasAVX2 {
				t.Skip("CPU lacks AVX2/FMA/F16C")
			}
			old := useAVX2
			useAVX2 = c.on
			defer func() { useAVX2 = old }()
			fn(t)
		})
	}
}
