// qinfer-arch: compute_61 compute_80
//
// The packed row formats FP8 E4M3, TERNARY and BINARY (docs/formats.md):
// codes with one F32 scale per weight row, multiplied by per-token int8
// activations (qi_quant_w8, the layout W8 uses). Every output is
// quant.RowScaleDot of the exact integer sum, bit for bit:
//   - TERNARY and BINARY codes are unpacked to int8 words (-1, 0, +1) in
//     registers and summed with dp4a or int8 mma.sync in int32, which
//     holds rows of up to quant.MaxRowCols elements exactly.
//   - An FP8 code is an integer number u of units of 2^-9, |u| <= 229376.
//     It is split into three signed int8 digits, u = d0 + 256*d1 +
//     65536*d2 (rf_fp8_planes), and each digit plane runs through the
//     same int8 products. Each plane's int32 sum over a whole row is exact
//     (|d| <= 128, |x| <= 127, at most 2^17 elements), and the three
//     combine once per output in int64. This keeps FP8 on dp4a and the
//     int8 tensor cores (3 products per weight instead of 1) with the
//     weights read once at one byte each; an fp16 product would not be
//     exact.
//
// Weight layouts (cuda/upload_layout.go): rows of kpad elements, zero
// (FP8, TERNARY) or -1 (BINARY, against zero activations) past cols:
//   FP8      the E4M3 bytes [kpad]                 (kpad = cols rounded up to 64)
//   TERNARY  [kpad/4]: per 16 elements one word; bits 8b+2i..8b+2i+1
//            hold code+1 of element 4i+b          (kpad = cols rounded up to 64)
//   BINARY   [kpad/8]: per 32 elements one word; bit 8b+i is set when
//            element 4i+b is +1                   (kpad = cols rounded up to 128)
// so that (word >> 2i) & 0x03030303 (TERNARY) and (word >> i) & 0x01010101
// (BINARY) are the codes of elements 4i..4i+3 in byte order: the same
// 4-element words of int8 activations that dp4a and the mma fragments
// pair them with, with no shuffling.
#include "common.cuh"

enum { RF_FP8 = 0, RF_TERN = 1, RF_BIN = 2 };

// RF_PLANES is the number of int8 digit planes a format's codes split into.
#define RF_PLANES(F) ((F) == RF_FP8 ? 3 : 1)

// ---- code unpacking ----

// rf_sub1 subtracts 1 from each byte of a word of values 0..2: each byte
// plus 0x7f stays below 0x100, so no borrow crosses bytes.
QI_DEV int rf_sub1(unsigned v) { return (int)((v + 0x7F7F7F7Fu) ^ 0x80808080u); }

// rf_tern returns the int8 word of elements 4i..4i+3 of a 16-element
// TERNARY word.
QI_DEV int rf_tern(unsigned w, int i) { return rf_sub1((w >> (2 * i)) & 0x03030303u); }

// rf_bin returns the int8 word of elements 4i..4i+3 (i < 8) of a
// 32-element BINARY word: 2*bit - 1 per byte.
QI_DEV int rf_bin(unsigned w, int i) { return rf_sub1(((w >> i) & 0x01010101u) << 1); }

// rf_fp8_units is quant.FP8Units for one code: the value of an E4M3 code
// in units of 2^-9, (8+m) << (e-1) for normal codes, m for subnormal
// ones. The NaN codes never reach the device (the upload rejects them).
QI_DEV int rf_fp8_units(unsigned c) {
  const unsigned e = (c >> 3) & 15u, m = c & 7u;
  const int mag = (int)(e ? (8u | m) << (e - 1) : m);
  return (c & 0x80u) ? -mag : mag;
}

