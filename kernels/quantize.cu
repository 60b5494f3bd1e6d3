// qinfer-arch: compute_61 compute_80
//
// Activation quantization: F32 activation rows (a view: row stride ldx
// floats) into the format a weight type's dot product reads. DESIGN.md
// decision 5: the GPU quantizes exactly as the CPU (quant.QuantizeActivations)
// does, so integer sums agree bit for bit.
//
// Output layouts (one token per row, rows contiguous):
//   Q8_0 (for Q8_0, Q4_0 weights): xq int8 [ntok][kpad], xd float [ntok][kpad/32];
//     the scale is stored as its fp16-rounded value, as the CPU reads it.
//   Q8_K (for K-quant weights):    xq int8 [ntok][cols], xd float [ntok][cols/256],
//     xbs int16 [ntok][cols/16] (sums of 16 quants).
//   row formats (W8, FP8, TERNARY, BINARY; per-token int8):
//                                  xq int8 [ntok][kpad], xd float [ntok].
//   F16, F32:                      [ntok][kpad] halves or floats.
// Columns from cols up to kpad are zero (and so are their scales), so the
// matrix kernels can run whole tiles without a tail.
#include "common.cuh"

// qi_quant_q8_0 is llama.cpp's AVX2 quantize_row_q8_0: d = amax/127 (kept
// as fp16), id = 127/amax (0 for an all-zero block), q = x*id rounded half
// to even, saturated to int8.
// Grid (ceil(kpad/256), ntok), 256 threads: warp w of block x quantizes
// block 8x+w of token y.
QI_ENTRY(256) qi_quant_q8_0(const float* x, i64 ldx, i64 cols, i64 kpad, int8_t* xq, float* xd) {
  const i64 t = blockIdx.y;
  const i64 b = (i64)blockIdx.x * 8 + qi_warp();
  if (b * 32 >= kpad) return;
  const int lane = qi_lane();
  int8_t* q = xq + t * kpad + b * 32;
  float* d = xd + t * (kpad / 32) + b;
  if (b * 32 >= cols) {
    q[lane] = 0;
    if (lane == 0) *d = 0.0f;
    return;
  }
  const float v = x[t * ldx + b * 32 + lane];
  const float amax = qi_warp_max(fabsf(v));
  const float id = amax != 0.0f ? __fdiv_rn(127.0f, amax) : 0.0f;
  const int qv = __float2int_rn(__fmul_rn(v, id));
  q[lane] = (int8_t)max(-128, min(127, qv));
  if (lane == 0) *d = qi_round_h(__fdiv_rn(amax, 127.0f));
}

// qi_quant_q8_k is quantize_row_q8_K_ref: the element of largest magnitude
// (the first on ties) gives iscale = -127/max, q = nearest(iscale*x)
// capped at 127, d = 1/iscale, and the sums of each 16 quants.
// Grid (ceil(cols/2048), ntok), 256 threads: warp w of block x quantizes
// super-block 8x+w of token y; lane l holds elements l+32i, i < 8.
QI_ENTRY(256) qi_quant_q8_k(const float* x, i64 ldx, i64 cols, int8_t* xq, float* xd, int16_t* xbs) {
  const i64 t = blockIdx.y;
  const i64 sb = (i64)blockIdx.x * 8 + qi_warp();
  if (sb * 256 >= cols) return;
  const int lane = qi_lane();
  const float* src = x + t * ldx + sb * 256;
  float v[8];
  float amax = 0.0f;
  int idx = 0x7fffffff;
#pragma unroll
  for (int i = 0; i < 8; i++) {
    v[i] = src[lane + 32 * i];
    const float a = fabsf(v[i]);
    if (amax < a) {
      amax = a;
      idx = lane + 32 * i;
    }
  }
  // Largest magnitude, the lowest element index among equals.
#pragma unroll
  for (int m = 16; m > 0; m >>= 1) {
    const float oa = qi_shfl_xor(amax, m);
    const int oi = qi_shfl_xor(idx, m);
    if (oa > amax || (oa == amax && oi < idx)) {
      amax = oa;
      idx = oi;
    }
  }
  int8_t* q = xq + t * cols + sb * 256;
  int16_t* bs = xbs + t * (cols / 16) + sb * 16;
  if (amax == 0.0f) {
#pragma unroll
    for (int i = 0; i < 8; i++) q[lane + 32 * i] = 0;
    if (lane < 16) bs[lane] = 0;
    if (lane == 0) xd[t * (cols / 256) + sb] = 0.0f;
    return;
  }
  const float maxv = src[idx];
  const float iscale = __fdiv_rn(-127.0f, maxv);
  int qv[8];
#pragma unroll
  for (int i = 0; i < 8; i++) {
    qv[i] = min(127, __float2int_rn(__fmul_rn(iscale, v[i])));
    q[lane + 32 * i] = (int8_t)qv[i];
  }
  // Element lane+32i belongs to sum 2i + lane/16: reduce over half-warps.
#pragma unroll
  for (int i = 0; i < 8; i++) {
    int s = qv[i];
#pragma unroll
    for (int m = 8; m > 0; m >>= 1) s += qi_shfl_xor(s, m);
    if ((lane & 15) == 0) bs[2 * i + lane / 16] = (int16_t)s;
  }
  if (lane == 0) xd[t * (cols / 256) + sb] = __fdiv_rn(1.0f, iscale);
}

