//go:build !purego

#include "textflag.h"
#include "neon_arm64.h"

// Q4_K, Q5_K and Q6_K weight rows against one Q8_K activation row, one row
// at a time, in the float order of the AVX2 kernels (kquant_amd64.s,
// _asm/kquant), so that arm64 and x86 give the same bits:
//
//   - per super-block, eight int32 lanes sumi, lane l the scaled sum of
//     products 4l..4l+3 of each 32-quant chunk (VPMADDUBSW + VPMADDWD on
//     x86, SDOT or SMULL+SADDLP+ADDP here, both exact);
//   - acc[l] = fma(float(sumi[l]), d*dy, acc[l]), hsum8's tree at the end;
//   - Q4_K/Q5_K: the mins enter as four lanes, lane k = m(2k)*s(2k) +
//     m(2k+1)*s(2k+1) over the 32-quant activation sums s (VPMADDWD's
//     pairs), accm[k] = fma(float(lane), dmin*dy, accm[k]); the result is
//     hsum8(acc) - ((accm0+accm2) + (accm1+accm3));
//   - Q6_K: quants are used unsigned (0..63) and 32 * (sc(2l)*bsum(2l) +
//     sc(2l+1)*bsum(2l+1)) is subtracted from lane l.
//
// Each kernel is assembled twice, with SDOT (FEAT_DotProd) and without:
// DOT4S(d, n, m) sets V(d) to the four 4-byte dot products of V(n) and
// V(m), and is defined before each instance. V15 is its scratch.
//
// Registers: R0 current row, R1 row stride, R2 rows left, R3 activation
// row, R4 blocks per row, R5 dst, R6 weight block, R10 activation block,
// R11 blocks left, R7/R8 pointers and R12-R17, R19 scratch. V0/V1 the
// eight float lanes, V2 the mins' lanes (Q4_K/Q5_K) or the offsets
// (Q6_K), V4/V5 sumi, V28 0x0f bytes.

#define ARGS \
	MOVD w+0(FP), R0; \
	MOVD wstride+8(FP), R1; \
	MOVD rows+16(FP), R2; \
	MOVD x+24(FP), R3; \
	MOVD nb+32(FP), R4; \
	MOVD dst+40(FP), R5; \
	VMOVI $15, V28.B16

// ROWSTART starts a row: block and activation pointers, zero lanes.
#define ROWSTART \
	MOVD R0, R6; \
	MOVD R3, R10; \
	MOVD R4, R11; \
	VMOVI $0, V0.B16; \
	VMOVI $0, V1.B16; \
	VMOVI $0, V2.B16

// NEXTBLOCK advances to the next super-block of bsize weight bytes.
#define NEXTBLOCK(bsize, loop) \
	ADD  $bsize, R6; \
	ADD  $292, R10; \
	SUBS $1, R11; \
	BNE  loop

// NEXTROW stores F0 and moves to the next row.
#define NEXTROW(loop) \
	FMOVS.P F0, 4(R5); \
	ADD     R1, R0; \
	SUBS    $1, R2; \
	BNE     loop

// HSUM8 leaves hsum8 of V0 (lanes 0-3) and V1 (4-7) in F0 (V3 scratch).
#define HSUM8 \
	FADD_4S(0, 1, 0); \
	VDUP V0.D[1], V3.D2; \
	FADD_2S(0, 0, 3); \
	FADDP_S(0, 0)

// K4SCALES unpacks the 6-bit scales and mins of the Q4_K/Q5_K block at R6
// (12 bytes at 4) as ggml's get_scale_min_k4 does, four at a time in
// 32-bit words (the kmask1-3 steps of llama.cpp), into int32 lanes: V23
// scales 0-3, V24 scales 4-7; then V26 = the mins' four lanes (mins times
// the activation's 32-quant sums, pairs added as VPMADDWD does).
#define K4SCALES \
	MOVWU 4(R6), R12; \
	MOVWU 8(R6), R13; \
	MOVWU 12(R6), R14; \
	LSRW  $4, R14, R15; \
	ANDW  $0x0f0f0f0f, R15, R15; \
	LSRW  $6, R13, R16; \
	ANDW  $0x03030303, R16, R16; \
	ORRW  R16<<4, R15, R15; \
	ANDW  $0x3f3f3f3f, R13, R16; \
	ANDW  $0x0f0f0f0f, R14, R17; \
	LSRW  $6, R12, R19; \
	ANDW  $0x03030303, R19, R19; \
	ORRW  R19<<4, R17, R17; \
	ANDW  $0x3f3f3f3f, R12, R12; \
	VMOV  R12, V20.S[0]; \
	VMOV  R17, V20.S[1]; \
	VMOV  R16, V20.S[2]; \
	VMOV  R15, V20.S[3]; \
	VUXTL  V20.B8, V21.H8; \
	VUXTL2 V20.B16, V22.H8; \
	VUXTL  V21.H4, V23.S4; \
	VUXTL2 V21.H8, V24.S4; \
	ADD    $260, R10, R7; \
	VLD1   (R7), [V25.H8, V26.H8]; \
	VADDP  V26.H8, V25.H8, V25.H8; \
	SMULL_4S(26, 22, 25); \
	SMULL2_4S(27, 22, 25); \
	ADDP_4S(26, 26, 27)

