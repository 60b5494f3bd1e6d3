// Package emu runs qinfer's CUDA kernels on the CPU so that the GPU
// backend and its parity tests run on machines without a GPU.
//
// The kernel sources (kernels/*.cu) are compiled a second time by the host
// C++ compiler (cgo), with kernels/common.cuh mapping the CUDA built-ins to
// emu.h: each block's threads are fibers on one OS thread, switched at
// barriers and warp-wide operations, which complete only when every thread
// they involve has arrived (a divergent warp operation is reported as a
// deadlock instead of computing garbage). Tensor-core mma.sync and
// ldmatrix are computed from the PTX ISA's fragment layouts. New wraps the
// emulator in cuda/cudatest's fake driver, whose memory is host memory, so
// the whole backend (uploads, launches, graphs) runs unchanged.
//
// The emulator is a test tool: it needs cgo with a C++ compiler (g++) on
// Linux, and is slow (small shapes only). Without cgo, or with -tags
// noemu (a machine with gcc but no g++), the package only has Available =
// false and the GPU tests run on a real GPU alone.
package emu
