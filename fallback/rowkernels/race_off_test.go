//go:build !race

package rowkernels

const raceEnabled = false