// rf_fp8_planes splits four E4M3 codes (element j in byte j of w) into
// three words of int8 digits, byte j of plane p being digit p of element
// j's units u = ±mm << sh (mm the mantissa with the implicit bit of normal
// codes, sh = max(e-1, 0)). The fields of the four codes are taken apart
// in parallel, one per byte, and the sign is applied to mm (|mm| <= 15)
// before the shift. Then with v = u + 0x8080, u = (b0 - 128) +
// 256*(b1 - 128) + 65536*b2 for the bytes b0, b1 of v and its byte 2 read
// as signed (|v| < 2^23, so the bytes above are its sign extension):
// digits in [-128, 127] and [-3, 4].
QI_DEV void rf_fp8_planes(unsigned w, int& p0, int& p1, int& p2) {
  const unsigned e = (w >> 3) & 0x0F0F0F0Fu;
  const unsigned nrm = ((e + 0x7F7F7F7Fu) >> 7) & 0x01010101u;  // 1 in the bytes where e >= 1
  const unsigned mm = (w & 0x07070707u) | (nrm << 3);
  const unsigned sh = e - nrm;
  // -mm as a byte is (0x80 - mm) ^ 0x80: no borrow crosses bytes.
  const unsigned neg = ((w >> 7) & 0x01010101u) * 0xFFu;
  const unsigned smm = (((0x80808080u - mm) ^ 0x80808080u) & neg) | (mm & ~neg);
  unsigned v[4];
#pragma unroll
  for (int j = 0; j < 4; j++)
    v[j] = ((unsigned)(int)(signed char)(smm >> (8 * j)) << ((sh >> (8 * j)) & 0xffu)) + 0x8080u;
  const unsigned lo01 = qi_byte_perm(v[0], v[1], 0x5140), lo23 = qi_byte_perm(v[2], v[3], 0x5140);
  const unsigned hi01 = qi_byte_perm(v[0], v[1], 0x0062), hi23 = qi_byte_perm(v[2], v[3], 0x0062);
  p0 = (int)(qi_byte_perm(lo01, lo23, 0x5410) ^ 0x80808080u);
  p1 = (int)(qi_byte_perm(lo01, lo23, 0x7632) ^ 0x80808080u);
  p2 = (int)qi_byte_perm(hi01, hi23, 0x5410);
}

QI_DEV unsigned rf_word(const int4& v, int j) {
  return (unsigned)(j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w);
}

// rf_unpack16 writes the int8 words of 16 consecutive elements: sub-chunk
// s of 16 bytes of a row's codes (16 elements of FP8, 64 of TERNARY, 128
// of BINARY), planes first.
template <int F>
QI_DEV void rf_unpack16(const int4& w, int s, int out[RF_PLANES(F)][4]) {
#pragma unroll
  for (int j = 0; j < 4; j++) {
    if constexpr (F == RF_FP8) {
      rf_fp8_planes(rf_word(w, j), out[0][j], out[1][j], out[2][j]);
    } else if constexpr (F == RF_TERN) {
      out[0][j] = rf_tern(rf_word(w, s), j);
    } else {
      out[0][j] = rf_bin(rf_word(w, s >> 1), 4 * (s & 1) + j);
    }
  }
}

// rf_row_dot scales a row's plane sums once: quant.RowScaleDot.
template <int F>
QI_DEV float rf_row_dot(const int* s, float ws, float xs) {
  if constexpr (F == RF_FP8) {
    return qi_row_dot_fp8((i64)s[0] + 256 * (i64)s[1] + 65536 * (i64)s[2], ws, xs);
  } else {
    return qi_row_dot(s[0], ws, xs);
  }
}

// ---- GEMV (decode, up to 8 tokens) ----
//
// As gemv.cu: each warp owns R consecutive rows; lane l walks 16-byte
// chunks l, l+32, ... of each row (16 FP8, 64 TERNARY or 128 BINARY
// elements), unpacks them once per row and multiplies them with every
// token's activations, which come from L1/L2. Grid ceil(rows/(8R)) blocks
// of 256 threads.

#define RF_GEMV_WARPS 8

