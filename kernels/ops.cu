// qinfer-arch: compute_61 compute_80
//
// Row-wise and elementwise ops on F32 activations (views: a row stride per
// operand), and dequantization of weight rows (embedding gather, reading a
// weight back). Each op follows the float operations of the CPU backend
// (fallback/, which reproduces llama.cpp's CPU numerics); see the comment
// of each kernel for what is bit-exact and what is only close.
#include "common.cuh"

// block_sum_d reduces a double over a 256-thread block; every thread
// receives the total.
QI_DEV double block_sum_d(double v, double* red) {
  v = qi_warp_sum(v);
  if (qi_lane() == 0) red[qi_warp()] = v;
  QI_SYNC();
  double s = 0.0;
#pragma unroll
  for (int w = 0; w < 8; w++) s += red[w];
  QI_SYNC();
  return s;
}

QI_DEV float block_max(float v, float* red) {
  v = qi_warp_max(v);
  if (qi_lane() == 0) red[qi_warp()] = v;
  QI_SYNC();
  float m = red[0];
#pragma unroll
  for (int w = 1; w < 8; w++) m = fmaxf(m, red[w]);
  QI_SYNC();
  return m;
}

// qi_rmsnorm: y = (x * (1/sqrtf(mean(x*x) + eps))) * w, the mean of float
// squares accumulated in double as ggml does (only the order of the double
// additions differs from the CPU). w is F32, or F16 when w_f16 != 0.
// y may be x. Grid (rows), 256 threads.
QI_ENTRY(256)
qi_rmsnorm(const float* x, i64 ldx, const void* w, i64 w_f16, float* y, i64 ldy, i64 cols, float eps) {
  __shared__ double red[8];
  const float* src = x + (i64)blockIdx.x * ldx;
  float* dst = y + (i64)blockIdx.x * ldy;
  double s = 0.0;
  for (i64 k = threadIdx.x; k < cols; k += 256) {
    const float v = src[k];
    s += (double)__fmul_rn(v, v);
  }
  s = block_sum_d(s, red);
  const float mean = (float)(s / (double)cols);
  const float scale = __fdiv_rn(1.0f, sqrtf(__fadd_rn(mean, eps)));
  for (i64 k = threadIdx.x; k < cols; k += 256) {
    const float wk = w_f16 ? qi_h2f(((const uint16_t*)w)[k]) : ((const float*)w)[k];
    dst[k] = __fmul_rn(__fmul_rn(src[k], scale), wk);
  }
}

// qi_rope rotates every head of each token in place by its position, as
// ggml_compute_forward_rope_f32 (ext_factor 0, attn_factor 1): theta of
// pair i is (float)pos multiplied i times by theta_scale in float, the
// angle freq_scale*theta, cos and sin rounded from double; then
// x0' = fma(x0, cos, -(x1*sin)), x1' = fma(x0, sin, x1*cos). Bit-exact.
// Normal mode rotates (2i, 2i+1), NEOX mode (i, i+hd/2).
// Grid (ntok), 128 threads: thread i handles pairs i, i+128, ...
QI_ENTRY(128)
qi_rope(float* x, i64 ldx, const int* pos, i64 heads, i64 hd, float theta_scale, float freq_scale, i64 neox) {
  const i64 t = blockIdx.x;
  float* row = x + t * ldx;
  const float p = (float)pos[t];
  for (i64 i = threadIdx.x; i < hd / 2; i += 128) {
    float theta = p;
    for (i64 k = 0; k < i; k++) theta = __fmul_rn(theta, theta_scale);
    const double a = (double)__fmul_rn(freq_scale, theta);
    const float cs = (float)cos(a), sn = (float)sin(a);
    for (i64 h = 0; h < heads; h++) {
      float* hp = row + h * hd;
      const i64 i0 = neox ? i : 2 * i, i1 = neox ? i + hd / 2 : 2 * i + 1;
      const float x0 = hp[i0], x1 = hp[i1];
      hp[i0] = __fmaf_rn(x0, cs, -__fmul_rn(x1, sn));
      hp[i1] = __fmaf_rn(x0, sn, __fmul_rn(x1, cs));
    }
  }
}

// qi_silu_mul: y = silu(g) * u with ggml_v_silu on each row's whole blocks
// of 8 and libm's expf on the tail, as the CPU backend. Bit-exact. y may be
// g. Grid (ceil(cols/256), rows).
QI_ENTRY(256) qi_silu_mul(const float* g, i64 ldg, const float* u, i64 ldu, float* y, i64 ldy, i64 cols) {
  const i64 r = blockIdx.y;
  const i64 k = (i64)blockIdx.x * 256 + threadIdx.x;
  if (k >= cols) return;
  const float gv = g[r * ldg + k];
  const float e = k < (cols & ~(i64)7) ? qi_vexpf(0.0f - gv) : qi_expf(-gv);
  y[r * ldy + k] = __fmul_rn(__fdiv_rn(gv, __fadd_rn(1.0f, e)), u[r * ldu + k]);
}

