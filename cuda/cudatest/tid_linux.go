package cudatest

import "syscall"

// threadID identifies the calling OS thread, which is what a CUDA context
// is current on.
func threadID() int { return syscall.Gettid() }