template <int F, int R, int NT>
QI_DEV void gemv_rf(const uint8_t* wq, const float* ws, const int8_t* xq, const float* xd, float* y, i64 ldy, i64 rows,
                    i64 cols, i64 kpad, i64 ntok) {
  constexpr int NP = RF_PLANES(F);
  constexpr int EL = F == RF_FP8 ? 16 : F == RF_TERN ? 64 : 128;  // elements per 16-byte chunk
  const i64 row0 = ((i64)blockIdx.x * RF_GEMV_WARPS + qi_warp()) * R;
  if (row0 >= rows) return;
  const int lane = qi_lane();
  const i64 rb = kpad / (EL / 16);  // row bytes
  const i64 nc = (cols + EL - 1) / EL;
  i64 rr[R];
#pragma unroll
  for (int r = 0; r < R; r++) rr[r] = min(row0 + r, rows - 1);
  int acc[NP][R][NT] = {};
#pragma unroll(NT >= 4 ? 1 : 2)
  for (i64 c = lane; c < nc; c += 32) {
    int4 w[R];
#pragma unroll
    for (int r = 0; r < R; r++) w[r] = qi_ld16(wq + rr[r] * rb + c * 16);
#pragma unroll
    for (int s = 0; s < EL / 16; s++) {
      int u[R][NP][4];
#pragma unroll
      for (int r = 0; r < R; r++) rf_unpack16<F>(w[r], s, u[r]);
#pragma unroll
      for (int t = 0; t < NT; t++) {
        if (t < ntok) {
          const int4 x = qi_ld16(xq + t * kpad + c * EL + s * 16);
#pragma unroll
          for (int r = 0; r < R; r++) {
#pragma unroll
            for (int p = 0; p < NP; p++) {
              int a = qi_dp4a(u[r][p][0], x.x, acc[p][r][t]);
              a = qi_dp4a(u[r][p][1], x.y, a);
              a = qi_dp4a(u[r][p][2], x.z, a);
              acc[p][r][t] = qi_dp4a(u[r][p][3], x.w, a);
            }
          }
        }
      }
    }
  }
  // Exact int32 plane sums, then one scaling per output.
#pragma unroll
  for (int r = 0; r < R; r++) {
#pragma unroll
    for (int t = 0; t < NT; t++) {
      int s[NP];
#pragma unroll
      for (int p = 0; p < NP; p++) s[p] = qi_warp_sum(acc[p][r][t]);
      if (lane == r * NT + t && row0 + r < rows && t < ntok)
        y[t * ldy + row0 + r] = rf_row_dot<F>(s, qi_ldf(ws + row0 + r), qi_ldf(xd + t));
    }
  }
}

#define GEMV_RF(name, F, NT, MINB)                                                                                   \
  QI_ENTRY_OCC(256, MINB)                                                                                            \
  name(const uint8_t* wq, const float* ws, const int8_t* xq, const float* xd, float* y, i64 ldy, i64 rows, i64 cols, \
       i64 kpad, i64 ntok) {                                                                                         \
    gemv_rf<F, 2, NT>(wq, ws, xq, xd, y, ldy, rows, cols, kpad, ntok);                                               \
  }
GEMV_RF(qi_gemv_fp8_t1, RF_FP8, 1, 4)
GEMV_RF(qi_gemv_fp8_t2, RF_FP8, 2, 1)
GEMV_RF(qi_gemv_fp8_t4, RF_FP8, 4, 1)
GEMV_RF(qi_gemv_fp8_t8, RF_FP8, 8, 1)
GEMV_RF(qi_gemv_ternary_t1, RF_TERN, 1, 4)
GEMV_RF(qi_gemv_ternary_t2, RF_TERN, 2, 1)
GEMV_RF(qi_gemv_ternary_t4, RF_TERN, 4, 1)
GEMV_RF(qi_gemv_ternary_t8, RF_TERN, 8, 1)
GEMV_RF(qi_gemv_binary_t1, RF_BIN, 1, 4)
GEMV_RF(qi_gemv_binary_t2, RF_BIN, 2, 1)
GEMV_RF(qi_gemv_binary_t4, RF_BIN, 4, 1)
GEMV_RF(qi_gemv_binary_t8, RF_BIN, 8, 1)

// ---- GEMM (prompts, batches) ----
//
// A block computes BM rows x BN tokens, walking k in stages of 64 through
// shared memory, double-buffered as gemm.cu's W8 GEMM: the activation
// tile travels by cp.async (sm_80+), the packed weights of the next stage
// are loaded into registers during this stage's math and unpacked into
// int8 rows (one per digit plane) after it. 8 warps as 2 x 4, each
// BM/2 rows x BN/4 tokens, on int8 mma.sync (compute_80) or dp4a
// (compute_61, each thread BM/16 rows x BN/16 tokens). Each thread unpacks
// BM/4 elements of one row per stage. Shared-memory rows are 80 bytes (64
// + 16 of padding) so that eight consecutive rows fall in distinct bank
// groups. TERNARY and BINARY: 128 x 128 (or 64 x 128 for few blocks, as
// W8); FP8: 64 x 64 (three planes of 128 rows would not fit 48 KiB).

#define RF_BK 64
#define RF_LDS 80

template <int F, int BM, int BN>
struct RfSmem {
  int8_t a[2][RF_PLANES(F)][BM][RF_LDS];
  int8_t b[2][BN][RF_LDS];
};