// qi_add: y = a + b; ldb = 0 broadcasts b's single row. Grid
// (ceil(cols/256), rows).
QI_ENTRY(256) qi_add(const float* a, i64 lda, const float* b, i64 ldb, float* y, i64 ldy, i64 cols) {
  const i64 r = blockIdx.y;
  const i64 k = (i64)blockIdx.x * 256 + threadIdx.x;
  if (k >= cols) return;
  y[r * ldy + k] = __fadd_rn(a[r * lda + k], b[r * ldb + k]);
}

// qi_softmax normalizes each row in place as ggml_soft_max: max, v_expf
// on whole blocks of 8 and expf on the tail, the block sums (hsum8) added
// in double, then x *= (float)(1/sum). Exponentials are bit-exact; the
// double additions run in a different order than the CPU's. Grid (rows),
// 256 threads.
QI_ENTRY(256) qi_softmax(float* x, i64 ldx, i64 cols) {
  __shared__ float redf[8];
  __shared__ double redd[8];
  float* row = x + (i64)blockIdx.x * ldx;
  float m = -INFINITY;
  for (i64 k = threadIdx.x; k < cols; k += 256) m = fmaxf(m, row[k]);
  m = block_max(m, redf);
  const i64 nb = cols / 8;
  double s = 0.0;
  for (i64 b = threadIdx.x; b < nb; b += 256) {
    float e[8];
#pragma unroll
    for (int l = 0; l < 8; l++) {
      e[l] = qi_vexpf(__fsub_rn(row[8 * b + l], m));
      row[8 * b + l] = e[l];
    }
    s += (double)qi_hsum8(e);
  }
  for (i64 k = nb * 8 + threadIdx.x; k < cols; k += 256) {
    const float e = qi_expf(__fsub_rn(row[k], m));
    row[k] = e;
    s += (double)e;
  }
  s = block_sum_d(s, redd);
  const float inv = (float)(1.0 / s);
  for (i64 k = threadIdx.x; k < cols; k += 256) row[k] = __fmul_rn(row[k], inv);
}

// qi_gather_rows: dst[i] = src[idx[i]] for i < *count (the batch's output
// count, read at run time so that a captured graph follows it). Rows past
// the count are left alone. Grid (ceil(cols/256), dst rows).
QI_ENTRY(256)
qi_gather_rows(const float* src, i64 lds, i64 nsrc, const int* idx, const int* count, float* dst, i64 ldd, i64 cols,
               int* status) {
  const i64 i = blockIdx.y;
  if (i >= *count) return;
  const int r = idx[i];
  if (r < 0 || r >= nsrc) {
    if (threadIdx.x == 0 && blockIdx.x == 0) qi_report(status, QI_ERR_OUTPUT_ROW, (int)i, r, (int)nsrc);
    return;
  }
  const i64 k = (i64)blockIdx.x * 256 + threadIdx.x;
  if (k < cols) dst[i * ldd + k] = src[(i64)r * lds + k];
}

// ---- dequantization: y[i] = row ids[i] (or row i when ids is null) of a
// weight in its device layout (cuda/upload.go), with the float operations
// of quant.Dequantize, so the result is bit-exact. Grid (ceil(cols/256), n). ----

// dq_row validates the row of output i; a bad id is reported and skipped.
QI_DEV i64 dq_row(const int* ids, i64 i, i64 rows, int* status) {
  const i64 r = ids ? (i64)ids[i] : i;
  if (r < 0 || r >= rows) {
    if (threadIdx.x == 0 && blockIdx.x == 0) qi_report(status, QI_ERR_TOKEN_ID, (int)i, (int)r, (int)rows);
    return -1;
  }
  return r;
}

// nib returns the 4-bit value of element p (0..31) of a 16-byte group in
// Q4_0 nibble order.
QI_DEV int nib(const uint8_t* grp, int p) { return (grp[p & 15] >> ((p >> 4) * 4)) & 15; }

// qi_dequant_float: F32 (w_f16 = 0) or F16 rows of kpad elements.
QI_ENTRY(256)
qi_dequant_float(const void* w, i64 w_f16, const int* ids, float* y, i64 ldy, i64 rows, i64 cols, i64 kpad, int* status) {
  const i64 i = blockIdx.y, k = (i64)blockIdx.x * 256 + threadIdx.x;
  const i64 r = dq_row(ids, i, rows, status);
  if (r < 0 || k >= cols) return;
  y[i * ldy + k] = w_f16 ? qi_h2f(((const uint16_t*)w)[r * kpad + k]) : ((const float*)w)[r * kpad + k];
}

