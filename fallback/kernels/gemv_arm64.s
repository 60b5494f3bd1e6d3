//go:build !purego

#include "textflag.h"
#include "neon_arm64.h"

// Matrix-vector products of Q8_0 and Q4_0 weights in GGUF layout with one
// Q8_0 activation row, four rows at a time so that each activation block
// is loaded and its scale converted once per four rows. The float work
// follows the pure-Go kernels (dot_generic.go, legacy_generic.go)
// operation for operation, so the results are the same bits:
//
//   - Q8_0: eight float lanes per row, lane j the integer sum of products
//     4j..4j+3 of each block, which is exactly what SDOT computes per
//     32-bit lane; acc[j] = fma(d, lane, acc[j]) with d = fp16(dw)*fp16(dx)
//     rounded to float32, FMLA being fused like VFMADD231PS; at the end
//     hsum8's tree ((a4+a0)+(a6+a2)) + ((a5+a1)+(a7+a3)).
//   - Q4_0: one float per row, the four rows in the four lanes of one
//     register: acc = fma(float(block sum), d, acc).
//
// Rows are taken four at a time; when fewer remain, the missing row
// pointers repeat the last row and only the real rows are stored.
//
// Registers: R0 weights of the current group of four rows, R1 row stride,
// R2 rows left, R3 activation row, R4 blocks per row, R5 dst, R6-R9 the
// four row pointers, R10 activation pointer, R11 blocks left.

// ROWPTRS sets R6-R9 to the rows of the group at R0, repeating the last
// row when fewer than four are left (R2), so the loads stay in bounds.
#define ROWPTRS \
	MOVD R0, R6; \
	ADD  R1, R6, R7; \
	CMP  $1, R2; \
	CSEL GT, R7, R6, R7; \
	ADD  R1, R7, R8; \
	CMP  $2, R2; \
	CSEL GT, R8, R7, R8; \
	ADD  R1, R8, R9; \
	CMP  $3, R2; \
	CSEL GT, R9, R8, R9

// NEXTGROUP moves to the next four rows, or to done when none are left.
#define NEXTGROUP(loop, done) \
	SUBS $4, R2; \
	BLE  done; \
	ADD  $16, R5; \
	ADD  R1<<2, R0; \
	B    loop

// LOADX loads the activation block at R10 (advancing it by 34 bytes): its
// quants in V16 (0-15) and V17 (16-31), its scale as float32 in F30.
#define LOADX \
	MOVHU.P 2(R10), R12; \
	VLD1.P  32(R10), [V16.B16, V17.B16]; \
	FMOVS   R12, F30; \
	FCVTHS  F30, F30

// Q8SCALE sets Fd = fp16 scale at (Rw) (advancing Rw by 2) times the
// activation scale F30, rounded to float32 as the Go kernel's
// float32(fp16At(wb) * fp16At(xb)) is.
#define Q8SCALE(Rw, Fd) \
	MOVHU.P 2(Rw), R12; \
	FMOVS   R12, Fd; \
	FCVTHS  Fd, Fd; \
	FMULS   F30, Fd, Fd

// Q8ROWSDOT accumulates one Q8_0 block of row Rw (quants into Vw0/Vw1,
// scale into F(d)) into the eight lanes V(a0) (lanes 0-3) and V(a1)
// (lanes 4-7): fresh integer lanes from SDOT (the block's scale differs
// from the last, so its sums cannot accumulate), converted exactly
// (|lane| <= 4*128*128), then one fused multiply-add by the scale.
#define Q8ROWSDOT(Rw, Vw0, Vw1, w0, w1, Vi0, Vi1, i0, i1, Fd, d, a0, a1) \
	Q8SCALE(Rw, Fd); \
	VLD1.P 32(Rw), [Vw0.B16, Vw1.B16]; \
	VMOVI  $0, Vi0.B16; \
	VMOVI  $0, Vi1.B16; \
	SDOT_4S(i0, w0, 16); \
	SDOT_4S(i1, w1, 17); \
	SCVTF_4S(i0, i0); \
	SCVTF_4S(i1, i1); \
	FMLA_4S_ELEM(a0, i0, d, 0); \
	FMLA_4S_ELEM(a1, i1, d, 0)