// QW_MASK_WORDS is the largest outlier mask qi_quant_w8 stages: rows of
// quant.MaxRowCols (2^17) elements, which the host enforces.
#define QW_MASK_WORDS (131072 / 32)

// qw_outlier reports whether column k is an outlier channel: set in the
// staged mask of a split weight, never without one.
QI_DEV bool qw_outlier(const unsigned* msk, bool split, i64 k) { return split && (msk[k >> 5] >> (k & 31) & 1u) != 0; }

// qi_quant_w8 quantizes each token to int8 with one scale, for every row
// format (W8, FP8, TERNARY, BINARY): quant.QuantizeTokenInt8 when
// act_scale is 0 (dynamic), quant.QuantizeTokenInt8Static with act_scale
// otherwise, with the same float operations, so the bytes and the scale
// are the CPU's:
//   - dynamic: amax = max|x| (NaN if any element is NaN), id = 127/amax,
//     d = amax/127; a token whose amax is not > 0 (zero, NaN) or whose id
//     overflows to infinity (amax below 127/FLT_MAX, ~3.7e-37) gets zero
//     codes and d = 0.
//     An infinite element gives amax = inf, id = 0, d = inf.
//   - static: d = act_scale, id = 1/act_scale (the host checked both are
//     finite, quant.CheckActScale).
//   - q = qi_w8_code(x, id): the product, the clamp to ±127 (NaN to -127),
//     rounding halfway cases to even.
// A weight split into outlier columns (LLM.int8(), docs/formats.md)
// passes omask, bit c%32 of word c/32 set for each outlier column c (kpad/32
// words), and its nout columns ocols: those channels are left out of
// max|x| and get code 0 (quant.QuantizeTokenInt8Split and
// quant.QuantizeTokenInt8StaticSplit; the other codes do not depend on
// them once id is known), and their values are copied to xo[j][t] (row
// stride ldxo), which qi_outlier_add reads. The mask is staged in shared
// memory first, with every word's load in flight at once: a decode step
// finds it in DRAM. A null omask is the unsplit definition above,
// unchanged.
// Grid (ntok), 256 threads.
QI_ENTRY(256) qi_quant_w8(const float* x, i64 ldx, i64 cols, i64 kpad, float act_scale, const unsigned* omask,
                          const int* ocols, i64 nout, float* xo, i64 ldxo, int8_t* xq, float* xd) {
  __shared__ float red[8];
  __shared__ unsigned msk[QW_MASK_WORDS];
  const i64 t = blockIdx.x;
  const float* src = x + t * ldx;
  const bool split = omask != nullptr;
  if (split) {
    for (i64 i = threadIdx.x; i < kpad / 32; i += 256) msk[i] = (unsigned)qi_ld4(omask + i);
    for (i64 j = threadIdx.x; j < nout; j += 256) xo[j * ldxo + t] = src[qi_ldi(ocols + j)];
    QI_SYNC();
  }
  float id, d;
  bool zero = false;
  if (act_scale > 0.0f) {
    d = act_scale;
    id = __fdiv_rn(1.0f, act_scale);
  } else {
    float amax = 0.0f;
    for (i64 k = threadIdx.x; k < cols; k += 256) {
      // Skipped, not zeroed: a NaN or an infinity in an outlier channel
      // must not reach the scale.
      if (!qw_outlier(msk, split, k)) amax = qi_max_nan(amax, fabsf(src[k]));
    }
    amax = qi_warp_max_nan(amax);
    if (qi_lane() == 0) red[qi_warp()] = amax;
    QI_SYNC();
    amax = red[0];
#pragma unroll
    for (int w = 1; w < 8; w++) amax = qi_max_nan(amax, red[w]);
    id = __fdiv_rn(127.0f, amax);
    zero = !(amax > 0.0f) || isinf(id);
    d = zero ? 0.0f : __fdiv_rn(amax, 127.0f);
  }
  int8_t* q = xq + t * kpad;
  for (i64 k = threadIdx.x; k < kpad; k += 256)
    q[k] = (int8_t)(k < cols && !zero && !qw_outlier(msk, split, k) ? qi_w8_code(src[k], id) : 0);
  if (threadIdx.x == 0) xd[t] = d;
}

// qi_convert_f16 rounds activations to halves (F16 weights multiply F16
// activations, as llama.cpp's vec_dot_f16). Grid (ceil(kpad/256), ntok).
QI_ENTRY(256) qi_convert_f16(const float* x, i64 ldx, i64 cols, i64 kpad, uint16_t* out) {
  const i64 t = blockIdx.y;
  const i64 k = (i64)blockIdx.x * 256 + threadIdx.x;
  if (k >= kpad) return;
  out[t * kpad + k] = k < cols ? qi_f2h(x[t * ldx + k]) : (uint16_t)0;
}

// qi_convert_f32 copies activations into an aligned, zero-padded buffer.
// Grid (ceil(kpad/256), ntok).
QI_ENTRY(256) qi_convert_f32(const float* x, i64 ldx, i64 cols, i64 kpad, float* out) {
  const i64 t = blockIdx.y;
  const i64 k = (i64)blockIdx.x * 256 + threadIdx.x;
  if (k >= kpad) return;
  out[t * kpad + k] = k < cols ? x[t * ldx + k] : 0.0f;
}