// qi_dequant_q8_0: q*d.
QI_ENTRY(256)
qi_dequant_q8_0(const int8_t* wq, const uint16_t* wd, const int* ids, float* y, i64 ldy, i64 rows, i64 cols, i64 kpad,
                int* status) {
  const i64 i = blockIdx.y, k = (i64)blockIdx.x * 256 + threadIdx.x;
  const i64 r = dq_row(ids, i, rows, status);
  if (r < 0 || k >= cols) return;
  y[i * ldy + k] = __fmul_rn((float)wq[r * kpad + k], qi_h2f(wd[r * (kpad / 32) + k / 32]));
}

// qi_dequant_q4_0: (q-8)*d.
QI_ENTRY(256)
qi_dequant_q4_0(const uint8_t* wq, const uint16_t* wd, const int* ids, float* y, i64 ldy, i64 rows, i64 cols, i64 kpad,
                int* status) {
  const i64 i = blockIdx.y, k = (i64)blockIdx.x * 256 + threadIdx.x;
  const i64 r = dq_row(ids, i, rows, status);
  if (r < 0 || k >= cols) return;
  const int q = nib(wq + r * (kpad / 2) + (k / 32) * 16, (int)(k & 31));
  y[i * ldy + k] = __fmul_rn((float)(q - 8), qi_h2f(wd[r * (kpad / 32) + k / 32]));
}

// qi_dequant_k4: Q4_K (wqh null) and Q5_K: (d*sc)*q - dmin*m.
QI_ENTRY(256)
qi_dequant_k4(const uint8_t* wq, const uint32_t* wqh, const uint16_t* wsm, const uint32_t* wdm, const int* ids, float* y,
              i64 ldy, i64 rows, i64 cols, int* status) {
  const i64 i = blockIdx.y, k = (i64)blockIdx.x * 256 + threadIdx.x;
  const i64 r = dq_row(ids, i, rows, status);
  if (r < 0 || k >= cols) return;
  const i64 g = k / 32;
  const int p = (int)(k & 31);
  int q = nib(wq + r * (cols / 2) + g * 16, p);
  if (wqh) {
    const unsigned h = wqh[r * (cols / 32) + g];
    const int pp = p & 15;
    q |= (int)((h >> (8 * (pp & 3) + 4 * (p >> 4) + (pp >> 2))) & 1) << 4;
  }
  const unsigned sm = wsm[r * (cols / 32) + g], dm = wdm[r * (cols / 256) + k / 256];
  const float d1 = __fmul_rn(qi_h2f((uint16_t)(dm & 0xffff)), (float)(sm & 0xff));
  const float m1 = __fmul_rn(qi_h2f((uint16_t)(dm >> 16)), (float)(sm >> 8));
  y[i * ldy + k] = __fsub_rn(__fmul_rn(d1, (float)q), m1);
}

// qi_dequant_q6_k: (d*sc)*(q-32).
QI_ENTRY(256)
qi_dequant_q6_k(const uint8_t* wql, const uint8_t* wqh, const uint16_t* wsc, const uint16_t* wd, const int* ids, float* y,
                i64 ldy, i64 rows, i64 cols, int* status) {
  const i64 i = blockIdx.y, k = (i64)blockIdx.x * 256 + threadIdx.x;
  const i64 r = dq_row(ids, i, rows, status);
  if (r < 0 || k >= cols) return;
  const i64 g = k / 32;
  const int p = (int)(k & 31), pp = p & 15;
  const int lo = nib(wql + r * (cols / 2) + g * 16, p);
  const uint8_t hb = wqh[r * (cols / 4) + g * 8 + 4 * (p >> 4) + (pp & 3)];
  const int q = lo | (((hb >> (2 * (pp >> 2))) & 3) << 4);
  const int sc = (int)(int8_t)(wsc[r * (cols / 32) + g] >> (8 * (p >> 4)));
  const float d = qi_h2f(wd[r * (cols / 256) + k / 256]);
  y[i * ldy + k] = __fmul_rn(__fmul_rn(d, (float)sc), (float)(q - 32));
}

// qi_dequant_w8: q * row scale.
QI_ENTRY(256)
qi_dequant_w8(const int8_t* wq, const float* ws, const int* ids, float* y, i64 ldy, i64 rows, i64 cols, i64 kpad,
              int* status) {
  const i64 i = blockIdx.y, k = (i64)blockIdx.x * 256 + threadIdx.x;
  const i64 r = dq_row(ids, i, rows, status);
  if (r < 0 || k >= cols) return;
  y[i * ldy + k] = __fmul_rn((float)wq[r * kpad + k], ws[r]);
}
