// qinfer-arch: compute_61 compute_80
//
// Matrix-vector products for decode and small batches (up to 8 tokens):
// y[t][row] = dot(weight row, activation row t) for every weight row and
// t < ntok. Each warp owns R consecutive weight rows; lane l walks the
// 32-element groups l, l+32, ... of those rows with 16-byte loads, so every
// weight byte is read exactly once, while the activations (a few KiB per
// token) come from L1/L2. The weights of R rows share each activation
// load, and each weight load serves up to NT tokens. int8 products use
// dp4a; each group's int32 sum is scaled in float, then the warp reduces.
//
// Weight layouts are cuda/upload.go's (repacked at upload, DESIGN.md
// decision 7); activation layouts are quantize.cu's. Grid: ceil(rows/(8R))
// blocks of 256 threads (8 warps).
#include "common.cuh"

#define GEMV_WARPS 8

// gemv_first_row returns the warp's first row, or -1 when it has none.
QI_DEV i64 gemv_first_row(int R, i64 rows) {
  const i64 row0 = ((i64)blockIdx.x * GEMV_WARPS + qi_warp()) * R;
  return row0 < rows ? row0 : -1;
}

// gemv_store reduces each accumulator over the warp and lets lane r*NT+t
// store row r, token t.
template <int R, int NT>
QI_DEV void gemv_store(float (&acc)[R][NT], float* y, i64 ldy, i64 row0, i64 rows, i64 ntok) {
  const int lane = qi_lane();
#pragma unroll
  for (int r = 0; r < R; r++) {
#pragma unroll
    for (int t = 0; t < NT; t++) {
      const float v = qi_warp_sum(acc[r][t]);
      if (lane == r * NT + t && row0 + r < rows && t < ntok) y[t * ldy + row0 + r] = v;
    }
  }
}

// dot8 is the int32 dot product of 32 int8 values held as two int4.
QI_DEV int dot8(int4 a0, int4 a1, int4 b0, int4 b1) {
  int s = qi_dp4a(a0.x, b0.x, 0);
  s = qi_dp4a(a0.y, b0.y, s);
  s = qi_dp4a(a0.z, b0.z, s);
  s = qi_dp4a(a0.w, b0.w, s);
  s = qi_dp4a(a1.x, b1.x, s);
  s = qi_dp4a(a1.y, b1.y, s);
  s = qi_dp4a(a1.z, b1.z, s);
  return qi_dp4a(a1.w, b1.w, s);
}

QI_DEV int word(const int4& v, int j) { return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w; }

// ---- Q8_0: wq int8 [rows][kpad], wd fp16 [rows][kpad/32] ----

template <int R, int NT>
QI_DEV void gemv_q8_0(const int8_t* wq, const uint16_t* wd, const int8_t* xq, const float* xd, float* y, i64 ldy,
                      i64 rows, i64 cols, i64 kpad, i64 ntok) {
  const i64 row0 = gemv_first_row(R, rows);
  if (row0 < 0) return;
  const int lane = qi_lane();
  const i64 ng = cols / 32, nb = kpad / 32;
  i64 rr[R];
#pragma unroll
  for (int r = 0; r < R; r++) rr[r] = min(row0 + r, rows - 1);
  float acc[R][NT] = {};
#pragma unroll(NT >= 4 ? 1 : 2)
  for (i64 g = lane; g < ng; g += 32) {
    int4 w0[R], w1[R];
    float dw[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
      const int8_t* p = wq + rr[r] * kpad + g * 32;
      w0[r] = qi_ld16(p);
      w1[r] = qi_ld16(p + 16);
      dw[r] = qi_h2f(qi_ld2(wd + rr[r] * nb + g));
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if (t < ntok) {
        const int8_t* px = xq + t * kpad + g * 32;
        const int4 x0 = qi_ld16(px), x1 = qi_ld16(px + 16);
        const float dx = qi_ldf(xd + t * nb + g);
#pragma unroll
        for (int r = 0; r < R; r++) acc[r][t] += __fmul_rn(dw[r], dx) * (float)dot8(w0[r], w1[r], x0, x1);
      }
    }
  }
  gemv_store<R, NT>(acc, y, ldy, row0, rows, ntok);
}

// ---- Q4_0: wq [rows][kpad/2] (16 bytes per block: element j in the low
// nibble of byte j, element j+16 in the high nibble), wd fp16 [rows][kpad/32] ----

