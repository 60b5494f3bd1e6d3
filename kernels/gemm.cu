// qinfer-arch: compute_61 compute_80
//
// Matrix-matrix products for prompt processing and batched decode:
// y[t][row] = dot(weight row, activation row t). A block computes a tile of
// BM weight rows x BN tokens, walking k in stages of 64 through shared
// memory, double-buffered: raw int8 rows (Q8_0, W8 weights; every
// activation) travel by cp.async on sm_80+, packed formats are loaded into
// registers during the previous stage's math and unpacked into int8 tiles
// in natural element order, with their per-group scales beside them.
//
// The math runs on int8 tensor cores (mma.sync m16n8k32, m16n8k16 for
// Q6_K's 16-element scales) when compiled for compute_80, and with dp4a
// on older devices (the compute_61 PTX): both produce the exact int32 sum
// of each 32-element group (16 for Q6_K), which is then scaled in float as
// the CPU does. W8 sums whole rows in int32 and scales once at the end.
//
// Shared-memory rows are 80 bytes (64 + 16 of padding): eight consecutive
// rows then fall in distinct 16-byte bank groups, so ldmatrix, the dp4a
// path's 16-byte loads and the cp.async stores are free of conflicts.
// Layouts: cuda/upload.go (weights), quantize.cu (activations). Tails in
// rows and tokens are handled by clamping loads and guarding stores; k is
// padded (kpad) with zeros at upload and quantization.
#include "common.cuh"

#define GM_BK 64
#define GM_LDS 80

enum { F_Q8_0 = 0, F_Q4_0 = 1, F_Q4_K = 2, F_Q5_K = 3, F_Q6_K = 4 };

// ---- block-scaled formats: 128 rows x 64 tokens, 8 warps as 4 x 2 ----

#define BS_BM 128
#define BS_BN 64

struct BsSmem {
  int8_t a[2][BS_BM][GM_LDS];
  int8_t b[2][BS_BN][GM_LDS];
  float sa[2][BS_BM][4];  // weight scale per group (Q6_K: per 16-element half)
  float ma[2][BS_BM][2];  // weight min per group (Q4_K, Q5_K)
  float sb[2][BS_BN][2];  // activation scale per group
  float mb[2][BS_BN][2];  // activation scale times group sum (Q4_K, Q5_K)
};

// BsRegs is what one thread loads during a stage for the next: one
// 32-element group of one weight row (packed formats) with its scales,
// and, for threads < 128, one token's group scales.
struct BsRegs {
  int4 w;
  int qh0, qh1;
  float sa0, sa1, ma;
  float sb, mb;
};

struct BsArgs {
  const uint8_t* wq;    // Q8_0, W8: int8 rows; others: nibble groups
  const uint8_t* wqh;   // Q5_K: u32 per group; Q6_K: 8 bytes per group
  const uint16_t* wsc;  // Q8_0, Q4_0: fp16 d per group; K4: sc|m<<8; Q6_K: two int8 scales
  const uint32_t* wsb;  // K4: d|dmin<<16 per super-block; Q6_K: fp16 d per super-block (u16 array)
  const int8_t* xq;
  const float* xd;
  const int16_t* xbs;
  float* y;
  i64 ldy, rows, cols, kpad, ntok;
};

