//go:build amd64 && !purego

package vecmath

func hasSIMD() bool { return hasAVX2 }