// dot_nib is the dot product of 32 4-bit weights (16 bytes, Q4_0 nibble
// order, already offset: lo/hi words given) with 32 int8 activations.
QI_DEV int dot_nib(const int lo[4], const int hi[4], int4 x0, int4 x1) {
  int s = qi_dp4a(lo[0], x0.x, 0);
  s = qi_dp4a(lo[1], x0.y, s);
  s = qi_dp4a(lo[2], x0.z, s);
  s = qi_dp4a(lo[3], x0.w, s);
  s = qi_dp4a(hi[0], x1.x, s);
  s = qi_dp4a(hi[1], x1.y, s);
  s = qi_dp4a(hi[2], x1.z, s);
  return qi_dp4a(hi[3], x1.w, s);
}

template <int R, int NT>
QI_DEV void gemv_q4_0(const uint8_t* wq, const uint16_t* wd, const int8_t* xq, const float* xd, float* y, i64 ldy,
                      i64 rows, i64 cols, i64 kpad, i64 ntok) {
  const i64 row0 = gemv_first_row(R, rows);
  if (row0 < 0) return;
  const int lane = qi_lane();
  const i64 ng = cols / 32, nb = kpad / 32;
  i64 rr[R];
#pragma unroll
  for (int r = 0; r < R; r++) rr[r] = min(row0 + r, rows - 1);
  float acc[R][NT] = {};
#pragma unroll(NT >= 4 ? 1 : 2)
  for (i64 g = lane; g < ng; g += 32) {
    int lo[R][4], hi[R][4];
    float dw[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
      const int4 w = qi_ld16(wq + rr[r] * (kpad / 2) + g * 16);
#pragma unroll
      for (int j = 0; j < 4; j++) {
        lo[r][j] = qi_sub8(word(w, j) & 0x0F0F0F0F);
        hi[r][j] = qi_sub8((word(w, j) >> 4) & 0x0F0F0F0F);
      }
      dw[r] = qi_h2f(qi_ld2(wd + rr[r] * nb + g));
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if (t < ntok) {
        const int8_t* px = xq + t * kpad + g * 32;
        const int4 x0 = qi_ld16(px), x1 = qi_ld16(px + 16);
        const float dx = qi_ldf(xd + t * nb + g);
#pragma unroll
        for (int r = 0; r < R; r++) acc[r][t] += __fmul_rn(dw[r], dx) * (float)dot_nib(lo[r], hi[r], x0, x1);
      }
    }
  }
  gemv_store<R, NT>(acc, y, ldy, row0, rows, ntok);
}

// ---- Q4_K and Q5_K: wq [rows][cols/2] (16 bytes per 32-element group,
// Q4_0 nibble order), wsm u16 [rows][cols/32] (6-bit scale | min << 8),
// wdm u32 [rows][cols/256] (fp16 d | fp16 dmin << 16); Q5_K adds
// wqh u32 [rows][cols/32]: bit 8b+j is the fifth bit of element 4j+b,
// bit 8b+4+j that of element 16+4j+b. Activations are Q8_K. ----

// k4_dot accumulates one 32-element group of a Q4_K/Q5_K row with token t:
// d*sc*sum(q*x) - dmin*m*sum(x), both sums exact integers.
template <bool Q5>
QI_DEV float k4_group(int4 w, unsigned qh, unsigned sm, unsigned dm, int4 x0, int4 x1, float dx, int bsum) {
  int lo[4], hi[4];
#pragma unroll
  for (int j = 0; j < 4; j++) {
    lo[j] = word(w, j) & 0x0F0F0F0F;
    hi[j] = (word(w, j) >> 4) & 0x0F0F0F0F;
    if (Q5) {
      lo[j] |= (int)(((qh >> j) & 0x01010101u) << 4);
      hi[j] |= (int)(((qh >> (4 + j)) & 0x01010101u) << 4);
    }
  }
  const int isum = dot_nib(lo, hi, x0, x1);
  const int sc = (int)(sm & 0xff), m = (int)(sm >> 8);
  const float d = qi_h2f((uint16_t)(dm & 0xffff)), dmin = qi_h2f((uint16_t)(dm >> 16));
  return __fmul_rn(dx, d) * (float)(sc * isum) - __fmul_rn(dx, dmin) * (float)(m * bsum);
}

