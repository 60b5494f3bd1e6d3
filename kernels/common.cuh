// Helpers shared by every qinfer kernel module.
//
// The kernel sources compile two ways: by nvcc into PTX (./build.sh
// kernels), and, with QI_EMU defined, by the host C++ compiler into the CPU
// emulator that the Go tests run them on (kernels/emu). Everything that is
// specific to the GPU (inline PTX, intrinsics, launch bounds) therefore
// lives here behind qi_* names that the emulator defines too.
//
// Conventions of every module:
//   - Entry points are extern "C", named qi_*, and take only pointers,
//     long long and float parameters: the Go side passes each argument in
//     an 8-byte slot (the gorgonia binding copies 8 bytes per parameter).
//   - No dynamic shared memory and at most 48 KiB of static shared memory
//     per block, so no launch needs cuFuncSetAttribute.
//   - Arithmetic that the CPU backend rounds in a particular way is written
//     with the _rn intrinsics so nvcc cannot contract it into an FMA.
#pragma once

#ifdef QI_EMU
// kernels/emu/emu.h, included before this file outside any namespace,
// provides the CUDA built-ins (threadIdx, int4, __dp4a, ...) on the host.
#define QI_ENTRY(bounds) void
#define QI_ENTRY_OCC(bounds, minblocks) void
#define QI_DEV static inline
#define QI_ARCH QI_EMU_ARCH
#else
#include <stdint.h>
#define QI_ENTRY(bounds) extern "C" __global__ void __launch_bounds__(bounds, 1)
// QI_ENTRY_OCC also asks for minblocks resident blocks per multiprocessor,
// which caps registers: memory-bound kernels want the occupancy.
#define QI_ENTRY_OCC(bounds, minblocks) extern "C" __global__ void __launch_bounds__(bounds, minblocks)
#define QI_DEV static __device__ __forceinline__
#ifdef __CUDA_ARCH__
#define QI_ARCH __CUDA_ARCH__
#else
#define QI_ARCH 0
#endif
#endif

typedef long long i64;

// ---- float16 ----

QI_DEV float qi_h2f(uint16_t h) {
#ifdef QI_EMU
  return qi_emu_h2f(h);
#else
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
#endif
}

// qi_f2h rounds to nearest even, as F16C's VCVTPS2PH and quant.FP32ToFP16.
QI_DEV uint16_t qi_f2h(float f) {
#ifdef QI_EMU
  return qi_emu_f2h(f);
#else
  uint16_t h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
#endif
}

// qi_round_h returns f rounded to the nearest half, as a float.
QI_DEV float qi_round_h(float f) { return qi_h2f(qi_f2h(f)); }

// ---- synchronisation and warp primitives ----

#ifdef QI_EMU
#define QI_SYNC() qi_emu_syncthreads()
#else
#define QI_SYNC() __syncthreads()
#endif

QI_DEV int qi_lane() { return (int)(threadIdx.x & 31); }
QI_DEV int qi_warp() { return (int)(threadIdx.x >> 5); }

QI_DEV float qi_shfl_xor(float v, int m) {
#ifdef QI_EMU
  return qi_emu_shfl(v, qi_lane() ^ m);
#else
  return __shfl_xor_sync(0xffffffffu, v, m);
#endif
}

QI_DEV int qi_shfl_xor(int v, int m) {
#ifdef QI_EMU
  return qi_emu_shfl(v, qi_lane() ^ m);
#else
  return __shfl_xor_sync(0xffffffffu, v, m);
#endif
}

QI_DEV double qi_shfl_xor(double v, int m) {
#ifdef QI_EMU
  return qi_emu_shfl(v, qi_lane() ^ m);
#else
  return __shfl_xor_sync(0xffffffffu, v, m);
#endif
}

// The warp reductions are xor butterflies: every lane ends with the same
// value, each step adding its partner's (the emulator computes the same
// tree in one exchange, since a shuffle costs it two context switches).
#ifdef QI_EMU
#define QI_BUTTERFLY(v, op) return qi_emu_butterfly(v, [](decltype(v) a, decltype(v) b) { return op; })
#else
#define QI_BUTTERFLY(v, op)                    \
  _Pragma("unroll") for (int m = 16; m > 0; m >>= 1) { \
    const auto a = v, b = qi_shfl_xor(v, m);   \
    v = op;                                    \
  }                                            \
  return v
