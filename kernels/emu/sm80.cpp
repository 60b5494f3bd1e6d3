//go:build cgo && linux && !noemu

// The kernels compiled for the emulator as the compute_80 PTX variant.
// Products must round before they are added, as on the GPU (arm64 would
// otherwise contract them into FMAs; cgo does not accept -ffp-contract).
#pragma GCC optimize("fp-contract=off")
#define QI_EMU 1
#define QI_EMU_ARCH 800
#include "emu.h"
#include "registry.h"
#include "sources.h"

namespace qi_emu_sm80 {
#include "../common.cuh"
#include "../quantize.cu"
#include "../gemv.cu"
#include "../gemm.cu"
#include "../ops.cu"
#include "../attention.cu"
#include "../rowfmt.cu"
#include "../outliers.cu"

const Entry entries[] = {
#include "kernels.inc"
};
}  // namespace qi_emu_sm80

const Entry* const qi_emu_entries80 = qi_emu_sm80::entries;
const int qi_emu_n80 = (int)(sizeof qi_emu_sm80::entries / sizeof qi_emu_sm80::entries[0]);