// K4LOAD loads chunk pair j of a Q4_K/Q5_K block: 32 quant bytes at
// qoff(R6) split into low nibbles V18/V19 (sub-block 2j) and high nibbles
// V16/V17 (2j+1), and the 64 activation quants at xoff(R10) in V8-V11.
#define K4LOAD(qoff, xoff) \
	ADD   $qoff, R6, R7; \
	VLD1  (R7), [V16.B16, V17.B16]; \
	ADD   $xoff, R10, R8; \
	VLD1  (R8), [V8.B16, V9.B16, V10.B16, V11.B16]; \
	VAND  V28.B16, V16.B16, V18.B16; \
	VAND  V28.B16, V17.B16, V19.B16; \
	VUSHR $4, V16.B16, V16.B16; \
	VUSHR $4, V17.B16, V17.B16

// Q5BIT sets bit 4 of the 32 quants Vq0/Vq1 from the low bit of the
// high-bit bytes V6/V7 and shifts those right for the next sub-block
// (V29 holds 1s); SLI keeps the quants' low four bits.
#define Q5BIT(Vq0, Vq1) \
	VAND  V29.B16, V6.B16, V20.B16; \
	VAND  V29.B16, V7.B16, V21.B16; \
	VSLI  $4, V20.B16, Vq0.B16; \
	VSLI  $4, V21.B16, Vq1.B16; \
	VUSHR $1, V6.B16, V6.B16; \
	VUSHR $1, V7.B16, V7.B16

// K4DOT adds the chunk pair's products to sumi, each 32-quant chunk times
// its sub-block scale (V(sc) lanes la, lb).
#define K4DOT(sc, la, lb) \
	DOT4S(12, 18, 8); \
	DOT4S(13, 19, 9); \
	MLA_4S_ELEM(4, 12, sc, la); \
	MLA_4S_ELEM(5, 13, sc, la); \
	DOT4S(12, 16, 10); \
	DOT4S(13, 17, 11); \
	MLA_4S_ELEM(4, 12, sc, lb); \
	MLA_4S_ELEM(5, 13, sc, lb)

// K4FLOAT scales the block: [d, dmin] (fp16 at R6) times dy (float32 at
// R10), rounded per lane as VMULPS does, then acc += sumi*d and accm +=
// mins*dmin, fused.
#define K4FLOAT \
	MOVWU (R6), R12; \
	FMOVS R12, F30; \
	FCVTL_4S(30, 30); \
	FMOVS (R10), F31; \
	FMUL_4S_ELEM(30, 30, 31, 0); \
	SCVTF_4S(4, 4); \
	SCVTF_4S(5, 5); \
	SCVTF_4S(26, 26); \
	FMLA_4S_ELEM(0, 4, 30, 0); \
	FMLA_4S_ELEM(1, 5, 30, 0); \
	FMLA_4S_ELEM(2, 26, 30, 1)

// K4FINISH leaves hsum8(acc) - ((accm0+accm2) + (accm1+accm3)) in F0.
#define K4FINISH \
	HSUM8; \
	VDUP V2.D[1], V3.D2; \
	FADD_2S(2, 2, 3); \
	FADDP_S(2, 2); \
	FSUBS F2, F0, F0

#define Q4KBLOCK \
	K4SCALES; \
	VMOVI $0, V4.B16; \
	VMOVI $0, V5.B16; \
	K4LOAD(16, 4); \
	K4DOT(23, 0, 1); \
	K4LOAD(48, 68); \
	K4DOT(23, 2, 3); \
	K4LOAD(80, 132); \
	K4DOT(24, 0, 1); \
	K4LOAD(112, 196); \
	K4DOT(24, 2, 3); \
	K4FLOAT

