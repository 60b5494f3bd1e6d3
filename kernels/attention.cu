// qinfer-arch: compute_61 compute_80
//
// Attention over a KV cache in device memory, in four kernels per call:
// store the new K/V rows, scores (KQ, scaled), softmax, and KQV. They
// reproduce the float operations of the CPU backend (fallback/attention.go,
// itself llama.cpp's CPU graph without flash attention): Q rounded to F16
// for an F16 cache, each KQ dot with the lane structure ggml's vec_dot or
// tinyBLAS uses (mode), softmax with ggml_v_expf and double block sums,
// probabilities rounded to F16, each KQV output accumulated over positions
// in the same lanes and reduced the same way. Everything but the order of
// the softmax's double additions is bit-exact.
//
// Cache layout per layer: [seqs][ctx][kvdim] halves or floats; kc/vc point
// at the layer. Per-token positions and sequences come from the batch in
// device memory, so a captured graph replays with new ones; grids are
// sized for the whole context and blocks past a token's position exit.
// Token t's scores live at scores[(t*heads + h)*ctx + j].
#include "common.cuh"

// Scores modes (the CPU picks by batch size and head dimension).
enum {
  KQ_VEC_F16 = 0,   // ggml_vec_dot_f16: 4x8 lanes, reduce32, tail in double
  KQ_TINY_F16 = 1,  // tinyBLAS: 8 lanes, hsum8 (batch >= 2, hd % 8 == 0)
  KQ_VEC_F32 = 2    // ggml_vec_dot_f32: 4x8 lanes, reduce32, tail by FMA
};

// token_slot validates token t's position and sequence; the store kernel
// reports a bad one, the others skip it.
QI_DEV bool token_slot(const int* pos, const int* seq, i64 t, i64 ctx, i64 seqs, int& p, int& s) {
  p = pos[t];
  s = seq[t];
  return p >= 0 && p < ctx && s >= 0 && s < seqs;
}

// qi_kv_store writes k[t], v[t] (converted to halves with round-to-nearest
// -even for an F16 cache) at (seq[t], pos[t]). Grid (ceil(kvdim/256), ntok).
QI_ENTRY(256)
qi_kv_store(const float* k, i64 ldk, const float* v, i64 ldv, const int* pos, const int* seq, void* kc, void* vc,
            i64 kvdim, i64 ctx, i64 seqs, i64 f16, int* status) {
  const i64 t = blockIdx.y, e = (i64)blockIdx.x * 256 + threadIdx.x;
  int p, s;
  if (!token_slot(pos, seq, t, ctx, seqs, p, s)) {
    if (threadIdx.x == 0 && blockIdx.x == 0) {
      if (p < 0 || p >= ctx)
        qi_report(status, QI_ERR_POSITION, (int)t, p, (int)ctx);
      else
        qi_report(status, QI_ERR_SEQUENCE, (int)t, s, (int)seqs);
    }
    return;
  }
  if (e >= kvdim) return;
  const i64 off = ((i64)s * ctx + p) * kvdim + e;
  if (f16) {
    ((uint16_t*)kc)[off] = qi_f2h(k[t * ldk + e]);
    ((uint16_t*)vc)[off] = qi_f2h(v[t * ldv + e]);
  } else {
    ((float*)kc)[off] = k[t * ldk + e];
    ((float*)vc)[off] = v[t * ldv + e];
  }
}

// kv_pair returns elements i, i+1 of a cache row as floats.
QI_DEV float2 kv_pair(const void* base, i64 off, bool f16) {
  if (f16) {
    const unsigned u = (unsigned)qi_ld4((const uint16_t*)base + off);
    return make_float2(qi_h2f((uint16_t)(u & 0xffff)), qi_h2f((uint16_t)(u >> 16)));
  }
  const int2 v = qi_ld8((const float*)base + off);
  return make_float2(__int_as_float(v.x), __int_as_float(v.y));
}

// qi_attn_scores: scores[t][h][j] = (K[j] . Q[t][h]) * scale for j <= pos[t],
// one thread per position. hd <= 256 and even. Grid (ceil(ctx/128), heads,
// ntok), 128 threads.
QI_ENTRY(128)
qi_attn_scores(const float* q, i64 ldq, const void* kc, const int* pos, const int* seq, float* scores, i64 heads,
               i64 group, i64 hd, i64 kvdim, i64 ctx, i64 seqs, i64 mode, float scale) {
  __shared__ float qs[256];
  const i64 t = blockIdx.z, h = blockIdx.y;
  int p, s;
  if (!token_slot(pos, seq, t, ctx, seqs, p, s)) return;
  if ((i64)blockIdx.x * 128 > p) return;
  const bool f16 = mode != KQ_VEC_F32;
  for (i64 i = threadIdx.x; i < hd; i += 128) {
    const float v = q[t * ldq + h * hd + i];
    qs[i] = f16 ? qi_round_h(v) : v;
  }
  QI_SYNC();
  const i64 j = (i64)blockIdx.x * 128 + threadIdx.x;
  if (j > p) return;
  const i64 base = ((i64)s * ctx + j) * kvdim + (h / group) * hd;
  float dot;
  if (mode == KQ_TINY_F16) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (i64 i = 0; i < hd; i += 8) {
#pragma unroll
      for (int l = 0; l < 8; l += 2) {
        const float2 kk = kv_pair(kc, base + i + l, true);
        acc[l] = __fmaf_rn(kk.x, qs[i + l], acc[l]);
        acc[l + 1] = __fmaf_rn(kk.y, qs[i + l + 1], acc[l + 1]);
      }
    }
    dot = qi_hsum8(acc);
  } else {
    float acc[32];
#pragma unroll
    for (int l = 0; l < 32; l++) acc[l] = 0.0f;
    const i64 np = hd & ~(i64)31;
    for (i64 i = 0; i < np; i += 32) {
#pragma unroll
      for (int l = 0; l < 32; l += 2) {
        const float2 kk = kv_pair(kc, base + i + l, f16);
        acc[l] = __fmaf_rn(kk.x, qs[i + l], acc[l]);
        acc[l + 1] = __fmaf_rn(kk.y, qs[i + l + 1], acc[l + 1]);
      }
    }
    if (f16) {
      double sum = (double)qi_reduce32(acc);
      for (i64 i = np; i < hd; i += 2) {
        const float2 kk = kv_pair(kc, base + i, true);
        sum += (double)__fmul_rn(kk.x, qs[i]);
        sum += (double)__fmul_rn(kk.y, qs[i + 1]);
      }
      dot = (float)sum;
    } else {
      float sum = qi_reduce32(acc);
      for (i64 i = np; i < hd; i += 2) {
        const float2 kk = kv_pair(kc, base + i, false);
        sum = __fmaf_rn(kk.x, qs[i], sum);
        sum = __fmaf_rn(kk.y, qs[i + 1], sum);
      }
      dot = sum;
    }
  }
  scores[(t * heads + h) * ctx + j] = __fmul_rn(dot, scale);
}