template <int R, int NT, bool Q5>
QI_DEV void gemv_k4(const uint8_t* wq, const uint32_t* wqh, const uint16_t* wsm, const uint32_t* wdm, const int8_t* xq,
                    const float* xd, const int16_t* xbs, float* y, i64 ldy, i64 rows, i64 cols, i64 ntok) {
  const i64 row0 = gemv_first_row(R, rows);
  if (row0 < 0) return;
  const int lane = qi_lane();
  const i64 ng = cols / 32, nsb = cols / 256;
  i64 rr[R];
#pragma unroll
  for (int r = 0; r < R; r++) rr[r] = min(row0 + r, rows - 1);
  float acc[R][NT] = {};
#pragma unroll(NT >= 4 ? 1 : 2)
  for (i64 g = lane; g < ng; g += 32) {
    int4 w[R];
    unsigned qh[R], sm[R], dm[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
      w[r] = qi_ld16(wq + rr[r] * (cols / 2) + g * 16);
      qh[r] = Q5 ? (unsigned)qi_ld4(wqh + rr[r] * ng + g) : 0u;
      sm[r] = qi_ld2(wsm + rr[r] * ng + g);
      dm[r] = (unsigned)qi_ld4(wdm + rr[r] * nsb + g / 8);
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if (t < ntok) {
        const int8_t* px = xq + t * cols + g * 32;
        const int4 x0 = qi_ld16(px), x1 = qi_ld16(px + 16);
        const float dx = qi_ldf(xd + t * nsb + g / 8);
        const int bs = qi_ld4(xbs + t * (cols / 16) + 2 * g);
        const int bsum = (int)(int16_t)(bs & 0xffff) + (int)(int16_t)((unsigned)bs >> 16);
#pragma unroll
        for (int r = 0; r < R; r++) acc[r][t] += k4_group<Q5>(w[r], qh[r], sm[r], dm[r], x0, x1, dx, bsum);
      }
    }
  }
  gemv_store<R, NT>(acc, y, ldy, row0, rows, ntok);
}

// ---- Q6_K: wql [rows][cols/2] (low 4 bits, Q4_0 nibble order per group),
// wqh [rows][cols/4] (8 bytes per group: word h0 for elements 0..15, h1
// for 16..31; bits 2j..2j+1 of byte b are the high bits of element 4j+b
// of that half), wsc i16 [rows][cols/32] (int8 scales of the group's two
// 16-element halves), wd fp16 [rows][cols/256]. value = d*sc*(q-32). ----

QI_DEV float k6_group(int4 w, int2 qh, unsigned sc, float d, int4 x0, int4 x1, float dx, int bs) {
  int lo[4], hi[4];
#pragma unroll
  for (int j = 0; j < 4; j++) {
    lo[j] = (word(w, j) & 0x0F0F0F0F) | (int)((((unsigned)qh.x >> (2 * j)) & 0x03030303u) << 4);
    hi[j] = ((word(w, j) >> 4) & 0x0F0F0F0F) | (int)((((unsigned)qh.y >> (2 * j)) & 0x03030303u) << 4);
  }
  int s0 = qi_dp4a(lo[0], x0.x, 0);
  s0 = qi_dp4a(lo[1], x0.y, s0);
  s0 = qi_dp4a(lo[2], x0.z, s0);
  s0 = qi_dp4a(lo[3], x0.w, s0);
  int s1 = qi_dp4a(hi[0], x1.x, 0);
  s1 = qi_dp4a(hi[1], x1.y, s1);
  s1 = qi_dp4a(hi[2], x1.z, s1);
  s1 = qi_dp4a(hi[3], x1.w, s1);
  // sum((q-32)*x) = sum(q*x) - 32*sum(x), with Q8_K's sums of 16.
  s0 -= 32 * (int)(int16_t)(bs & 0xffff);
  s1 -= 32 * (int)(int16_t)((unsigned)bs >> 16);
  const int isum = (int)(int8_t)(sc & 0xff) * s0 + (int)(int8_t)(sc >> 8) * s1;
  return __fmul_rn(dx, d) * (float)isum;
}