template <int F>
QI_DEV void bs_load_regs(const BsArgs& p, BsRegs& r, i64 row, i64 tok, int kg, int kt, bool tok_item) {
  const i64 gi = (i64)kt * 2 + kg;  // 32-element group index within the row
  const i64 ng = p.kpad / 32;
  if (F == F_Q8_0) {
    r.sa0 = qi_h2f(qi_ld2(p.wsc + row * ng + gi));
  } else if (F == F_Q4_0) {
    r.w = qi_ld16(p.wq + row * (p.kpad / 2) + gi * 16);
    r.sa0 = qi_h2f(qi_ld2(p.wsc + row * ng + gi));
  } else if (F == F_Q4_K || F == F_Q5_K) {
    r.w = qi_ld16(p.wq + row * (p.kpad / 2) + gi * 16);
    if (F == F_Q5_K) r.qh0 = qi_ld4(p.wqh + (row * ng + gi) * 4);
    const unsigned sm = qi_ld2(p.wsc + row * ng + gi);
    const unsigned dm = (unsigned)qi_ld4(p.wsb + row * (p.kpad / 256) + gi / 8);
    r.sa0 = __fmul_rn(qi_h2f((uint16_t)(dm & 0xffff)), (float)(sm & 0xff));
    r.ma = __fmul_rn(qi_h2f((uint16_t)(dm >> 16)), (float)(sm >> 8));
  } else {  // F_Q6_K
    r.w = qi_ld16(p.wq + row * (p.kpad / 2) + gi * 16);
    const int2 h = qi_ld8(p.wqh + row * (p.kpad / 4) + gi * 8);
    r.qh0 = h.x;
    r.qh1 = h.y;
    const unsigned sc = qi_ld2(p.wsc + row * ng + gi);
    const float d = qi_h2f(qi_ld2((const uint16_t*)p.wsb + row * (p.kpad / 256) + gi / 8));
    r.sa0 = __fmul_rn(d, (float)(int8_t)(sc & 0xff));
    r.sa1 = __fmul_rn(d, (float)(int8_t)(sc >> 8));
  }
  if (tok_item) {
    if (F == F_Q8_0 || F == F_Q4_0) {
      r.sb = qi_ldf(p.xd + tok * ng + gi);
    } else {
      r.sb = qi_ldf(p.xd + tok * (p.kpad / 256) + gi / 8);
      if (F != F_Q6_K) {
        const int bs = qi_ld4(p.xbs + tok * (p.kpad / 16) + 2 * gi);
        const int bsum = (int)(int16_t)(bs & 0xffff) + (int)(int16_t)((unsigned)bs >> 16);
        r.mb = __fmul_rn(r.sb, (float)bsum);
      }
    }
  }
}

template <int F>
QI_DEV void bs_store_regs(BsSmem& sm, const BsRegs& r, int buf, int arow, int kg, int srow, bool tok_item) {
  if (F != F_Q8_0) {
    int lo[4], hi[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int v = j == 0 ? r.w.x : j == 1 ? r.w.y : j == 2 ? r.w.z : r.w.w;
      lo[j] = v & 0x0F0F0F0F;
      hi[j] = (v >> 4) & 0x0F0F0F0F;
      if (F == F_Q4_0) {
        lo[j] = qi_sub8(lo[j]);
        hi[j] = qi_sub8(hi[j]);
      } else if (F == F_Q5_K) {
        lo[j] |= (int)((((unsigned)r.qh0 >> j) & 0x01010101u) << 4);
        hi[j] |= (int)((((unsigned)r.qh0 >> (4 + j)) & 0x01010101u) << 4);
      } else if (F == F_Q6_K) {
        lo[j] = qi_sub32(lo[j] | (int)((((unsigned)r.qh0 >> (2 * j)) & 0x03030303u) << 4));
        hi[j] = qi_sub32(hi[j] | (int)((((unsigned)r.qh1 >> (2 * j)) & 0x03030303u) << 4));
      }
    }
    int4* dst = (int4*)&sm.a[buf][arow][kg * 32];
    dst[0] = make_int4(lo[0], lo[1], lo[2], lo[3]);
    dst[1] = make_int4(hi[0], hi[1], hi[2], hi[3]);
  }
  if (F == F_Q6_K) {
    sm.sa[buf][arow][2 * kg] = r.sa0;
    sm.sa[buf][arow][2 * kg + 1] = r.sa1;
  } else {
    sm.sa[buf][arow][kg] = r.sa0;
  }
  if (F == F_Q4_K || F == F_Q5_K) sm.ma[buf][arow][kg] = r.ma;
  if (tok_item) {
    sm.sb[buf][srow][kg] = r.sb;
    if (F == F_Q4_K || F == F_Q5_K) sm.mb[buf][srow][kg] = r.mb;
  }
}

