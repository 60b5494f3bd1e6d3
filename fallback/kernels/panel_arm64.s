//go:build !purego

#include "textflag.h"
#include "neon_arm64.h"

// Panel kernels (panel.go has the layout): one token against the 16 rows
// of a panel, all 16 results stored. A panel line holds four quant bytes
// of each row, row r at bytes 4r..4r+3, so one 16-byte load is four rows
// and one SDOT by element multiplies them all by the same four activation
// bytes: the rows end up in lanes, with no horizontal sums. The float
// order is the pure-Go kernels' (gemmPanelGo): for Q8_0 a panel line g is
// vec_dot's lane g, accumulated per row and lane and added by hsum8's
// tree at the end; for Q4_0 one float per row.
//
// Registers: R0 quants, R1 scales, R3 activation row, R4 blocks per row,
// R5 dst, R10 activation pointer, R11 blocks left, R2 row groups left,
// R13/R14 quant and scale pointers of a group.

// LOADX loads the activation block at R10 (advancing it by 34 bytes): its
// quants in V16 (0-15) and V17 (16-31), its scale as float32 in F30.
#define LOADX \
	MOVHU.P 2(R10), R12; \
	VLD1.P  32(R10), [V16.B16, V17.B16]; \
	FMOVS   R12, F30; \
	FCVTHS  F30, F30

#define ARGS \
	MOVD q+0(FP), R0; \
	MOVD s+8(FP), R1; \
	MOVD nb+16(FP), R4; \
	MOVD x+24(FP), R3; \
	MOVD dst+32(FP), R5

// Q8_0 keeps eight float lanes per row, 32 registers for 16 rows, more
// than there are: the panel is done as four groups of four rows (V(g)
// holds lane g of the group's rows), each a pass over the activations.

// Q8SCALES sets V26 to the four rows' d = fp16(dw)*fp16(dx), rounded to
// float32 per lane as the scalar product is, from the scales at (R14).
#define Q8SCALES \
	FMOVD (R14), F26; \
	ADD   $32, R14; \
	FCVTL_4S(26, 26); \
	FMUL_4S_ELEM(26, 26, 30, 0)

// Q8HSUM leaves the group's results in V0 by hsum8's tree: s_j =
// a(4+j)+a(j), then (s0+s2) + (s1+s3), lane-wise over the four rows.
#define Q8HSUM \
	FADD_4S(0, 4, 0); \
	FADD_4S(1, 5, 1); \
	FADD_4S(2, 6, 2); \
	FADD_4S(3, 7, 3); \
	FADD_4S(0, 0, 2); \
	FADD_4S(1, 1, 3); \
	FADD_4S(0, 0, 1)

#define ZERO8 \
	VMOVI $0, V0.B16; \
	VMOVI $0, V1.B16; \
	VMOVI $0, V2.B16; \
	VMOVI $0, V3.B16; \
	VMOVI $0, V4.B16; \
	VMOVI $0, V5.B16; \
	VMOVI $0, V6.B16; \
	VMOVI $0, V7.B16

// Q8LINESDOT does line g (at off(R13)) of the group: the bytes are q+128
// (see panel.go), so flipping the top bit (V27 = 0x80) restores the
// signed quants; SDOT by element with activation dword g (register xr,
// lane xl) gives vec_dot's lane g of four rows; converted and fused into
// lane g's accumulators by d.
#define Q8LINESDOT(off, Fw, Vw, w, Vi, i, Vacc, xr, xl) \
	FMOVQ off(R13), Fw; \
	VEOR  V27.B16, Vw.B16, Vw.B16; \
	VMOVI $0, Vi.B16; \
	SDOT_4S_ELEM(i, w, xr, xl); \
	SCVTF_4S(i, i); \
	VFMLA V26.S4, Vi.S4, Vacc.S4

// func gemmQ8_0x16SDOT(q *byte, s *byte, nb int, x *byte, dst *float32)
TEXT ·gemmQ8_0x16SDOT(SB), NOSPLIT, $0-40
	ARGS
	VMOVI $128, V27.B16
	MOVD  $4, R2

q8sGroup:
	MOVD R0, R13
	MOVD R1, R14
	MOVD R3, R10
	MOVD R4, R11
	ZERO8