#endif

QI_DEV float qi_warp_sum(float v) { QI_BUTTERFLY(v, a + b); }
QI_DEV int qi_warp_sum(int v) { QI_BUTTERFLY(v, a + b); }
QI_DEV double qi_warp_sum(double v) { QI_BUTTERFLY(v, a + b); }
QI_DEV float qi_warp_max(float v) { QI_BUTTERFLY(v, fmaxf(a, b)); }

// qi_max_nan is Go's max of two floats: NaN when either is NaN (fmaxf,
// IEEE maxNum, would drop the NaN). Between numbers it is exact, so any
// order of combining gives the same bits.
QI_DEV float qi_max_nan(float a, float b) { return (b > a || b != b) ? b : a; }
QI_DEV float qi_warp_max_nan(float v) { QI_BUTTERFLY(v, qi_max_nan(a, b)); }

// ---- integer dot products ----

// qi_dp4a is c + the dot product of the four signed bytes of a and b.
QI_DEV int qi_dp4a(int a, int b, int c) {
#ifdef QI_EMU
  return qi_emu_dp4a(a, b, c);
#else
  return __dp4a(a, b, c);
#endif
}

// qi_byte_perm is __byte_perm (PTX prmt) for selectors 0..7: byte n of
// the result is byte (s >> 4n) & 7 of the eight bytes y:x.
QI_DEV unsigned qi_byte_perm(unsigned x, unsigned y, unsigned s) {
#ifdef QI_EMU
  const unsigned long long in = (unsigned long long)y << 32 | x;
  unsigned r = 0;
  for (int n = 0; n < 4; n++) r |= (unsigned)(in >> (8 * ((s >> (4 * n)) & 7)) & 0xff) << (8 * n);
  return r;
#else
  return __byte_perm(x, y, s);
#endif
}

// qi_sub8 subtracts 8 from each byte of a word of nibbles (0..15), giving
// the signed values -8..7 of Q4_0 without a borrow between bytes.
QI_DEV int qi_sub8(int v) { return (int)(((unsigned)v + 0x78787878u) ^ 0x80808080u); }

// qi_sub32 subtracts 32 from each byte of a word of 6-bit values (0..63).
QI_DEV int qi_sub32(int v) { return (int)(((unsigned)v + 0x60606060u) ^ 0x80808080u); }

// ---- loads ----

QI_DEV int4 qi_ld16(const void* p) {
#ifdef QI_EMU
  int4 v;
  memcpy(&v, p, 16);
  return v;
#else
  return __ldg((const int4*)p);
#endif
}

QI_DEV int2 qi_ld8(const void* p) {
#ifdef QI_EMU
  int2 v;
  memcpy(&v, p, 8);
  return v;
#else
  return __ldg((const int2*)p);
#endif
}

QI_DEV int qi_ld4(const void* p) {
#ifdef QI_EMU
  int v;
  memcpy(&v, p, 4);
  return v;
#else
  return __ldg((const int*)p);
#endif
}

QI_DEV uint16_t qi_ld2(const void* p) {
#ifdef QI_EMU
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
#else
  return __ldg((const unsigned short*)p);
#endif
}

QI_DEV float qi_ldf(const float* p) {
#ifdef QI_EMU
  return *p;
#else
  return __ldg(p);
#endif
}

QI_DEV int qi_ldi(const int* p) {
#ifdef QI_EMU
  return *p;
#else
  return __ldg(p);
#endif
}

// ---- asynchronous copies to shared memory (cp.async on sm_80+) ----

// qi_cp16 copies 16 bytes from global to shared memory; on sm_80 and later
// the copy completes at qi_cp_wait, before that it is an ordinary copy.
QI_DEV void qi_cp16(void* smem, const void* gmem) {
#if !defined(QI_EMU) && QI_ARCH >= 800
  unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(gmem));
#else
  *(int4*)smem = qi_ld16(gmem);
#endif
}

// qi_cp4 and qi_cp8 copy 4 and 8 bytes (scales) the same way.
QI_DEV void qi_cp4(void* smem, const void* gmem) {
#if !defined(QI_EMU) && QI_ARCH >= 800
  unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(s), "l"(gmem));
#else
  *(int*)smem = qi_ld4(gmem);
#endif
}