// bs_load_async starts the cp.async copies of a stage: the activation
// tile (64 tokens x 64 bytes, one 16-byte chunk per thread) and, for Q8_0,
// the weight tile (128 rows x 64 bytes, two chunks per thread).
template <int F>
QI_DEV void bs_load_async(const BsArgs& p, BsSmem& sm, int buf, int kt, i64 row_base, i64 tok_base) {
  const int tid = threadIdx.x;
  const i64 k0 = (i64)kt * GM_BK;
  {
    const int t = tid >> 2, c = tid & 3;
    const i64 tok = min(tok_base + t, p.ntok - 1);
    qi_cp16(&sm.b[buf][t][c * 16], p.xq + tok * p.kpad + k0 + c * 16);
  }
  if (F == F_Q8_0) {
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const int ch = tid + 256 * i;
      const int r = ch >> 2, c = ch & 3;
      const i64 row = min(row_base + r, p.rows - 1);
      qi_cp16(&sm.a[buf][r][c * 16], p.wq + row * p.kpad + k0 + c * 16);
    }
  }
}

template <int F>
QI_DEV void gemm_bs(const BsArgs& p) {
  __shared__ __align__(16) BsSmem sm;
  const int tid = threadIdx.x;
  const i64 row_base = (i64)blockIdx.x * BS_BM, tok_base = (i64)blockIdx.y * BS_BN;
  // Register-staged item of this thread: group kg of tile row arow, and
  // for the first 128 threads group kg of tile token srow.
  const int arow = tid >> 1, kg_item = tid & 1, srow = tid >> 1;
  const bool tok_item = tid < 2 * BS_BN;
  const i64 grow = min(row_base + arow, p.rows - 1);
  const i64 gtok = min(tok_base + srow, p.ntok - 1);
  const int nk = (int)(p.kpad / GM_BK);

  float acc[32];
#pragma unroll
  for (int i = 0; i < 32; i++) acc[i] = 0.0f;

  BsRegs regs;
  bs_load_async<F>(p, sm, 0, 0, row_base, tok_base);
  bs_load_regs<F>(p, regs, grow, gtok, kg_item, 0, tok_item);
  bs_store_regs<F>(sm, regs, 0, arow, kg_item, srow, tok_item);
  qi_cp_commit();

  const int lane = qi_lane(), warp = qi_warp();
  for (int kt = 0; kt < nk; kt++) {
    const int cur = kt & 1;
    if (kt + 1 < nk) {
      bs_load_async<F>(p, sm, cur ^ 1, kt + 1, row_base, tok_base);
      bs_load_regs<F>(p, regs, grow, gtok, kg_item, kt + 1, tok_item);
    }
    qi_cp_commit();
    qi_cp_wait1();
    QI_SYNC();
#ifdef QI_HAVE_MMA
    {
      const int wm = warp >> 1, wn = warp & 1;
      const int g = lane >> 2, t = lane & 3;
#pragma unroll
      for (int kg = 0; kg < 2; kg++) {
        int a[2][4], b[4][2];
#pragma unroll
        for (int mi = 0; mi < 2; mi++)
          qi_ldsm_x4(a[mi], &sm.a[cur][wm * 32 + mi * 16 + (lane & 15)][kg * 32 + (lane >> 4) * 16]);
#pragma unroll
        for (int np = 0; np < 2; np++) {
          int r[4];
          qi_ldsm_x4(r, &sm.b[cur][wn * 32 + np * 16 + (lane & 7) + ((lane >> 4) << 3)][kg * 32 + ((lane >> 3) & 1) * 16]);
          b[2 * np][0] = r[0];
          b[2 * np][1] = r[1];
          b[2 * np + 1][0] = r[2];
          b[2 * np + 1][1] = r[3];
        }
        float sA[2][2][2], mA[2][2], sB[4][2], mB[4][2];
#pragma unroll
        for (int mi = 0; mi < 2; mi++) {
#pragma unroll
          for (int h = 0; h < 2; h++) {
            const int row = wm * 32 + mi * 16 + g + 8 * h;
            if (F == F_Q6_K) {
              sA[mi][h][0] = sm.sa[cur][row][2 * kg];
              sA[mi][h][1] = sm.sa[cur][row][2 * kg + 1];
            } else {
              sA[mi][h][0] = sm.sa[cur][row][kg];
            }
            if (F == F_Q4_K || F == F_Q5_K) mA[mi][h] = sm.ma[cur][row][kg];
          }
        }
#pragma unroll
        for (int ni = 0; ni < 4; ni++) {
#pragma unroll
          for (int e = 0; e < 2; e++) {
            const int tok = wn * 32 + ni * 8 + 2 * t + e;
            sB[ni][e] = sm.sb[cur][tok][kg];
            if (F == F_Q4_K || F == F_Q5_K) mB[ni][e] = sm.mb[cur][tok][kg];
          }
        }
#pragma unroll
        for (int mi = 0; mi < 2; mi++) {
#pragma unroll
          for (int ni = 0; ni < 4; ni++) {
            float* ac = &acc[(mi * 4 + ni) * 4];
            if (F == F_Q6_K) {
              int c0[4] = {0, 0, 0, 0}, c1[4] = {0, 0, 0, 0};
              qi_mma_k16(c0, a[mi][0], a[mi][1], b[ni][0]);
              qi_mma_k16(c1, a[mi][2], a[mi][3], b[ni][1]);
#pragma unroll
              for (int e = 0; e < 4; e++) {
                const float sb = sB[ni][e & 1];
                ac[e] += __fmul_rn(sA[mi][e >> 1][0], sb) * (float)c0[e] + __fmul_rn(sA[mi][e >> 1][1], sb) * (float)c1[e];
              }
            } else {
              int c[4] = {0, 0, 0, 0};
              qi_mma_k32(c, a[mi], b[ni]);
#pragma unroll
              for (int e = 0; e < 4; e++) {
                ac[e] += __fmul_rn(sA[mi][e >> 1][0], sB[ni][e & 1]) * (float)c[e];
                if (F == F_Q4_K || F == F_Q5_K) ac[e] -= mA[mi][e >> 1] * mB[ni][e & 1];
              }
            }
          }
        }
      }
    }
#else
    {
      const int ty = tid >> 4, tx = tid & 15;
#pragma unroll
      for (int kg = 0; kg < 2; kg++) {
        int4 bv[4][2];
#pragma unroll
        for (int j = 0; j < 4; j++) {
          const int4* src = (const int4*)&sm.b[cur][tx + 16 * j][kg * 32];
          bv[j][0] = src[0];
          bv[j][1] = src[1];
        }
#pragma unroll
        for (int i = 0; i < 8; i++) {
          const int row = ty + 16 * i;
          const int4* src = (const int4*)&sm.a[cur][row][kg * 32];
          const int4 a0 = src[0], a1 = src[1];
          float sa0, sa1 = 0.0f, ma = 0.0f;
          if (F == F_Q6_K) {
            sa0 = sm.sa[cur][row][2 * kg];
            sa1 = sm.sa[cur][row][2 * kg + 1];
          } else {
            sa0 = sm.sa[cur][row][kg];
          }
          if (F == F_Q4_K || F == F_Q5_K) ma = sm.ma[cur][row][kg];
#pragma unroll
          for (int j = 0; j < 4; j++) {
            const int tok = tx + 16 * j;
            const float sb = sm.sb[cur][tok][kg];
            float* ac = &acc[i * 4 + j];
            if (F == F_Q6_K) {
              int c0 = qi_dp4a(a0.x, bv[j][0].x, 0);
              c0 = qi_dp4a(a0.y, bv[j][0].y, c0);
              c0 = qi_dp4a(a0.z, bv[j][0].z, c0);
              c0 = qi_dp4a(a0.w, bv[j][0].w, c0);
              int c1 = qi_dp4a(a1.x, bv[j][1].x, 0);
              c1 = qi_dp4a(a1.y, bv[j][1].y, c1);
              c1 = qi_dp4a(a1.z, bv[j][1].z, c1);
              c1 = qi_dp4a(a1.w, bv[j][1].w, c1);
              *ac += __fmul_rn(sa0, sb) * (float)c0 + __fmul_rn(sa1, sb) * (float)c1;
            } else {
              int c = qi_dp4a(a0.x, bv[j][0].x, 0);
              c = qi_dp4a(a0.y, bv[j][0].y, c);
              c = qi_dp4a(a0.z, bv[j][0].z, c);
              c = qi_dp4a(a0.w, bv[j][0].w, c);
              c = qi_dp4a(a1.x, bv[j][1].x, c);
              c = qi_dp4a(a1.y, bv[j][1].y, c);
              c = qi_dp4a(a1.z, bv[j][1].z, c);
              c = qi_dp4a(a1.w, bv[j][1].w, c);
              *ac += __fmul_rn(sa0, sb) * (float)c;
              if (F == F_Q4_K || F == F_Q5_K) *ac -= ma * sm.mb[cur][tok][kg];
            }
          }
        }
      }
    }
#endif
    QI_SYNC();
    if (kt + 1 < nk) bs_store_regs<F>(sm, regs, cur ^ 1, arow, kg_item, srow, tok_item);
  }

  // Store: each accumulator's (row, token) as the math above laid it out.
#ifdef QI_HAVE_MMA
  const int wm = warp >> 1, wn = warp & 1, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int i = 0; i < 32; i++) {
    const int mi = i >> 4, ni = (i >> 2) & 3, e = i & 3;
    const i64 row = row_base + wm * 32 + mi * 16 + g + 8 * (e >> 1);
    const i64 tok = tok_base + wn * 32 + ni * 8 + 2 * t + (e & 1);
    if (row < p.rows && tok < p.ntok) p.y[tok * p.ldy + row] = acc[i];
  }
