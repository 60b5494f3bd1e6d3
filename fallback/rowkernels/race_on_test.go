//go:build race

package rowkernels

const raceEnabled = true
