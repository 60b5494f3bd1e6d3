// qinfer-arch: compute_61 compute_80
//
// LLM.int8()-style outlier columns of the row formats (docs/formats.md,
// "Outlier columns"; the definition is host/quant outliers.go). A split
// weight's int8 part runs through the row-format kernels unchanged: the
// activation codes of the outlier channels are 0 (qi_quant_w8 with the
// weight's mask), so whatever codes the weight holds there never reach a
// sum. qi_quant_w8 also copies the outlier channels' values of every
// token to a compact array xo. What is left is the float part, added to
// each output afterwards:
//
//   o = +0; for j = 0 .. k-1: o = o + float32(x[c_j] * w16[r][j])
//   y = i + o
//
// each product rounded to float32 before it is added (no FMA), columns in
// increasing order, x the unquantized activations, i the int8 part the
// product kernel stored: quant.RowSplitDot, bit for bit.
//
// xo is [k][ldxo] floats, token t of column j at xo[j*ldxo + t], ldxo a
// multiple of OL_TOKENS (entries past the last token are never used).
//
// Device arrays of a split weight (cuda/upload_layout.go):
//   ocols  int32 [k]        the outlier columns, increasing
//   omask  u32 [kpad/32]    bit c%32 of word c/32 set for each column c
//   ow     half [k][ldo]    the F16 weights, column j's rows together
//                           (ldo = rows rounded up to OL_ROWS, zeros
//                           past rows), so that a block's rows of a
//                           column are whole 16-byte copies
#include "common.cuh"

// qi_outlier_add's shape: a block of OL_ROWS threads owns OL_ROWS rows
// (one each) for OL_TOKENS tokens, so that each weight serves OL_TOKENS
// products. The outlier columns go by in chunks of OL_KC: the block's
// weights of a chunk (OL_KC x OL_ROWS halves) and its tokens' outlier
// values (OL_KC x OL_TOKENS floats), 16-byte copies, are staged in
// shared memory, the next
// chunk's copies in flight (cp.async on sm_80+) while this one is summed.
// A thread's sum is a chain of dependent additions, k long, so it must
// not also wait for a load at every step: staging puts one memory round
// trip per chunk in place of one per few columns, which is what decode
// (few threads, cold weights) is bound by. Small blocks spread a decode
// step's rows over many multiprocessors.
#define OL_ROWS 64
#define OL_TOKENS 8
#define OL_KC 64

struct OlSmem {
  uint16_t w[2][OL_KC][OL_ROWS];
  float x[2][OL_KC][OL_TOKENS];
};

// ol_stage starts the copies of chunk j0 (kc columns) into buffer b.
// The values of tokens past the last are whatever xo holds there: their
// products are discarded.
QI_DEV void ol_stage(OlSmem& sm, int b, const float* xo, i64 ldxo, i64 t0, const uint16_t* ow, i64 ldo, i64 r0, i64 j0,
                     int kc) {
  for (int e = threadIdx.x; e < kc * (OL_ROWS / 8); e += OL_ROWS) {
    const int j = e / (OL_ROWS / 8), c = e % (OL_ROWS / 8);
    qi_cp16(&sm.w[b][j][8 * c], ow + (j0 + j) * ldo + r0 + 8 * c);
  }
  for (int e = threadIdx.x; e < kc * (OL_TOKENS / 4); e += OL_ROWS) {
    const int j = e / (OL_TOKENS / 4), c = e % (OL_TOKENS / 4);
    qi_cp16(&sm.x[b][j][4 * c], xo + (j0 + j) * ldxo + t0 + 4 * c);
  }
}

// qi_outlier_add adds the float part to y (row stride ldy), which holds
// the int8 part of ntok tokens x rows outputs, from xo (qi_quant_w8's
// copy of the unquantized outlier values). The weights' row stride ldo is
// a multiple of OL_ROWS, at least rows (the layout pads with zeros).
// Grid (ceil(rows/OL_ROWS), ceil(ntok/OL_TOKENS)), OL_ROWS threads.
QI_ENTRY(OL_ROWS) qi_outlier_add(const float* xo, i64 ldxo, const uint16_t* ow, i64 k, i64 ldo, float* y, i64 ldy,
                                 i64 rows, i64 ntok) {
  __shared__ __align__(16) OlSmem sm;
  const int tid = threadIdx.x;
  const i64 r0 = (i64)blockIdx.x * OL_ROWS, r = r0 + tid;
  const i64 t0 = (i64)blockIdx.y * OL_TOKENS;
  const int nt = (int)min((i64)OL_TOKENS, ntok - t0);
  float o[OL_TOKENS];
#pragma unroll
  for (int i = 0; i < OL_TOKENS; i++) o[i] = 0.0f;
  const int nc = (int)((k + OL_KC - 1) / OL_KC);
  ol_stage(sm, 0, xo, ldxo, t0, ow, ldo, r0, 0, (int)min((i64)OL_KC, k));
  qi_cp_commit();
  for (int ch = 0; ch < nc; ch++) {
    const int b = ch & 1;
    const i64 j0 = (i64)ch * OL_KC;
    const int kc = (int)min((i64)OL_KC, k - j0);
    if (ch + 1 < nc) ol_stage(sm, b ^ 1, xo, ldxo, t0, ow, ldo, r0, j0 + OL_KC, (int)min((i64)OL_KC, k - j0 - OL_KC));
    qi_cp_commit();
    qi_cp_wait1();
    QI_SYNC();
    if (nt == 1) {
      // Decode: one token, one chain.
      for (int j = 0; j < kc; j++) o[0] = __fadd_rn(o[0], __fmul_rn(sm.x[b][j][0], qi_h2f(sm.w[b][j][tid])));
    } else {
      for (int j = 0; j < kc; j++) {
        const float w = qi_h2f(sm.w[b][j][tid]);
#pragma unroll
        for (int i = 0; i < OL_TOKENS; i++) o[i] = __fadd_rn(o[i], __fmul_rn(sm.x[b][j][i], w));
      }
    }
    QI_SYNC();
  }
  if (r >= rows) return;
#pragma unroll
  for (int i = 0; i < OL_TOKENS; i++) {
    if (i < nt) {
      float* p = y + (t0 + i) * ldy + r;
      *p = __fadd_rn(*p, o[i]);
    }
  }
}

// qi_dequant_outliers writes the outlier columns of dequantized rows (Embed,
// Read): y[i][c_j] = w16[r][j] widened exactly, r = ids[i] (i when ids is
// null), over what the row's dequantization kernel wrote there (the value
// of a zero code), as quant.DequantizeRowSplit. It runs after that kernel,
// which reports an id outside [0, rows); such a row is skipped here.
// Grid (ceil(k/256), n), 256 threads.
QI_ENTRY(256) qi_dequant_outliers(const int* ids, const int* ocols, const uint16_t* ow, i64 k, i64 ldo, float* y, i64 ldy,
                                  i64 rows) {
  const i64 i = blockIdx.y, j = (i64)blockIdx.x * 256 + threadIdx.x;
  const i64 r = ids ? (i64)qi_ldi(ids + i) : i;
  if (j >= k || r < 0 || r >= rows) return;
  y[i * ldy + qi_ldi(ocols + j)] = qi_h2f(qi_ld2(ow + j * ldo + r));
}