#else
  const int ty = tid >> 4, tx = tid & 15;
#pragma unroll
  for (int i = 0; i < 32; i++) {
    const i64 row = row_base + ty + 16 * (i >> 2);
    const i64 tok = tok_base + tx + 16 * (i & 3);
    if (row < p.rows && tok < p.ntok) p.y[tok * p.ldy + row] = acc[i];
  }
#endif
}

#define GEMM_BS(name, F)                                                                                        \
  QI_ENTRY(256)                                                                                                 \
  name(const uint8_t* wq, const uint8_t* wqh, const uint16_t* wsc, const uint32_t* wsb, const int8_t* xq,      \
       const float* xd, const int16_t* xbs, float* y, i64 ldy, i64 rows, i64 cols, i64 kpad, i64 ntok) {        \
    BsArgs p = {wq, wqh, wsc, wsb, xq, xd, xbs, y, ldy, rows, cols, kpad, ntok};                                \
    gemm_bs<F>(p);                                                                                              \
  }
GEMM_BS(qi_gemm_q8_0, F_Q8_0)
GEMM_BS(qi_gemm_q4_0, F_Q4_0)
GEMM_BS(qi_gemm_q4_k, F_Q4_K)
GEMM_BS(qi_gemm_q5_k, F_Q5_K)
GEMM_BS(qi_gemm_q6_k, F_Q6_K)