// Q8ROWASIMD is Q8ROWSDOT without SDOT: byte products widened to 16 bits
// (SMULL/SMULL2; |product| <= 128*128 fits), adjacent pairs added into 32
// bits (SADDLP), then adjacent pairs of those (ADDP), which leaves lane j
// with products 4j..4j+3, SDOT's grouping. V8-V11 are scratch.
#define Q8ROWASIMD(Rw, Vw0, Vw1, w0, w1, Fd, d, a0, a1) \
	Q8SCALE(Rw, Fd); \
	VLD1.P 32(Rw), [Vw0.B16, Vw1.B16]; \
	SMULL_8H(8, w0, 16); \
	SMULL2_8H(9, w0, 16); \
	SMULL_8H(10, w1, 17); \
	SMULL2_8H(11, w1, 17); \
	SADDLP_4S(8, 8); \
	SADDLP_4S(9, 9); \
	SADDLP_4S(10, 10); \
	SADDLP_4S(11, 11); \
	VADDP  V9.S4, V8.S4, V8.S4; \
	VADDP  V11.S4, V10.S4, V9.S4; \
	SCVTF_4S(8, 8); \
	SCVTF_4S(9, 9); \
	FMLA_4S_ELEM(a0, 8, d, 0); \
	FMLA_4S_ELEM(a1, 9, d, 0)

// HSUM8 leaves hsum8 of the lanes V(a0) (0-3) and V(a1) (4-7) in F(a0):
// (a4+a0, a5+a1, a6+a2, a7+a3) = (s0, s1, s2, s3), then (s0+s2, s1+s3),
// then their sum. V(t) is scratch.
#define HSUM8(Va0, a0, a1, Vt, t) \
	FADD_4S(a0, a1, a0); \
	VDUP Va0.D[1], Vt.D2; \
	FADD_2S(a0, a0, t); \
	FADDP_S(a0, a0)

// STORE4 stores F0, F2, F4, F6 (the group's rows) to dst, as many as rows
// remain (at least one).
#define STORE4(done) \
	FMOVS F0, (R5); \
	CMP   $2, R2; \
	BLT   done; \
	FMOVS F2, 4(R5); \
	CMP   $3, R2; \
	BLT   done; \
	FMOVS F4, 8(R5); \
	CMP   $4, R2; \
	BLT   done; \
	FMOVS F6, 12(R5)

#define ARGS \
	MOVD w+0(FP), R0; \
	MOVD wstride+8(FP), R1; \
	MOVD rows+16(FP), R2; \
	MOVD x+24(FP), R3; \
	MOVD nb+32(FP), R4; \
	MOVD dst+40(FP), R5

// func gemvQ8_0SDOT(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)
TEXT ·gemvQ8_0SDOT(SB), NOSPLIT, $0-48
	ARGS

q8sdotGroup:
	ROWPTRS
	MOVD R3, R10
	MOVD R4, R11
	// Lanes of row k: V(2k) and V(2k+1).
	VMOVI $0, V0.B16
	VMOVI $0, V1.B16
	VMOVI $0, V2.B16
	VMOVI $0, V3.B16
	VMOVI $0, V4.B16
	VMOVI $0, V5.B16
	VMOVI $0, V6.B16
	VMOVI $0, V7.B16