#define Q5KBLOCK \
	K4SCALES; \
	VMOVI $0, V4.B16; \
	VMOVI $0, V5.B16; \
	ADD   $16, R6, R7; \
	VLD1  (R7), [V6.B16, V7.B16]; \
	K4LOAD(48, 4); \
	Q5BIT(V18, V19); \
	Q5BIT(V16, V17); \
	K4DOT(23, 0, 1); \
	K4LOAD(80, 68); \
	Q5BIT(V18, V19); \
	Q5BIT(V16, V17); \
	K4DOT(23, 2, 3); \
	K4LOAD(112, 132); \
	Q5BIT(V18, V19); \
	Q5BIT(V16, V17); \
	K4DOT(24, 0, 1); \
	K4LOAD(144, 196); \
	Q5BIT(V18, V19); \
	Q5BIT(V16, V17); \
	K4DOT(24, 2, 3); \
	K4FLOAT

// Q6SCALES sets V24-V27 to the block's 16 int8 scales as int32 (four per
// register) and V2/V3 to the offsets 32*(sc(2l)*bsum(2l) +
// sc(2l+1)*bsum(2l+1)) of lanes 0-3 and 4-7.
#define Q6SCALES \
	ADD  $192, R6, R7; \
	VLD1 (R7), [V20.B16]; \
	SXTL_8H(21, 20); \
	SXTL2_8H(22, 20); \
	SXTL_4S(24, 21); \
	SXTL2_4S(25, 21); \
	SXTL_4S(26, 22); \
	SXTL2_4S(27, 22); \
	ADD  $260, R10, R7; \
	VLD1 (R7), [V8.H8, V9.H8]; \
	SMULL_4S(2, 21, 8); \
	SMULL2_4S(10, 21, 8); \
	ADDP_4S(2, 2, 10); \
	SMULL_4S(3, 22, 9); \
	SMULL2_4S(10, 22, 9); \
	ADDP_4S(3, 3, 10); \
	VSHL $5, V2.S4, V2.S4; \
	VSHL $5, V3.S4, V3.S4

// Q6LOAD loads half n of a Q6_K block: ql bytes 0-31 in V16/V17 and
// 32-63 in V18/V19, the 32 qh bytes in V6/V7, and points R8 at the half's
// 128 activation quants.
#define Q6LOAD(qloff, qhoff, xoff) \
	ADD  $qloff, R6, R7; \
	VLD1 (R7), [V16.B16, V17.B16, V18.B16, V19.B16]; \
	ADD  $qhoff, R6, R7; \
	VLD1 (R7), [V6.B16, V7.B16]; \
	ADD  $xoff, R10, R8

// Q6LOW and Q6HIGH take the low or high nibbles of ql (Va/Vb) into
// V12/V13.
#define Q6LOW(Va, Vb) \
	VAND V28.B16, Va.B16, V12.B16; \
	VAND V28.B16, Vb.B16, V13.B16

#define Q6HIGH(Va, Vb) \
	VUSHR $4, Va.B16, V12.B16; \
	VUSHR $4, Vb.B16, V13.B16

// Q6CHUNK completes a 32-quant chunk in V12/V13 with its two high bits
// (the low two bits of V6/V7, V29 holding 3s, then shifted for the next
// chunk) and adds its products with the next 32 activation quants, times
// the scales of its two 16-quant sub-blocks (V(sc) lanes la and lb), to
// sumi: quants 0-15 are lanes 0-3 (V4), 16-31 lanes 4-7 (V5).
#define Q6CHUNK(sc, la, lb) \
	VAND  V29.B16, V6.B16, V20.B16; \
	VAND  V29.B16, V7.B16, V21.B16; \
	VSLI  $4, V20.B16, V12.B16; \
	VSLI  $4, V21.B16, V13.B16; \
	VUSHR $2, V6.B16, V6.B16; \
	VUSHR $2, V7.B16, V7.B16; \
	VLD1.P 32(R8), [V8.B16, V9.B16]; \
	DOT4S(10, 12, 8); \
	DOT4S(11, 13, 9); \
	MLA_4S_ELEM(4, 10, sc, la); \
	MLA_4S_ELEM(5, 11, sc, lb)