// ---- W8: BM rows x 128 tokens, int32 accumulation over the whole row;
// 8 warps as 2 x 4, each BM/2 rows x 32 tokens. BM is 128, or 64 when
// 128-row tiles would leave multiprocessors idle (few tokens). ----

template <int BM>
struct W8Smem {
  int8_t a[2][BM][GM_LDS];
  int8_t b[2][128][GM_LDS];
};

template <int BM>
QI_DEV void w8_load_async(const int8_t* wq, const int8_t* xq, W8Smem<BM>& sm, int buf, int kt, i64 row_base,
                          i64 tok_base, i64 rows, i64 ntok, i64 kpad) {
  const int tid = threadIdx.x;
  const i64 k0 = (i64)kt * GM_BK;
#pragma unroll
  for (int i = 0; i < 2; i++) {
    const int ch = tid + 256 * i;
    const int r = ch >> 2, c = ch & 3;
    if (r < BM) qi_cp16(&sm.a[buf][r][c * 16], wq + min(row_base + r, rows - 1) * kpad + k0 + c * 16);
    qi_cp16(&sm.b[buf][r][c * 16], xq + min(tok_base + r, ntok - 1) * kpad + k0 + c * 16);
  }
}

template <int BM>
QI_DEV void gemm_w8(const int8_t* wq, const float* ws, const int8_t* xq, const float* xd, float* y, i64 ldy, i64 rows,
                    i64 kpad, i64 ntok) {
  constexpr int MI = BM / 32;     // 16-row mma tiles per warp (mma path)
  constexpr int RT = BM / 16;     // rows per thread (dp4a path)
  constexpr int NACC = BM / 2;    // accumulators per thread: 64 or 32
  __shared__ __align__(16) W8Smem<BM> sm;
  const int lane = qi_lane(), warp = qi_warp();
  const i64 row_base = (i64)blockIdx.x * BM, tok_base = (i64)blockIdx.y * 128;
  const int nk = (int)(kpad / GM_BK);
  int acc[NACC];
#pragma unroll
  for (int i = 0; i < NACC; i++) acc[i] = 0;

  w8_load_async<BM>(wq, xq, sm, 0, 0, row_base, tok_base, rows, ntok, kpad);
  qi_cp_commit();
  for (int kt = 0; kt < nk; kt++) {
    const int cur = kt & 1;
    if (kt + 1 < nk) w8_load_async<BM>(wq, xq, sm, cur ^ 1, kt + 1, row_base, tok_base, rows, ntok, kpad);
    qi_cp_commit();
    qi_cp_wait1();
    QI_SYNC();
#ifdef QI_HAVE_MMA
    {
      const int wm = warp >> 2, wn = warp & 3;
#pragma unroll
      for (int kg = 0; kg < 2; kg++) {
        int b[4][2];
#pragma unroll
        for (int np = 0; np < 2; np++) {
          int r[4];
          qi_ldsm_x4(r, &sm.b[cur][wn * 32 + np * 16 + (lane & 7) + ((lane >> 4) << 3)][kg * 32 + ((lane >> 3) & 1) * 16]);
          b[2 * np][0] = r[0];
          b[2 * np][1] = r[1];
          b[2 * np + 1][0] = r[2];
          b[2 * np + 1][1] = r[3];
        }
        // One A fragment at a time keeps the registers for the accumulators.
#pragma unroll
        for (int mi = 0; mi < MI; mi++) {
          int a[4];
          qi_ldsm_x4(a, &sm.a[cur][wm * (BM / 2) + mi * 16 + (lane & 15)][kg * 32 + (lane >> 4) * 16]);
#pragma unroll
          for (int ni = 0; ni < 4; ni++) qi_mma_k32(&acc[(mi * 4 + ni) * 4], a, b[ni]);
        }
      }
    }
#else
    {
      // RT rows x 8 tokens per thread, one 4-byte word of k at a time: the
      // accumulators stay in registers.
      const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
#pragma unroll 4
      for (int w = 0; w < GM_BK / 4; w++) {
        int a[RT], b[8];
#pragma unroll
        for (int i = 0; i < RT; i++) a[i] = *(const int*)&sm.a[cur][ty + 16 * i][4 * w];
#pragma unroll
        for (int j = 0; j < 8; j++) b[j] = *(const int*)&sm.b[cur][tx + 16 * j][4 * w];
#pragma unroll
        for (int i = 0; i < RT; i++) {
#pragma unroll
          for (int j = 0; j < 8; j++) acc[i * 8 + j] = qi_dp4a(a[i], b[j], acc[i * 8 + j]);
        }
      }
    }
#endif
    QI_SYNC();
  }

#ifdef QI_HAVE_MMA
  const int wm = warp >> 2, wn = warp & 3, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int mi = 0; mi < MI; mi++) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const i64 row = row_base + wm * (BM / 2) + mi * 16 + g + 8 * h;
      if (row >= rows) continue;
      const float sw = qi_ldf(ws + row);
