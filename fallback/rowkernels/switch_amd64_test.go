//go:build amd64 && !purego

package rowkernels

import "testing"

// featureCases runs fn once per feature switch setting: with the
// AVX512-VNNI kernels, with AVX2 only, and with everything off (pure Go).
// A setting the CPU cannot run is skipped, saying so.
func featureCases(t *testing.T, fn func(t *testing.T)) {
	for _, c := range []struct {
		name       string
		avx2, vnni bool
	}{{"vnni", true, true}, {"avx2", true, false}, {"purego", false, false}} {
		t.Run(c.name, func(t *testing.T) {
			if c.avx2 && !hasAVX2 {
				t.Skip("CPU lacks AVX2: AVX2 kernels not tested")
			}
			if c.vnni && !hasVNNI {
				t.Skip("CPU lacks AVX512F/VL/VNNI: AVX512-VNNI kernels not tested")
			}
			oldA, oldV := useAVX2, useVNNI
			useAVX2, useVNNI = c.avx2, c.vnni
			defer func() { useAVX2, useVNNI = oldA, oldV }()
			fn(t)
		})
	}
}