template <int R, int NT>
QI_DEV void gemv_q6_k(const uint8_t* wql, const uint8_t* wqh, const uint16_t* wsc, const uint16_t* wd, const int8_t* xq,
                      const float* xd, const int16_t* xbs, float* y, i64 ldy, i64 rows, i64 cols, i64 ntok) {
  const i64 row0 = gemv_first_row(R, rows);
  if (row0 < 0) return;
  const int lane = qi_lane();
  const i64 ng = cols / 32, nsb = cols / 256;
  i64 rr[R];
#pragma unroll
  for (int r = 0; r < R; r++) rr[r] = min(row0 + r, rows - 1);
  float acc[R][NT] = {};
#pragma unroll(NT >= 4 ? 1 : 2)
  for (i64 g = lane; g < ng; g += 32) {
    int4 w[R];
    int2 qh[R];
    unsigned sc[R];
    float d[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
      w[r] = qi_ld16(wql + rr[r] * (cols / 2) + g * 16);
      qh[r] = qi_ld8(wqh + rr[r] * (cols / 4) + g * 8);
      sc[r] = qi_ld2(wsc + rr[r] * ng + g);
      d[r] = qi_h2f(qi_ld2(wd + rr[r] * nsb + g / 8));
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if (t < ntok) {
        const int8_t* px = xq + t * cols + g * 32;
        const int4 x0 = qi_ld16(px), x1 = qi_ld16(px + 16);
        const float dx = qi_ldf(xd + t * nsb + g / 8);
        const int bs = qi_ld4(xbs + t * (cols / 16) + 2 * g);
#pragma unroll
        for (int r = 0; r < R; r++) acc[r][t] += k6_group(w[r], qh[r], sc[r], d[r], x0, x1, dx, bs);
      }
    }
  }
  gemv_store<R, NT>(acc, y, ldy, row0, rows, ntok);
}

// ---- W8: wq int8 [rows][kpad], ws float [rows]; activations per-token
// int8 (xd float [ntok]). The whole row sums in int32:
// y = isum * (ws[row] * xd[t]). ----

template <int R, int NT>
QI_DEV void gemv_w8(const int8_t* wq, const float* ws, const int8_t* xq, const float* xd, float* y, i64 ldy, i64 rows,
                    i64 cols, i64 kpad, i64 ntok) {
  const i64 row0 = gemv_first_row(R, rows);
  if (row0 < 0) return;
  const int lane = qi_lane();
  const i64 ng = (cols + 31) / 32;
  i64 rr[R];
#pragma unroll
  for (int r = 0; r < R; r++) rr[r] = min(row0 + r, rows - 1);
  int acc[R][NT] = {};
#pragma unroll(NT >= 4 ? 1 : 2)
  for (i64 g = lane; g < ng; g += 32) {
    int4 w0[R], w1[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
      const int8_t* p = wq + rr[r] * kpad + g * 32;
      w0[r] = qi_ld16(p);
      w1[r] = qi_ld16(p + 16);
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if (t < ntok) {
        const int8_t* px = xq + t * kpad + g * 32;
        const int4 x0 = qi_ld16(px), x1 = qi_ld16(px + 16);
#pragma unroll
        for (int r = 0; r < R; r++) acc[r][t] += dot8(w0[r], w1[r], x0, x1);
      }
    }
  }
  // Exact int32 sums, then one scaling per output (quant.RowScaleDot).
#pragma unroll
  for (int r = 0; r < R; r++) {
#pragma unroll
    for (int t = 0; t < NT; t++) {
      const int v = qi_warp_sum(acc[r][t]);
      if (lane == r * NT + t && row0 + r < rows && t < ntok)
        y[t * ldy + row0 + r] = qi_row_dot(v, qi_ldf(ws + row0 + r), qi_ldf(xd + t));
    }
  }
}

// ---- F16 and F32: w [rows][kpad], activations converted to the same
// type and padding; lane l walks 16-byte chunks l, l+32, ... ----

QI_DEV float dot_h8(int4 a, int4 b, float acc) {
#pragma unroll
  for (int j = 0; j < 4; j++) {
    const unsigned u = (unsigned)word(a, j), v = (unsigned)word(b, j);
    acc = __fmaf_rn(qi_h2f((uint16_t)(u & 0xffff)), qi_h2f((uint16_t)(v & 0xffff)), acc);
    acc = __fmaf_rn(qi_h2f((uint16_t)(u >> 16)), qi_h2f((uint16_t)(v >> 16)), acc);
  }
  return acc;
}