#pragma unroll
      for (int ni = 0; ni < 4; ni++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const i64 tok = tok_base + wn * 32 + ni * 8 + 2 * t + e;
          if (tok < ntok) y[tok * ldy + row] = qi_row_dot(acc[(mi * 4 + ni) * 4 + 2 * h + e], sw, qi_ldf(xd + tok));
        }
      }
    }
  }
#else
  const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
#pragma unroll
  for (int i = 0; i < NACC; i++) {
    const i64 row = row_base + ty + 16 * (i >> 3);
    const i64 tok = tok_base + tx + 16 * (i & 7);
    if (row < rows && tok < ntok) y[tok * ldy + row] = qi_row_dot(acc[i], qi_ldf(ws + row), qi_ldf(xd + tok));
  }
#endif
}

QI_ENTRY_OCC(256, QI_ARCH >= 800 ? 2 : 1)
qi_gemm_w8(const int8_t* wq, const float* ws, const int8_t* xq, const float* xd, float* y, i64 ldy, i64 rows, i64 cols,
           i64 kpad, i64 ntok) {
  gemm_w8<128>(wq, ws, xq, xd, y, ldy, rows, kpad, ntok);
}

QI_ENTRY_OCC(256, 2)
qi_gemm_w8_m64(const int8_t* wq, const float* ws, const int8_t* xq, const float* xd, float* y, i64 ldy, i64 rows,
               i64 cols, i64 kpad, i64 ntok) {
  gemm_w8<64>(wq, ws, xq, xd, y, ldy, rows, kpad, ntok);
}