// Q6HALF does half n: chunks k = 0..3 are the low nibbles of ql 0-31 and
// 32-63, then the high nibbles, with scales 8n+2k and 8n+2k+1 (SA holds
// those of k = 0, 1, SB of k = 2, 3).
#define Q6HALF(qloff, qhoff, xoff, SA, SB) \
	Q6LOAD(qloff, qhoff, xoff); \
	Q6LOW(V16, V17); \
	Q6CHUNK(SA, 0, 1); \
	Q6LOW(V18, V19); \
	Q6CHUNK(SA, 2, 3); \
	Q6HIGH(V16, V17); \
	Q6CHUNK(SB, 0, 1); \
	Q6HIGH(V18, V19); \
	Q6CHUNK(SB, 2, 3)

// Q6FLOAT: sumi - offsets, converted, fused into acc by fp16(d)*dy.
#define Q6FLOAT \
	MOVHU  208(R6), R12; \
	FMOVS  R12, F30; \
	FCVTHS F30, F30; \
	FMOVS  (R10), F31; \
	FMULS  F31, F30, F30; \
	VSUB   V2.S4, V4.S4, V4.S4; \
	VSUB   V3.S4, V5.S4, V5.S4; \
	SCVTF_4S(4, 4); \
	SCVTF_4S(5, 5); \
	FMLA_4S_ELEM(0, 4, 30, 0); \
	FMLA_4S_ELEM(1, 5, 30, 0)

#define Q6KBLOCK \
	Q6SCALES; \
	VMOVI $0, V4.B16; \
	VMOVI $0, V5.B16; \
	Q6HALF(0, 128, 4, 24, 25); \
	Q6HALF(64, 160, 132, 26, 27); \
	Q6FLOAT

// The SDOT instances.
#define DOT4S(d, n, m) \
	MOVI0(d); \
	SDOT_4S(d, n, m)

// func gemvQ4KSDOT(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)
TEXT ·gemvQ4KSDOT(SB), NOSPLIT, $0-48
	ARGS

q4ksRow:
	ROWSTART

q4ksBlock:
	Q4KBLOCK
	NEXTBLOCK(144, q4ksBlock)
	K4FINISH
	NEXTROW(q4ksRow)
	RET

// func gemvQ5KSDOT(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)
TEXT ·gemvQ5KSDOT(SB), NOSPLIT, $0-48
	ARGS
	VMOVI $1, V29.B16

q5ksRow:
	ROWSTART

q5ksBlock:
	Q5KBLOCK
	NEXTBLOCK(176, q5ksBlock)
	K4FINISH
	NEXTROW(q5ksRow)
	RET

// func gemvQ6KSDOT(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)
TEXT ·gemvQ6KSDOT(SB), NOSPLIT, $0-48
	ARGS
	VMOVI $3, V29.B16

q6ksRow:
	ROWSTART

q6ksBlock:
	Q6KBLOCK
	NEXTBLOCK(210, q6ksBlock)
	HSUM8
	NEXTROW(q6ksRow)
	RET

// The Advanced SIMD instances: byte products widened to 16 bits (at most
// 63*128 in magnitude), pairs added into 32 bits, then pairs of those,
// which groups bytes 4l..4l+3 into lane l as SDOT does.
#undef DOT4S
#define DOT4S(d, n, m) \
	SMULL_8H(d, n, m); \
	SMULL2_8H(15, n, m); \
	SADDLP_4S(d, d); \
	SADDLP_4S(15, 15); \
	ADDP_4S(d, d, 15)

// func gemvQ4KASIMD(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)
TEXT ·gemvQ4KASIMD(SB), NOSPLIT, $0-48
	ARGS

q4kaRow:
	ROWSTART

q4kaBlock:
	Q4KBLOCK
	NEXTBLOCK(144, q4kaBlock)
	K4FINISH
	NEXTROW(q4kaRow)
	RET

// func gemvQ5KASIMD(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)
TEXT ·gemvQ5KASIMD(SB), NOSPLIT, $0-48
	ARGS
	VMOVI $1, V29.B16

q5kaRow:
	ROWSTART

q5kaBlock:
	Q5KBLOCK
	NEXTBLOCK(176, q5kaBlock)
	K4FINISH
	NEXTROW(q5kaRow)
	RET

// func gemvQ6KASIMD(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)
TEXT ·gemvQ6KASIMD(SB), NOSPLIT, $0-48
	ARGS
	VMOVI $3, V29.B16

q6kaRow:
	ROWSTART

q6kaBlock:
	Q6KBLOCK
	NEXTBLOCK(210, q6kaBlock)
	HSUM8
	NEXTROW(q6kaRow)
	RET
