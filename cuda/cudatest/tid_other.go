//go:build !linux

package cudatest

// threadID cannot tell threads apart here, so the fake treats the whole
// process as one thread and does not enforce the context-per-thread rule.
func threadID() int { return 0 }