// rf_load_a loads the packed codes a thread unpacks for stage kt: BM/4
// elements (chunk c of the stage) of one row.
template <int F, int BM>
QI_DEV int4 rf_load_a(const uint8_t* wq, i64 rb, i64 row, int kt, int c) {
  const uint8_t* p = wq + row * rb;
  int4 v = make_int4(0, 0, 0, 0);
  if (F == RF_FP8) {  // 64 bytes a stage; BM = 64: 16 per thread
    v = qi_ld16(p + (i64)kt * 64 + c * 16);
  } else if (F == RF_TERN) {  // 16 bytes a stage
    if (BM == 128) {
      const int2 h = qi_ld8(p + (i64)kt * 16 + c * 8);
      v.x = h.x;
      v.y = h.y;
    } else {
      v.x = qi_ld4(p + (i64)kt * 16 + c * 4);
    }
  } else {  // BINARY: 8 bytes a stage; BM = 64 unpacks half a word
    v.x = qi_ld4(p + (i64)kt * 8 + (BM == 128 ? c : c >> 1) * 4);
  }
  return v;
}

// rf_store_a unpacks what rf_load_a loaded into the row's shared-memory
// tile, in natural element order.
template <int F, int BM, int BN>
QI_DEV void rf_store_a(RfSmem<F, BM, BN>& sm, int buf, int arow, int c, const int4& v) {
  constexpr int EPT = BM / 4;
  if constexpr (F == RF_FP8) {
    int u[3][4];
    rf_unpack16<F>(v, 0, u);
#pragma unroll
    for (int p = 0; p < 3; p++) *(int4*)&sm.a[buf][p][arow][c * 16] = make_int4(u[p][0], u[p][1], u[p][2], u[p][3]);
  } else if (EPT == 32) {
    int u[8];
#pragma unroll
    for (int i = 0; i < 8; i++) u[i] = F == RF_TERN ? rf_tern(rf_word(v, i >> 2), i & 3) : rf_bin(rf_word(v, 0), i);
    int4* dst = (int4*)&sm.a[buf][0][arow][c * 32];
    dst[0] = make_int4(u[0], u[1], u[2], u[3]);
    dst[1] = make_int4(u[4], u[5], u[6], u[7]);
  } else {
    int u[4];
#pragma unroll
    for (int i = 0; i < 4; i++) u[i] = F == RF_TERN ? rf_tern(rf_word(v, 0), i) : rf_bin(rf_word(v, 0), 4 * (c & 1) + i);
    *(int4*)&sm.a[buf][0][arow][c * 16] = make_int4(u[0], u[1], u[2], u[3]);
  }
}

// rf_load_b starts the cp.async copies of a stage's activations: BN
// tokens x 64 bytes, BN/64 16-byte chunks per thread.
template <int F, int BM, int BN>
QI_DEV void rf_load_b(const int8_t* xq, RfSmem<F, BM, BN>& sm, int buf, int kt, i64 tok_base, i64 ntok, i64 kpad) {
#pragma unroll
  for (int i = 0; i < BN / 64; i++) {
    const int ch = (int)threadIdx.x + 256 * i;
    const int r = ch >> 2, c = ch & 3;
    qi_cp16(&sm.b[buf][r][c * 16], xq + min(tok_base + r, ntok - 1) * kpad + (i64)kt * RF_BK + c * 16);
  }
}