q8sdotBlock:
	LOADX
	Q8ROWSDOT(R6, V18, V19, 18, 19, V8, V9, 8, 9, F26, 26, 0, 1)
	Q8ROWSDOT(R7, V20, V21, 20, 21, V10, V11, 10, 11, F27, 27, 2, 3)
	Q8ROWSDOT(R8, V22, V23, 22, 23, V12, V13, 12, 13, F28, 28, 4, 5)
	Q8ROWSDOT(R9, V24, V25, 24, 25, V14, V15, 14, 15, F29, 29, 6, 7)
	SUBS $1, R11
	BNE  q8sdotBlock

	HSUM8(V0, 0, 1, V8, 8)
	HSUM8(V2, 2, 3, V9, 9)
	HSUM8(V4, 4, 5, V10, 10)
	HSUM8(V6, 6, 7, V11, 11)
	STORE4(q8sdotDone)
	NEXTGROUP(q8sdotGroup, q8sdotDone)

q8sdotDone:
	RET

// func gemvQ8_0ASIMD(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)
TEXT ·gemvQ8_0ASIMD(SB), NOSPLIT, $0-48
	ARGS

q8asimdGroup:
	ROWPTRS
	MOVD  R3, R10
	MOVD  R4, R11
	VMOVI $0, V0.B16
	VMOVI $0, V1.B16
	VMOVI $0, V2.B16
	VMOVI $0, V3.B16
	VMOVI $0, V4.B16
	VMOVI $0, V5.B16
	VMOVI $0, V6.B16
	VMOVI $0, V7.B16

q8asimdBlock:
	LOADX
	Q8ROWASIMD(R6, V18, V19, 18, 19, F26, 26, 0, 1)
	Q8ROWASIMD(R7, V20, V21, 20, 21, F27, 27, 2, 3)
	Q8ROWASIMD(R8, V22, V23, 22, 23, F28, 28, 4, 5)
	Q8ROWASIMD(R9, V24, V25, 24, 25, F29, 29, 6, 7)
	SUBS $1, R11
	BNE  q8asimdBlock

	HSUM8(V0, 0, 1, V8, 8)
	HSUM8(V2, 2, 3, V9, 9)
	HSUM8(V4, 4, 5, V10, 10)
	HSUM8(V6, 6, 7, V11, 11)
	STORE4(q8asimdDone)
	NEXTGROUP(q8asimdGroup, q8asimdDone)

q8asimdDone:
	RET

// Q4_0: each row's block sum lands in one lane of V0 (row k in lane k),
// and all four rows are scaled and accumulated by one FMLA.

// Q4LOAD loads one Q4_0 block of row Rw (advancing it by 18 bytes): its
// fp16 scale into lane k of V26, its 16 nibble bytes into Vw, and splits
// them into signed values: low nibbles (elements 0-15) into Vlo, high
// nibbles (16-31) into Vhi, each minus 8. V28 holds 0x0f bytes, V29 8s.
#define Q4LOAD(Rw, k, Vw, Vlo, Vhi) \
	MOVHU.P 2(Rw), R12; \
	VMOV    R12, V26.H[k]; \
	VLD1.P  16(Rw), [Vw.B16]; \
	VAND    V28.B16, Vw.B16, Vlo.B16; \
	VUSHR   $4, Vw.B16, Vhi.B16; \
	VSUB    V29.B16, Vlo.B16, Vlo.B16; \
	VSUB    V29.B16, Vhi.B16, Vhi.B16

// Q4ROWSDOT sets V(i) to four partial sums of a row's block product.
#define Q4ROWSDOT(Rw, k, Vw, Vlo, lo, Vhi, hi, Vi, i) \
	Q4LOAD(Rw, k, Vw, Vlo, Vhi); \
	VMOVI $0, Vi.B16; \
	SDOT_4S(i, lo, 16); \
	SDOT_4S(i, hi, 17)