// qi_attn_softmax turns scores 0..pos[t] into probabilities in place:
// max, v_expf in blocks of 8 (the last one padded with zeros, as
// llama.cpp's KV padding does), block sums (hsum8) added in double, times
// (float)(1/sum), then rounded to F16 for an F16 cache. Grid (heads, ntok),
// 256 threads.
QI_ENTRY(256) qi_attn_softmax(float* scores, const int* pos, const int* seq, i64 heads, i64 ctx, i64 seqs, i64 f16) {
  __shared__ float redf[8];
  __shared__ double redd[8];
  const i64 t = blockIdx.y, h = blockIdx.x;
  int p, s;
  if (!token_slot(pos, seq, t, ctx, seqs, p, s)) return;
  float* row = scores + (t * heads + h) * ctx;
  const i64 n = (i64)p + 1;
  float m = -INFINITY;
  for (i64 j = threadIdx.x; j < n; j += 256) m = fmaxf(m, row[j]);
  m = qi_warp_max(m);
  if (qi_lane() == 0) redf[qi_warp()] = m;
  QI_SYNC();
  m = redf[0];
#pragma unroll
  for (int w = 1; w < 8; w++) m = fmaxf(m, redf[w]);
  double sum = 0.0;
  for (i64 b = threadIdx.x; b * 8 < n; b += 256) {
    float e[8];
#pragma unroll
    for (int l = 0; l < 8; l++) {
      const i64 j = 8 * b + l;
      e[l] = j < n ? qi_vexpf(__fsub_rn(row[j], m)) : 0.0f;
      if (j < n) row[j] = e[l];
    }
    sum += (double)qi_hsum8(e);
  }
  sum = qi_warp_sum(sum);
  if (qi_lane() == 0) redd[qi_warp()] = sum;
  QI_SYNC();
  sum = 0.0;
#pragma unroll
  for (int w = 0; w < 8; w++) sum += redd[w];
  const float inv = (float)(1.0 / sum);
  for (i64 j = threadIdx.x; j < n; j += 256) {
    const float pj = __fmul_rn(row[j], inv);
    row[j] = f16 ? qi_round_h(pj) : pj;
  }
}

// qi_attn_pv: out[t][h*hd + i] = sum over j <= pos of P[j] * V[j][i], with
// position j accumulated in lane j % L (L = 8 when lanes8, else 32) and the
// lanes reduced as ggml does (hsum8 or reduce32). Thread (i, g) of a block
// covers dimension i and lanes g*L/8 .. g*L/8 + L/8 - 1. Grid (ceil(hd/32),
// heads, ntok), 256 threads.
QI_ENTRY(256)
qi_attn_pv(const float* scores, const void* vc, const int* pos, const int* seq, float* out, i64 ldo, i64 heads,
           i64 group, i64 hd, i64 kvdim, i64 ctx, i64 seqs, i64 f16, i64 lanes8) {
  __shared__ float red[32][33];
  const i64 t = blockIdx.z, h = blockIdx.y;
  int p, s;
  if (!token_slot(pos, seq, t, ctx, seqs, p, s)) return;
  const int di = threadIdx.x & 31, lg = threadIdx.x >> 5;
  const i64 i = (i64)blockIdx.x * 32 + di;
  const int L = lanes8 ? 8 : 32, per = L / 8;
  const i64 n = (i64)p + 1;
  const float* prob = scores + (t * heads + h) * ctx;
  const i64 base = (i64)s * ctx * kvdim + (h / group) * hd + i;
  if (i < hd) {
    for (int u = 0; u < per; u++) {
      const int l = lg * per + u;
      float acc = 0.0f;
      for (i64 j = l; j < n; j += L) {
        const i64 off = base + j * kvdim;
        if (f16) {
          acc = __fadd_rn(acc, __fmul_rn(qi_h2f(qi_ld2((const uint16_t*)vc + off)), prob[j]));
        } else {
          acc = __fmaf_rn(qi_ldf((const float*)vc + off), prob[j], acc);
        }
      }
      red[l][di] = acc;
    }
  }
  QI_SYNC();
  if (lg == 0 && i < hd) {
    float r;
    if (lanes8) {
      float a[8];
#pragma unroll
      for (int l = 0; l < 8; l++) a[l] = red[l][di];
      r = qi_hsum8(a);
    } else {
      float a[32];
#pragma unroll
      for (int l = 0; l < 32; l++) a[l] = red[l][di];
      r = qi_reduce32(a);
    }
    out[t * ldo + h * hd + i] = r;
  }
}
