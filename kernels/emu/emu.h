// CUDA built-ins for running qinfer's kernels on the CPU (QI_EMU builds).
//
// A block's threads are fibers scheduled cooperatively on one OS thread:
// each runs until it reaches a barrier (__syncthreads, or a warp-wide
// operation: shuffles, ldmatrix, mma), and the scheduler releases a
// barrier only when every thread it concerns has arrived, so a kernel
// that diverges around a warp operation or a barrier deadlocks here with
// a message instead of silently computing something. Warp-wide operations
// exchange values through per-warp slots, and mma.sync and ldmatrix are
// computed from the PTX ISA's fragment layouts, independently of how the
// kernels use them.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <type_traits>

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
};
struct int2 {
  int x, y;
};
struct int4 {
  int x, y, z, w;
};
struct float2 {
  float x, y;
};

static inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
static inline float2 make_float2(float x, float y) { return float2{x, y}; }

// The scheduler sets these before resuming a fiber.
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

template <class T>
static inline T min(T a, T b) {
  return b < a ? b : a;
}
template <class T>
static inline T max(T a, T b) {
  return a < b ? b : a;
}

// IEEE operations: the emulator is compiled with -ffp-contract=off, so
// these round exactly as the _rn intrinsics do.
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline int __float2int_rn(float f) {
  if (f != f) return 0;
  if (f >= 2147483648.0f) return 2147483647;
  if (f <= -2147483648.0f) return (-2147483647 - 1);
  return (int)nearbyintf(f);
}
static inline float __int_as_float(int i) {
  float f;
  memcpy(&f, &i, 4);
  return f;
}
static inline int __float_as_int(float f) {
  int i;
  memcpy(&i, &f, 4);
  return i;
}

float qi_emu_h2f(uint16_t h);
uint16_t qi_emu_f2h(float f);

static inline int qi_emu_dp4a(int a, int b, int c) {
  for (int i = 0; i < 4; i++) c += (int)(int8_t)(a >> (8 * i)) * (int)(int8_t)(b >> (8 * i));
  return c;
}

// Scheduling points.
void qi_emu_syncthreads();
void qi_emu_warp_barrier();

// qi_emu_slot is the exchange slot (8 words) of a lane of the current
// thread's warp; a thread writes its own, and reads others' between two
// warp barriers.
extern uint64_t (*qi_emu_warp_slots)[8];
static inline uint64_t* qi_emu_slot(int lane) { return qi_emu_warp_slots[lane]; }

template <class T>
static inline T qi_emu_shfl(T v, int src) {
  static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
  memcpy(qi_emu_slot((int)(threadIdx.x & 31)), &v, sizeof(T));
  qi_emu_warp_barrier();
  T r;
  memcpy(&r, qi_emu_slot(src & 31), sizeof(T));
  qi_emu_warp_barrier();
  return r;
}

// qi_emu_butterfly is an xor-butterfly all-reduce over the warp (steps
// 16, 8, 4, 2, 1, each lane combining its value with its partner's as
// op(own, partner)), computed from one exchange of the 32 values.
template <class T, class F>
static inline T qi_emu_butterfly(T v, F op) {
  static_assert(sizeof(T) <= 8, "reduction of more than 8 bytes");
  const int lane = (int)(threadIdx.x & 31);
  memcpy(qi_emu_slot(lane), &v, sizeof(T));
  qi_emu_warp_barrier();
  T x[32], y[32];
  for (int l = 0; l < 32; l++) memcpy(&x[l], qi_emu_slot(l), sizeof(T));
  qi_emu_warp_barrier();
  for (int m = 16; m > 0; m >>= 1) {
    for (int l = 0; l < 32; l++) y[l] = op(x[l], x[l ^ m]);
    for (int l = 0; l < 32; l++) x[l] = y[l];
  }
  return x[lane];
}

void qi_emu_ldsm_x4(int r[4], const void* row);
void qi_emu_mma_k32(int c[4], const int a[4], const int b[2]);
void qi_emu_mma_k16(int c[4], int a0, int a1, int b);