q8sBlock:
	LOADX
	Q8SCALES
	Q8LINESDOT(0, F18, V18, 18, V8, 8, V0, 16, 0)
	Q8LINESDOT(64, F19, V19, 19, V9, 9, V1, 16, 1)
	Q8LINESDOT(128, F20, V20, 20, V10, 10, V2, 16, 2)
	Q8LINESDOT(192, F21, V21, 21, V11, 11, V3, 16, 3)
	Q8LINESDOT(256, F22, V22, 22, V12, 12, V4, 17, 0)
	Q8LINESDOT(320, F23, V23, 23, V13, 13, V5, 17, 1)
	Q8LINESDOT(384, F24, V24, 24, V14, 14, V6, 17, 2)
	Q8LINESDOT(448, F25, V25, 25, V15, 15, V7, 17, 3)
	ADD  $512, R13
	SUBS $1, R11
	BNE  q8sBlock

	Q8HSUM
	VST1.P [V0.S4], 16(R5)
	ADD    $16, R0
	ADD    $8, R1
	SUBS   $1, R2
	BNE    q8sGroup
	RET

// Without SDOT, line g is widened to 16 bits (two registers of two rows
// each), multiplied by the pattern (x[4g..4g+3], x[4g..4g+3]) (V(8+g),
// built once per block), and the products of each row added in pairs
// twice (SADDLP, ADDP), which leaves the four rows' lane g in order.

// Q8PATTERNS sets V8-V15 to the eight patterns from the activation
// quants in V16/V17, sign-extended to 16 bits first (V18-V21 scratch).
#define Q8PATTERNS \
	SXTL_8H(18, 16); \
	SXTL2_8H(19, 16); \
	SXTL_8H(20, 17); \
	SXTL2_8H(21, 17); \
	VDUP V18.D[0], V8.D2; \
	VDUP V18.D[1], V9.D2; \
	VDUP V19.D[0], V10.D2; \
	VDUP V19.D[1], V11.D2; \
	VDUP V20.D[0], V12.D2; \
	VDUP V20.D[1], V13.D2; \
	VDUP V21.D[0], V14.D2; \
	VDUP V21.D[1], V15.D2

#define Q8LINEASIMD(off, Fw, Vw, w, Va, a, Vb, b, p, Vacc) \
	FMOVQ off(R13), Fw; \
	VEOR  V27.B16, Vw.B16, Vw.B16; \
	SXTL_8H(a, w); \
	SXTL2_8H(b, w); \
	MUL_8H(a, a, p); \
	MUL_8H(b, b, p); \
	SADDLP_4S(a, a); \
	SADDLP_4S(b, b); \
	VADDP Vb.S4, Va.S4, Va.S4; \
	SCVTF_4S(a, a); \
	VFMLA V26.S4, Va.S4, Vacc.S4

// func gemmQ8_0x16ASIMD(q *byte, s *byte, nb int, x *byte, dst *float32)
TEXT ·gemmQ8_0x16ASIMD(SB), NOSPLIT, $0-40
	ARGS
	VMOVI $128, V27.B16
	MOVD  $4, R2

q8aGroup:
	MOVD R0, R13
	MOVD R1, R14
	MOVD R3, R10
	MOVD R4, R11
	ZERO8

q8aBlock:
	LOADX
	Q8SCALES
	Q8PATTERNS
	Q8LINEASIMD(0, F18, V18, 18, V19, 19, V20, 20, 8, V0)
	Q8LINEASIMD(64, F21, V21, 21, V22, 22, V23, 23, 9, V1)
	Q8LINEASIMD(128, F18, V18, 18, V19, 19, V20, 20, 10, V2)
	Q8LINEASIMD(192, F21, V21, 21, V22, 22, V23, 23, 11, V3)
	Q8LINEASIMD(256, F18, V18, 18, V19, 19, V20, 20, 12, V4)
	Q8LINEASIMD(320, F21, V21, 21, V22, 22, V23, 23, 13, V5)
	Q8LINEASIMD(384, F18, V18, 18, V19, 19, V20, 20, 14, V6)
	Q8LINEASIMD(448, F21, V21, 21, V22, 22, V23, 23, 15, V7)
	ADD  $512, R13
	SUBS $1, R11
	BNE  q8aBlock

	Q8HSUM
	VST1.P [V0.S4], 16(R5)
	ADD    $16, R0
	ADD    $8, R1
	SUBS   $1, R2
	BNE    q8aGroup
	RET