QI_DEV float dot_f4(int4 a, int4 b, float acc) {
#pragma unroll
  for (int j = 0; j < 4; j++) acc = __fmaf_rn(__int_as_float(word(a, j)), __int_as_float(word(b, j)), acc);
  return acc;
}

template <int R, int NT, bool F16>
QI_DEV void gemv_float(const void* w, const void* x, float* y, i64 ldy, i64 rows, i64 kpad, i64 ntok) {
  const i64 row0 = gemv_first_row(R, rows);
  if (row0 < 0) return;
  const int lane = qi_lane();
  const i64 esz = F16 ? 2 : 4;
  const i64 nch = kpad * esz / 16;
  const char* wb = (const char*)w;
  const char* xb = (const char*)x;
  i64 rr[R];
#pragma unroll
  for (int r = 0; r < R; r++) rr[r] = min(row0 + r, rows - 1);
  float acc[R][NT] = {};
#pragma unroll(NT >= 4 ? 1 : 2)
  for (i64 c = lane; c < nch; c += 32) {
    int4 wv[R];
#pragma unroll
    for (int r = 0; r < R; r++) wv[r] = qi_ld16(wb + (rr[r] * kpad * esz) + c * 16);
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if (t < ntok) {
        const int4 xv = qi_ld16(xb + t * kpad * esz + c * 16);
#pragma unroll
        for (int r = 0; r < R; r++) acc[r][t] = F16 ? dot_h8(wv[r], xv, acc[r][t]) : dot_f4(wv[r], xv, acc[r][t]);
      }
    }
  }
  gemv_store<R, NT>(acc, y, ldy, row0, rows, ntok);
}

// ---- entry points: qi_gemv_<format>_t<NT>, two rows per warp ----

#define GEMV_Q8_0(name, R, NT, MINB)                                                                                     \
  QI_ENTRY_OCC(256, MINB)                                                                                          \
  name(const int8_t* wq, const uint16_t* wd, const int8_t* xq, const float* xd, float* y, i64 ldy, i64 rows, i64 cols, \
       i64 kpad, i64 ntok) {                                                                                       \
    gemv_q8_0<R, NT>(wq, wd, xq, xd, y, ldy, rows, cols, kpad, ntok);                                              \
  }
GEMV_Q8_0(qi_gemv_q8_0_t1, 2, 1, 4)
GEMV_Q8_0(qi_gemv_q8_0_t2, 2, 2, 1)
GEMV_Q8_0(qi_gemv_q8_0_t4, 2, 4, 1)
GEMV_Q8_0(qi_gemv_q8_0_t8, 2, 8, 1)
// One and four rows per warp, for the benchmark that tunes the default.
GEMV_Q8_0(qi_gemv_q8_0_t1_r1, 1, 1, 4)
GEMV_Q8_0(qi_gemv_q8_0_t1_r4, 4, 1, 1)

#define GEMV_Q4_0(name, R, NT, MINB)                                                                                      \
  QI_ENTRY_OCC(256, MINB)                                                                                                     \
  name(const uint8_t* wq, const uint16_t* wd, const int8_t* xq, const float* xd, float* y, i64 ldy, i64 rows, i64 cols, \
       i64 kpad, i64 ntok) {                                                                                        \
    gemv_q4_0<R, NT>(wq, wd, xq, xd, y, ldy, rows, cols, kpad, ntok);                                               \
  }
GEMV_Q4_0(qi_gemv_q4_0_t1, 2, 1, 4)
GEMV_Q4_0(qi_gemv_q4_0_t2, 2, 2, 1)
GEMV_Q4_0(qi_gemv_q4_0_t4, 2, 4, 1)
GEMV_Q4_0(qi_gemv_q4_0_t8, 2, 8, 1)

#define GEMV_Q4_K(name, R, NT, MINB)                                                                                        \
  QI_ENTRY_OCC(256, MINB)                                                                                                       \
  name(const uint8_t* wq, const uint16_t* wsm, const uint32_t* wdm, const int8_t* xq, const float* xd,               \
       const int16_t* xbs, float* y, i64 ldy, i64 rows, i64 cols, i64 ntok) {                                         \
    gemv_k4<R, NT, false>(wq, (const uint32_t*)0, wsm, wdm, xq, xd, xbs, y, ldy, rows, cols, ntok);                 \
  }