// ---- F16 and F32 weights: a plain shared-memory tiled FMA product,
// 64 rows x 64 tokens, 4 x 4 outputs per thread (no performance target:
// F16/F32 weights are the small tensors of quantized models) ----

template <bool F16>
QI_DEV float ldw(const void* p, i64 i) {
  if (F16) return qi_h2f(((const uint16_t*)p)[i]);
  return ((const float*)p)[i];
}

template <bool F16>
QI_DEV void gemm_float(const void* w, const void* x, float* y, i64 ldy, i64 rows, i64 kpad, i64 ntok) {
  __shared__ float as[32][68];
  __shared__ float bs[32][68];
  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
  const i64 row_base = (i64)blockIdx.x * 64, tok_base = (i64)blockIdx.y * 64;
  float acc[4][4] = {};
  for (i64 k0 = 0; k0 < kpad; k0 += 32) {
#pragma unroll
    for (int i = 0; i < 8; i++) {
      const int e = tid + 256 * i;
      const int r = e >> 5, k = e & 31;
      const bool in = k0 + k < kpad;
      as[k][r] = in ? ldw<F16>(w, min(row_base + r, rows - 1) * kpad + k0 + k) : 0.0f;
      bs[k][r] = in ? ldw<F16>(x, min(tok_base + r, ntok - 1) * kpad + k0 + k) : 0.0f;
    }
    QI_SYNC();
#pragma unroll 8
    for (int k = 0; k < 32; k++) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; i++) {
        a[i] = as[k][ty * 4 + i];
        b[i] = bs[k][tx * 4 + i];
      }
#pragma unroll
      for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = __fmaf_rn(a[i], b[j], acc[i][j]);
      }
    }
    QI_SYNC();
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const i64 row = row_base + ty * 4 + i, tok = tok_base + tx * 4 + j;
      if (row < rows && tok < ntok) y[tok * ldy + row] = acc[i][j];
    }
  }
}

QI_ENTRY(256) qi_gemm_f16(const void* w, const void* x, float* y, i64 ldy, i64 rows, i64 kpad, i64 ntok) {
  gemm_float<true>(w, x, y, ldy, rows, kpad, ntok);
}

QI_ENTRY(256) qi_gemm_f32(const void* w, const void* x, float* y, i64 ldy, i64 rows, i64 kpad, i64 ntok) {
  gemm_float<false>(w, x, y, ldy, rows, kpad, ntok);
}