QI_DEV void qi_cp8(void* smem, const void* gmem) {
#if !defined(QI_EMU) && QI_ARCH >= 800
  unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8;" ::"r"(s), "l"(gmem));
#else
  *(int2*)smem = qi_ld8(gmem);
#endif
}

QI_DEV void qi_cp_commit() {
#if !defined(QI_EMU) && QI_ARCH >= 800
  asm volatile("cp.async.commit_group;" ::);
#endif
}

// qi_cp_wait1 waits until at most one committed group is in flight.
QI_DEV void qi_cp_wait1() {
#if !defined(QI_EMU) && QI_ARCH >= 800
  asm volatile("cp.async.wait_group 1;" ::);
#endif
}

// ---- tensor cores (sm_80+) ----

#if QI_ARCH >= 800
#define QI_HAVE_MMA 1

// qi_ldsm_x4 is ldmatrix .x4: lane l supplies the address of row l%8 of
// matrix l/8 (16 bytes); lane l receives in r[j] the 4 bytes at row l/4,
// word l%4 of matrix j.
QI_DEV void qi_ldsm_x4(int r[4], const void* row) {
#ifdef QI_EMU
  qi_emu_ldsm_x4(r, row);
#else
  unsigned s = (unsigned)__cvta_generic_to_shared(row);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
#endif
}

// qi_mma_k32 is mma.sync m16n8k32 s8*s8+s32: with g = lane/4, t = lane%4,
// a[0] holds row g, k 4t..4t+3; a[1] row g+8, same k; a[2] row g,
// k 16+4t..; a[3] row g+8, k 16+4t..; b[0] column g, k 4t..4t+3; b[1]
// column g, k 16+4t..; c[0], c[1] row g, columns 2t, 2t+1; c[2], c[3]
// row g+8.
QI_DEV void qi_mma_k32(int c[4], const int a[4], const int b[2]) {
#ifdef QI_EMU
  qi_emu_mma_k32(c, a, b);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// qi_mma_k16 is mma.sync m16n8k16 s8*s8+s32: a[0] row g, k 4t..4t+3;
// a[1] row g+8; b column g, k 4t..4t+3; c as for qi_mma_k32.
QI_DEV void qi_mma_k16(int c[4], int a0, int a1, int b) {
#ifdef QI_EMU
  qi_emu_mma_k16(c, a0, a1, b);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a0), "r"(a1), "r"(b));
#endif
}
#endif

// ---- ggml's float building blocks (see fallback/ggmlmath.go) ----

// qi_vexpf is one lane of ggml_v_expf, the AVX2+FMA exponential that
// llama.cpp's CPU softmax and SiLU use; each step is one IEEE operation,
// so the GPU reproduces it bit for bit.
QI_DEV float qi_vexpf(float x) {
  // Constants by bit pattern: 0x1.8p23, 0x1.715476p+0, 0x1.7f7d1cp-20,
  // 0x1.62e4p-1, 0x1.0e4020p-7, 0x1.573e2ep-5, 0x1.555e66p-3,
  // 0x1.fffdb6p-2, 0x1.ffffecp-1.
  const float r = __int_as_float(0x4b400000);
  const float z = __fmaf_rn(x, __int_as_float(0x3fb8aa3b), r);
  const float n = __fsub_rn(z, r);
  const float b = __fmaf_rn(-n, __int_as_float(0x35bfbe8e), __fmaf_rn(-n, __int_as_float(0x3f317200), x));
  const unsigned e = (unsigned)__float_as_int(z) << 23;
  const float k = __int_as_float((int)(e + (unsigned)__float_as_int(1.0f)));
  const float u = __fmul_rn(b, b);
  const float j = __fmaf_rn(__fmaf_rn(__fmaf_rn(__int_as_float(0x3c072010), b, __int_as_float(0x3d2b9f17)), u,
                                      __fmaf_rn(__int_as_float(0x3e2aaf33), b, __int_as_float(0x3efffedb))),
                            u, __fmul_rn(__int_as_float(0x3f7ffff6), b));
  const float an = fabsf(n);
  if (!(an > 126.0f)) return __fmaf_rn(j, k, k);
  const unsigned g = n <= 0.0f ? 0x82000000u : 0u;
  const float s1 = __int_as_float((int)(g + 0x7f000000u));
  const float s2 = __int_as_float((int)(e - g));
  if (an > 192.0f) return __fmul_rn(s1, s1);
  return __fmul_rn(__fmaf_rn(s2, j, s2), s1);
}