// Q4_0 keeps one float per row: all 16 rows in V0-V3 (rows 4k..4k+3 in
// V(k)), one pass over the activations. The nibbles are used unsigned
// (0..15) and the block sum corrected by -8*sum(x) in integers, which
// saves subtracting 8 from every nibble: sum((n-8)*x) = sum(n*x) - 8*sum(x).

// Q4SCALES sets V20-V23 to the 16 rows' d = fp16(dw)*fp16(dx) (rows
// 4k..4k+3 in V(20+k)), advancing R1 by the block's 32 bytes of scales.
#define Q4SCALES \
	VLD1.P 32(R1), [V24.B16, V25.B16]; \
	FCVTL_4S(20, 24); \
	FCVTL2_4S(21, 24); \
	FCVTL_4S(22, 25); \
	FCVTL2_4S(23, 25); \
	FMUL_4S_ELEM(20, 20, 30, 0); \
	FMUL_4S_ELEM(21, 21, 30, 0); \
	FMUL_4S_ELEM(22, 22, 30, 0); \
	FMUL_4S_ELEM(23, 23, 30, 0)

// Q4FINISH subtracts the correction (V31) from group k's block sums V(i),
// converts them and fuses them into the rows' accumulators V(acc) by d
// (V(d)): acc = fma(sum, d, acc) per row.
#define Q4FINISH(Vi, i, Vd, Vacc) \
	VSUB  V31.S4, Vi.S4, Vi.S4; \
	SCVTF_4S(i, i); \
	VFMLA Vd.S4, Vi.S4, Vacc.S4

// Q4LINESDOT adds line g of group k (at off(R0)) to the group's block
// sums V(i): low nibbles times activation dword g of 0-15 (V16), high
// nibbles times dword g of 16-31 (V17). V28 holds 0x0f bytes.
#define Q4LINESDOT(off, Fw, Vw, Vlo, lo, Vhi, hi, i, g) \
	FMOVQ off(R0), Fw; \
	VAND  V28.B16, Vw.B16, Vlo.B16; \
	VUSHR $4, Vw.B16, Vhi.B16; \
	SDOT_4S_ELEM(i, lo, 16, g); \
	SDOT_4S_ELEM(i, hi, 17, g)

// Q4GROUPSDOT sums group k's block (lines at k*16 + g*64).
#define Q4GROUPSDOT(k16, Vi, i) \
	VMOVI $0, Vi.B16; \
	Q4LINESDOT(k16, F8, V8, V9, 9, V10, 10, i, 0); \
	Q4LINESDOT(64+k16, F11, V11, V12, 12, V13, 13, i, 1); \
	Q4LINESDOT(128+k16, F8, V8, V9, 9, V10, 10, i, 2); \
	Q4LINESDOT(192+k16, F11, V11, V12, 12, V13, 13, i, 3)

// func gemmQ4_0x16SDOT(q *byte, s *byte, nb int, x *byte, dst *float32)
TEXT ·gemmQ4_0x16SDOT(SB), NOSPLIT, $0-40
	ARGS
	MOVD  R3, R10
	MOVD  R4, R11
	VMOVI $15, V28.B16
	VMOVI $1, V29.B16
	VMOVI $0, V0.B16
	VMOVI $0, V1.B16
	VMOVI $0, V2.B16
	VMOVI $0, V3.B16

q4sBlock:
	LOADX
	// The correction 8*sum(x) in all four lanes of V31 (SDOT by ones).
	VMOVI $0, V31.B16
	SDOT_4S(31, 16, 29)
	SDOT_4S(31, 17, 29)
	VADDV V31.S4, V31
	VDUP  V31.S[0], V31.S4
	VSHL  $3, V31.S4, V31.S4
	Q4SCALES
	Q4GROUPSDOT(0, V4, 4)
	Q4GROUPSDOT(16, V5, 5)
	Q4GROUPSDOT(32, V6, 6)
	Q4GROUPSDOT(48, V7, 7)
	Q4FINISH(V4, 4, V20, V0)
	Q4FINISH(V5, 5, V21, V1)
	Q4FINISH(V6, 6, V22, V2)
	Q4FINISH(V7, 7, V23, V3)
	ADD  $256, R0
	SUBS $1, R11
	BNE  q4sBlock

	VST1 [V0.S4, V1.S4, V2.S4, V3.S4], (R5)
	RET