template <int F, int BM, int BN>
QI_DEV void gemm_rf(const uint8_t* wq, const float* ws, const int8_t* xq, const float* xd, float* y, i64 ldy, i64 rows,
                    i64 kpad, i64 ntok) {
  static_assert(BM == 128 || BM == 64, "a thread unpacks 32 or 16 elements of a row per stage");
  static_assert(F != RF_FP8 || BM == 64, "an FP8 thread decodes one 16-byte chunk per stage");
  static_assert(BN == 128 || BN == 64, "whole 16-token ldmatrix groups per warp");
  constexpr int NP = RF_PLANES(F);
  constexpr int NACC = BM * BN / 256;  // outputs per thread
  constexpr int TPR = 256 / BM;        // threads unpacking one row
  __shared__ __align__(16) RfSmem<F, BM, BN> sm;
  const int tid = threadIdx.x, lane = qi_lane(), warp = qi_warp();
  const i64 row_base = (i64)blockIdx.x * BM, tok_base = (i64)blockIdx.y * BN;
  const i64 rb = F == RF_FP8 ? kpad : F == RF_TERN ? kpad / 4 : kpad / 8;
  const int nk = (int)(kpad / RF_BK);
  const int arow = tid / TPR, ac = tid % TPR;
  const i64 grow = min(row_base + arow, rows - 1);
  int acc[NP][NACC];
#pragma unroll
  for (int p = 0; p < NP; p++) {
#pragma unroll
    for (int i = 0; i < NACC; i++) acc[p][i] = 0;
  }

  rf_load_b<F, BM, BN>(xq, sm, 0, 0, tok_base, ntok, kpad);
  int4 regs = rf_load_a<F, BM>(wq, rb, grow, 0, ac);
  rf_store_a<F, BM, BN>(sm, 0, arow, ac, regs);
  qi_cp_commit();
  for (int kt = 0; kt < nk; kt++) {
    const int cur = kt & 1;
    if (kt + 1 < nk) {
      rf_load_b<F, BM, BN>(xq, sm, cur ^ 1, kt + 1, tok_base, ntok, kpad);
      regs = rf_load_a<F, BM>(wq, rb, grow, kt + 1, ac);
    }
    qi_cp_commit();
    qi_cp_wait1();
    QI_SYNC();
#ifdef QI_HAVE_MMA
    {
      constexpr int MI = BM / 32, NI = BN / 32;  // 16-row and 8-token mma tiles per warp
      const int wm = warp >> 2, wn = warp & 3;
#pragma unroll
      for (int kg = 0; kg < 2; kg++) {
        int b[NI][2];
#pragma unroll
        for (int np = 0; np < NI / 2; np++) {
          int r[4];
          qi_ldsm_x4(r, &sm.b[cur][wn * (BN / 4) + np * 16 + (lane & 7) + ((lane >> 4) << 3)][kg * 32 + ((lane >> 3) & 1) * 16]);
          b[2 * np][0] = r[0];
          b[2 * np][1] = r[1];
          b[2 * np + 1][0] = r[2];
          b[2 * np + 1][1] = r[3];
        }
#pragma unroll
        for (int p = 0; p < NP; p++) {
#pragma unroll
          for (int mi = 0; mi < MI; mi++) {
            int a[4];
            qi_ldsm_x4(a, &sm.a[cur][p][wm * (BM / 2) + mi * 16 + (lane & 15)][kg * 32 + (lane >> 4) * 16]);
#pragma unroll
            for (int ni = 0; ni < NI; ni++) qi_mma_k32(&acc[p][(mi * NI + ni) * 4], a, b[ni]);
          }
        }
      }
    }
#else
    {
      constexpr int RT = BM / 16, CT = BN / 16;
      const int ty = tid >> 4, tx = tid & 15;
#pragma unroll 4
      for (int w = 0; w < RF_BK / 4; w++) {
        int b[CT];
#pragma unroll
        for (int j = 0; j < CT; j++) b[j] = *(const int*)&sm.b[cur][tx + 16 * j][4 * w];
#pragma unroll
        for (int p = 0; p < NP; p++) {
#pragma unroll
          for (int i = 0; i < RT; i++) {
            const int a = *(const int*)&sm.a[cur][p][ty + 16 * i][4 * w];
#pragma unroll
            for (int j = 0; j < CT; j++) acc[p][i * CT + j] = qi_dp4a(a, b[j], acc[p][i * CT + j]);
          }
        }
      }
    }
#endif
    QI_SYNC();
    if (kt + 1 < nk) rf_store_a<F, BM, BN>(sm, cur ^ 1, arow, ac, regs);
  }

  // Store: each accumulator's (row, token) as the math above laid it out.
#ifdef QI_HAVE_MMA
  constexpr int MI = BM / 32, NI = BN / 32;
  const int wm = warp >> 2, wn = warp & 3, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int mi = 0; mi < MI; mi++) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const i64 row = row_base + wm * (BM / 2) + mi * 16 + g + 8 * h;
      if (row >= rows) continue;
      const float sw = qi_ldf(ws + row);
#pragma unroll
      for (int ni = 0; ni < NI; ni++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const i64 tok = tok_base + wn * (BN / 4) + ni * 8 + 2 * t + e;
          const int i = (mi * NI + ni) * 4 + 2 * h + e;
          int s[NP];
#pragma unroll
          for (int p = 0; p < NP; p++) s[p] = acc[p][i];
          if (tok < ntok) y[tok * ldy + row] = rf_row_dot<F>(s, sw, qi_ldf(xd + tok));
        }
      }
    }
  }
#else
  constexpr int CT = BN / 16;
  const int ty = tid >> 4, tx = tid & 15;
