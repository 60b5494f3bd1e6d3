// C interface of the kernel emulator, for cgo.
#ifndef QI_EMU_RUNTIME_H
#define QI_EMU_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// qi_emu_lookup returns the index of kernel name in the variant arch (61
// or 80) and its parameter count, or -1.
int qi_emu_lookup(int arch, const char* name, int* nparams);

// qi_emu_launch runs kernel index of variant arch over the grid, one
// block at a time, with its parameters in 8-byte slots (pointers already
// translated to host addresses). It returns NULL, or a message that stays
// valid until the next launch (a deadlocked barrier, a bad launch shape).
const char* qi_emu_launch(int arch, int index, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                          unsigned bz, const uint64_t* slots);

// qi_emu_set_order sets the order in which the scheduler resumes threads
// released by a barrier: 0 forward (warps in lock step), 1 reverse, 2
// depth-first (a released warp runs ahead of the others). A kernel whose
// results depend on it relies on an order of threads between barriers: a
// race on a GPU.
void qi_emu_set_order(int order);

#ifdef __cplusplus
}
#endif

#endif