// Without SDOT: the unsigned nibbles are widened to 16 bits and multiplied
// by the patterns (x[4g..4g+3], x[4g..4g+3]) (V(8+g), low nibbles) and
// (x[16+4g..], ...) (V(12+g), high nibbles), accumulated in 16 bits over
// the block's eight products per lane (at most 8*15*128 = 15360), then
// summed per row into 32 bits (SADDLP, ADDP).

// Q4PATTERNS sets V8-V15 to the patterns and V31 to 8*sum(x) in every
// lane, from the activation quants in V16/V17 (V18-V21 scratch).
#define Q4PATTERNS \
	SXTL_8H(18, 16); \
	SXTL2_8H(19, 16); \
	SXTL_8H(20, 17); \
	SXTL2_8H(21, 17); \
	VDUP V18.D[0], V8.D2; \
	VDUP V18.D[1], V9.D2; \
	VDUP V19.D[0], V10.D2; \
	VDUP V19.D[1], V11.D2; \
	VDUP V20.D[0], V12.D2; \
	VDUP V20.D[1], V13.D2; \
	VDUP V21.D[0], V14.D2; \
	VDUP V21.D[1], V15.D2; \
	VADD V19.H8, V18.H8, V18.H8; \
	VADD V21.H8, V20.H8, V20.H8; \
	VADD V20.H8, V18.H8, V18.H8; \
	SADDLP_4S(18, 18); \
	VADDV V18.S4, V31; \
	VDUP  V31.S[0], V31.S4; \
	VSHL  $3, V31.S4, V31.S4

// Q4LINEASIMD adds line g of the current group (at off(R0)) to the 16-bit
// accumulators V4 (rows 0-1 of the group) and V5 (rows 2-3). V18, V19,
// V24-V27 and V29 are scratch (the scales in V20-V23 stay).
#define Q4LINEASIMD(off, pl, ph) \
	FMOVQ  off(R0), F18; \
	VAND   V28.B16, V18.B16, V19.B16; \
	VUSHR  $4, V18.B16, V24.B16; \
	VUXTL  V19.B8, V25.H8; \
	VUXTL2 V19.B16, V26.H8; \
	VUXTL  V24.B8, V27.H8; \
	VUXTL2 V24.B16, V29.H8; \
	MLA_8H(4, 25, pl); \
	MLA_8H(5, 26, pl); \
	MLA_8H(4, 27, ph); \
	MLA_8H(5, 29, ph)

// Q4GROUPASIMD does group k (lines at k*16 + g*64): its four rows' block
// sums, corrected, converted and fused into V(acc) by d = V(d).
#define Q4GROUPASIMD(k16, Vd, Vacc) \
	VMOVI $0, V4.B16; \
	VMOVI $0, V5.B16; \
	Q4LINEASIMD(k16, 8, 12); \
	Q4LINEASIMD(64+k16, 9, 13); \
	Q4LINEASIMD(128+k16, 10, 14); \
	Q4LINEASIMD(192+k16, 11, 15); \
	SADDLP_4S(4, 4); \
	SADDLP_4S(5, 5); \
	VADDP V5.S4, V4.S4, V6.S4; \
	Q4FINISH(V6, 6, Vd, Vacc)

// func gemmQ4_0x16ASIMD(q *byte, s *byte, nb int, x *byte, dst *float32)
TEXT ·gemmQ4_0x16ASIMD(SB), NOSPLIT, $0-40
	ARGS
	MOVD  R3, R10
	MOVD  R4, R11
	VMOVI $15, V28.B16
	VMOVI $0, V0.B16
	VMOVI $0, V1.B16
	VMOVI $0, V2.B16
	VMOVI $0, V3.B16

q4aBlock:
	LOADX
	Q4PATTERNS
	Q4SCALES
	Q4GROUPASIMD(0, V20, V0)
	Q4GROUPASIMD(16, V21, V1)
	Q4GROUPASIMD(32, V22, V2)
	Q4GROUPASIMD(48, V23, V3)
	ADD  $256, R0
	SUBS $1, R11
	BNE  q4aBlock

	VST1 [V0.S4, V1.S4, V2.S4, V3.S4], (R5)
	RET
