//go:build (!amd64 && !arm64) || purego

package kernels

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// streamRead has no assembly version here.
var streamRead func([]uint64) uint64

// featureCases runs fn once: without assembly there is nothing to switch.
func featureCases(t *testing.T, fn func(t *testing.T)) {
	t.Run("purego", fn)
}

// benchFeatures runs the benchmark on the pure-Go kernels.
func benchFeatures(b *testing.B, fn func(b *testing.B)) {
	b.Run("purego", fn)
}

func TestFeatures(t *testing.T) {
	assert.Equal(t, "pure Go", Features())
}