// qi_expf is C's expf as the CPU backend computes it: the double
// exponential rounded to float.
QI_DEV float qi_expf(float x) { return (float)exp((double)x); }

// qi_hsum8 is ggml's horizontal sum of 8 lanes (fallback hsum8).
QI_DEV float qi_hsum8(const float v[8]) {
  const float h0 = __fadd_rn(v[4], v[0]), h1 = __fadd_rn(v[5], v[1]);
  const float h2 = __fadd_rn(v[6], v[2]), h3 = __fadd_rn(v[7], v[3]);
  return __fadd_rn(__fadd_rn(h0, h2), __fadd_rn(h1, h3));
}

// qi_reduce32 is GGML_F32x8_REDUCE over four 8-lane accumulators, lane i
// of accumulator j at a[8j+i] (fallback reduce32).
QI_DEV float qi_reduce32(const float a[32]) {
  float x[8];
#pragma unroll
  for (int i = 0; i < 8; i++) x[i] = __fadd_rn(__fadd_rn(a[i], a[16 + i]), __fadd_rn(a[8 + i], a[24 + i]));
  const float t0 = __fadd_rn(x[0], x[4]), t1 = __fadd_rn(x[1], x[5]);
  const float t2 = __fadd_rn(x[2], x[6]), t3 = __fadd_rn(x[3], x[7]);
  return __fadd_rn(__fadd_rn(t0, t1), __fadd_rn(t2, t3));
}

// ---- qinfer's row formats (W8, FP8 E4M3, TERNARY, BINARY) ----
//
// The single definition of their arithmetic is host/quant
// (docs/formats.md): per-token int8 activations (QuantizeTokenInt8,
// QuantizeTokenInt8Static), exact integer sums, then one scaling
// (RowScaleDot). These helpers are that definition's float operations, in
// its order, with the _rn intrinsics so that nvcc cannot fuse them.

// qi_w8_code is quant's quantTokenWith for one element: the product, the
// clamp to [-127, 127] in float (NaN goes to -127, as the CPU's MAXPS with
// NaN in its first source does), then rounding halfway cases to even.
QI_DEV int qi_w8_code(float v, float id) {
  float p = __fmul_rn(v, id);
  if (!(p > -127.0f)) p = -127.0f;
  if (!(p < 127.0f)) p = 127.0f;
  return __float2int_rn(p);
}

// qi_row_dot is quant.RowScaleDot for W8, TERNARY and BINARY:
// float32(isum) * (wscale * xscale), the conversion rounding to nearest even.
QI_DEV float qi_row_dot(int isum, float ws, float xs) { return __fmul_rn((float)isum, __fmul_rn(ws, xs)); }

// qi_row_dot_fp8 is quant.RowScaleDot for FP8 E4M3, whose integer sum
// counts units of 2^-9: the same scaling, then times 2^-9.
QI_DEV float qi_row_dot_fp8(i64 isum, float ws, float xs) {
  return __fmul_rn(__fmul_rn((float)isum, __fmul_rn(ws, xs)), 0.001953125f);
}

// ---- run-time error reporting ----

// Kernels that find an input they cannot honour (a position outside the
// KV cache, a token id outside the table) record the first such error in
// a small device buffer, which the host checks when it synchronises, and
// skip the element: a failure is reported, never a silent garbage write.
enum {
  QI_ERR_NONE = 0,
  QI_ERR_TOKEN_ID = 1,   // args: token, id, rows
  QI_ERR_POSITION = 2,   // args: token, position, context
  QI_ERR_SEQUENCE = 3,   // args: token, sequence, slots
  QI_ERR_OUTPUT_ROW = 4  // args: output index, row, tokens
};

QI_DEV void qi_report(int* status, int code, int a0, int a1, int a2) {
#ifdef QI_EMU
  if (status[0] == 0) {
    status[0] = code;
    status[1] = a0;
    status[2] = a1;
    status[3] = a2;
  }
#else
  if (atomicCAS(status, 0, -1) == 0) {
    status[1] = a0;
    status[2] = a1;
    status[3] = a2;
    __threadfence();
    atomicExch(status, code);
  }
#endif
}