GEMV_Q4_K(qi_gemv_q4_k_t1, 2, 1, 3)
GEMV_Q4_K(qi_gemv_q4_k_t2, 2, 2, 1)
GEMV_Q4_K(qi_gemv_q4_k_t4, 2, 4, 1)
GEMV_Q4_K(qi_gemv_q4_k_t8, 2, 8, 1)

#define GEMV_Q5_K(name, R, NT, MINB)                                                                                      \
  QI_ENTRY_OCC(256, MINB)                                                                                                     \
  name(const uint8_t* wq, const uint32_t* wqh, const uint16_t* wsm, const uint32_t* wdm, const int8_t* xq,         \
       const float* xd, const int16_t* xbs, float* y, i64 ldy, i64 rows, i64 cols, i64 ntok) {                      \
    gemv_k4<R, NT, true>(wq, wqh, wsm, wdm, xq, xd, xbs, y, ldy, rows, cols, ntok);                                 \
  }
GEMV_Q5_K(qi_gemv_q5_k_t1, 2, 1, 3)
GEMV_Q5_K(qi_gemv_q5_k_t2, 2, 2, 1)
GEMV_Q5_K(qi_gemv_q5_k_t4, 2, 4, 1)
GEMV_Q5_K(qi_gemv_q5_k_t8, 2, 8, 1)

#define GEMV_Q6_K(name, R, NT, MINB)                                                                                       \
  QI_ENTRY_OCC(256, MINB)                                                                                                      \
  name(const uint8_t* wql, const uint8_t* wqh, const uint16_t* wsc, const uint16_t* wd, const int8_t* xq,           \
       const float* xd, const int16_t* xbs, float* y, i64 ldy, i64 rows, i64 cols, i64 ntok) {                       \
    gemv_q6_k<R, NT>(wql, wqh, wsc, wd, xq, xd, xbs, y, ldy, rows, cols, ntok);                                      \
  }
GEMV_Q6_K(qi_gemv_q6_k_t1, 2, 1, 2)
GEMV_Q6_K(qi_gemv_q6_k_t2, 2, 2, 1)
GEMV_Q6_K(qi_gemv_q6_k_t4, 2, 4, 1)
GEMV_Q6_K(qi_gemv_q6_k_t8, 2, 8, 1)

#define GEMV_W8(name, R, NT, MINB)                                                                                       \
  QI_ENTRY_OCC(256, MINB)                                                                                                    \
  name(const int8_t* wq, const float* ws, const int8_t* xq, const float* xd, float* y, i64 ldy, i64 rows, i64 cols, \
       i64 kpad, i64 ntok) {                                                                                       \
    gemv_w8<R, NT>(wq, ws, xq, xd, y, ldy, rows, cols, kpad, ntok);                                                \
  }
GEMV_W8(qi_gemv_w8_t1, 2, 1, 4)
GEMV_W8(qi_gemv_w8_t2, 2, 2, 1)
GEMV_W8(qi_gemv_w8_t4, 2, 4, 1)
GEMV_W8(qi_gemv_w8_t8, 2, 8, 1)

#define GEMV_FLOAT(name, R, NT, F16, MINB)                                                                    \
  QI_ENTRY_OCC(256, MINB)                                                                                         \
  name(const void* w, const void* x, float* y, i64 ldy, i64 rows, i64 kpad, i64 ntok) {                 \
    gemv_float<R, NT, F16>(w, x, y, ldy, rows, kpad, ntok);                                             \
  }
GEMV_FLOAT(qi_gemv_f16_t1, 2, 1, true, 4)
GEMV_FLOAT(qi_gemv_f16_t2, 2, 2, true, 1)
GEMV_FLOAT(qi_gemv_f16_t4, 2, 4, true, 1)
GEMV_FLOAT(qi_gemv_f16_t8, 2, 8, true, 1)
GEMV_FLOAT(qi_gemv_f32_t1, 2, 1, false, 4)
GEMV_FLOAT(qi_gemv_f32_t2, 2, 2, false, 1)
GEMV_FLOAT(qi_gemv_f32_t4, 2, 4, false, 1)
GEMV_FLOAT(qi_gemv_f32_t8, 2, 8, false, 1)