// Q4ROWASIMD is Q4ROWSDOT with 16-bit products: |nibble-8| <= 8, so each
// product is at most 1024 in magnitude and the four added per 16-bit lane
// at most 4096; SADDLP then widens pairs to 32 bits. V8-V11 are scratch.
#define Q4ROWASIMD(Rw, k, Vw, Vlo, lo, Vhi, hi, Vi, i) \
	Q4LOAD(Rw, k, Vw, Vlo, Vhi); \
	SMULL_8H(8, lo, 16); \
	SMULL2_8H(9, lo, 16); \
	SMULL_8H(10, hi, 17); \
	SMULL2_8H(11, hi, 17); \
	VADD V9.H8, V8.H8, V8.H8; \
	VADD V11.H8, V10.H8, V10.H8; \
	VADD V10.H8, V8.H8, V8.H8; \
	SADDLP_4S(i, 8)

// Q4FINISH reduces the partial sums of rows 0-3 (V4-V7) to one lane per
// row, converts them, scales the four weight scales in V26 by the
// activation's (F30), and adds sum*d to the rows' accumulators in V0.
#define Q4FINISH \
	VADDP V5.S4, V4.S4, V4.S4; \
	VADDP V7.S4, V6.S4, V6.S4; \
	VADDP V6.S4, V4.S4, V4.S4; \
	SCVTF_4S(4, 4); \
	FCVTL_4S(26, 26); \
	FMUL_4S_ELEM(26, 26, 30, 0); \
	VFMLA V26.S4, V4.S4, V0.S4

// Q4STORE stores V0's lanes for the rows left (R2, at least one).
#define Q4STORE(done, next) \
	CMP     $4, R2; \
	BLT     3(PC); \
	VST1    [V0.S4], (R5); \
	B       next; \
	FMOVS   F0, (R5); \
	CMP     $2, R2; \
	BLT     done; \
	VMOV    V0.S[1], R12; \
	MOVW    R12, 4(R5); \
	CMP     $3, R2; \
	BLT     done; \
	VMOV    V0.S[2], R12; \
	MOVW    R12, 8(R5)

#define Q4CONSTS \
	VMOVI $15, V28.B16; \
	VMOVI $8, V29.B16

// func gemvQ4_0SDOT(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)
TEXT ·gemvQ4_0SDOT(SB), NOSPLIT, $0-48
	ARGS
	Q4CONSTS

q4sdotGroup:
	ROWPTRS
	MOVD  R3, R10
	MOVD  R4, R11
	VMOVI $0, V0.B16

q4sdotBlock:
	LOADX
	Q4ROWSDOT(R6, 0, V18, V12, 12, V13, 13, V4, 4)
	Q4ROWSDOT(R7, 1, V19, V14, 14, V15, 15, V5, 5)
	Q4ROWSDOT(R8, 2, V20, V22, 22, V23, 23, V6, 6)
	Q4ROWSDOT(R9, 3, V21, V24, 24, V25, 25, V7, 7)
	Q4FINISH
	SUBS $1, R11
	BNE  q4sdotBlock

	Q4STORE(q4sdotDone, q4sdotNext)

q4sdotNext:
	NEXTGROUP(q4sdotGroup, q4sdotDone)

q4sdotDone:
	RET

// func gemvQ4_0ASIMD(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)
TEXT ·gemvQ4_0ASIMD(SB), NOSPLIT, $0-48
	ARGS
	Q4CONSTS

q4asimdGroup:
	ROWPTRS
	MOVD  R3, R10
	MOVD  R4, R11
	VMOVI $0, V0.B16

q4asimdBlock:
	LOADX
	Q4ROWASIMD(R6, 0, V18, V12, 12, V13, 13, V4, 4)
	Q4ROWASIMD(R7, 1, V19, V14, 14, V15, 15, V5, 5)
	Q4ROWASIMD(R8, 2, V20, V22, 22, V23, 23, V6, 6)
	Q4ROWASIMD(R9, 3, V21, V24, 24, V25, 25, V7, 7)
	Q4FINISH
	SUBS $1, R11
	BNE  q4asimdBlock

	Q4STORE(q4asimdDone, q4asimdNext)

q4asimdNext:
	NEXTGROUP(q4asimdGroup, q4asimdDone)

q4asimdDone:
	RET
