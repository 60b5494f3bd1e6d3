//go:build !amd64 || purego

package kernels

import "testing"

// featureCases runs fn once: without assembly there is nothing to switch.
func featureCases(t *testing.T, fn func(t *testing.T)) {
	t.Run("purego", fn)
}