#pragma unroll
  for (int i = 0; i < NACC; i++) {
    const i64 row = row_base + ty + 16 * (i / CT);
    const i64 tok = tok_base + tx + 16 * (i % CT);
    int s[NP];
#pragma unroll
    for (int p = 0; p < NP; p++) s[p] = acc[p][i];
    if (row < rows && tok < ntok) y[tok * ldy + row] = rf_row_dot<F>(s, qi_ldf(ws + row), qi_ldf(xd + tok));
  }
#endif
}

#define GEMM_RF(name, F, BM, BN, MINB)                                                                              \
  QI_ENTRY_OCC(256, MINB)                                                                                           \
  name(const uint8_t* wq, const float* ws, const int8_t* xq, const float* xd, float* y, i64 ldy, i64 rows, i64 cols, \
       i64 kpad, i64 ntok) {                                                                                        \
    gemm_rf<F, BM, BN>(wq, ws, xq, xd, y, ldy, rows, kpad, ntok);                                                   \
  }
GEMM_RF(qi_gemm_fp8, RF_FP8, 64, 64, 2)
GEMM_RF(qi_gemm_ternary, RF_TERN, 128, 128, QI_ARCH >= 800 ? 2 : 1)
GEMM_RF(qi_gemm_ternary_m64, RF_TERN, 64, 128, 2)
GEMM_RF(qi_gemm_binary, RF_BIN, 128, 128, QI_ARCH >= 800 ? 2 : 1)
GEMM_RF(qi_gemm_binary_m64, RF_BIN, 64, 128, 2)

// ---- dequantization (Embed, Read): y[i] = row ids[i] (row i when ids is
// null) as quant.DequantizeRow computes it, scale * value(code), one float
// multiplication of exact operands. Grid (ceil(cols/256), n). ----

// rf_dq_row validates the row of output i; a bad id is reported and skipped.
QI_DEV i64 rf_dq_row(const int* ids, i64 i, i64 rows, int* status) {
  const i64 r = ids ? (i64)ids[i] : i;
  if (r < 0 || r >= rows) {
    if (threadIdx.x == 0 && blockIdx.x == 0) qi_report(status, QI_ERR_TOKEN_ID, (int)i, (int)r, (int)rows);
    return -1;
  }
  return r;
}

// rf_value returns element k of row r as the exact float the CPU
// multiplies by the scale: quant.FP8ToFP32 (units times 2^-9, exact as
// |units| < 2^24, and -0 for the code 0x80), TERNARY -1/0/+1, BINARY -1/+1.
template <int F>
QI_DEV float rf_value(const uint8_t* wq, i64 r, i64 k, i64 kpad) {
  if constexpr (F == RF_FP8) {
    const unsigned c = wq[r * kpad + k];
    const float v = __fmul_rn((float)rf_fp8_units(c & 0x7fu), 0.001953125f);
    return (c & 0x80u) ? -v : v;
  } else {
    const int e = (int)(k & (F == RF_TERN ? 15 : 31));
    const unsigned w = (unsigned)qi_ld4(wq + r * (F == RF_TERN ? kpad / 4 : kpad / 8) + (k / (F == RF_TERN ? 16 : 32)) * 4);
    const int b = e & 3, i = e >> 2;
    if constexpr (F == RF_TERN) return (float)((int)((w >> (8 * b + 2 * i)) & 3u) - 1);
    return (float)((int)((w >> (8 * b + i)) & 1u) * 2 - 1);
  }
}

template <int F>
QI_DEV void dequant_rf(const uint8_t* wq, const float* ws, const int* ids, float* y, i64 ldy, i64 rows, i64 cols, i64 kpad,
                       int* status) {
  const i64 i = blockIdx.y, k = (i64)blockIdx.x * 256 + threadIdx.x;
  const i64 r = rf_dq_row(ids, i, rows, status);
  if (r < 0 || k >= cols) return;
  y[i * ldy + k] = __fmul_rn(ws[r], rf_value<F>(wq, r, k, kpad));
}

#define DEQUANT_RF(name, F)                                                                                       \
  QI_ENTRY(256)                                                                                                   \
  name(const uint8_t* wq, const float* ws, const int* ids, float* y, i64 ldy, i64 rows, i64 cols, i64 kpad,        \
       int* status) {                                                                                             \
    dequant_rf<F>(wq, ws, ids, y, ldy, rows, cols, kpad, status);                                                 \
  }
DEQUANT_RF(qi_dequant_fp8, RF_FP8)
DEQUANT_RF(qi_dequant_ternary, RF_TERN)
DEQUANT_RF(qi_dequant_binary, RF_BIN)
