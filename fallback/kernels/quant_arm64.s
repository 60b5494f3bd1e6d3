//go:build !purego

#include "textflag.h"
#include "neon_arm64.h"

// Activation quantizer to Q8_0, the bytes of llama.cpp's AVX2
// quantize_row_q8_0 (which the x86 CPU path and act.go's quantizeRowQ8_0
// produce): d = fp16(amax/127), q = round-half-even(x * (127/amax)),
// saturated to int8. A product that VCVTPS2DQ cannot convert (NaN, or
// 2^31 and more in magnitude) gives its integer indefinite, INT32_MIN,
// hence -128; such products exist only in blocks holding NaN, whose
// maximum may then be below some of their values.
//
// The block maximum repeats llama.cpp's reduction over its 8-float AVX
// lanes (the AVX2 one in quant_amd64.s does too): a 256-bit register is
// the pair V(2i) (low half), V(2i+1) (high half), and every VMAXPS(a, b)
// is "a > b ? a : b" (FCMGT, then BIF), so that a NaN is kept or dropped
// exactly as there; NEON's FMAX would propagate it instead.

// MAXPS sets Vm = Vm > Va ? Vm : Va (V20 scratch).
#define MAXPS(Vm, m, Va, a) \
	FCMGT_4S(20, m, a); \
	VBIF V20.B16, Va.B16, Vm.B16

// QUANT4 converts the scaled lanes of V(v) to int32 in V(i), rounding
// half to even; lanes VCVTPS2DQ cannot convert (not |v| < 2^31, V23: NaN
// included, which FCVTNS makes 0, and values it would saturate) become
// INT32_MIN (V22) as on x86.
#define QUANT4(v, Vi, i, Vk, k) \
	FCVTNS_4S(i, v); \
	FACGT_4S(k, 23, v); \
	VBIF Vk.B16, V22.B16, Vi.B16

// func quantizeQ8_0NEON(x *float32, nb int, dst *byte)
TEXT ·quantizeQ8_0NEON(SB), NOSPLIT, $0-24
	MOVD  x+0(FP), R0
	MOVD  nb+8(FP), R1
	MOVD  dst+16(FP), R2
	MOVW  $0x42fe0000, R3 // 127.0
	FMOVS R3, F31
	MOVW  $0x80000000, R3
	VDUP  R3, V22.S4
	MOVW  $0x4f000000, R3 // 2^31
	VDUP  R3, V23.S4
	VMOVI $0, V21.B16

block:
	VLD1.P 64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]

	// maxAbs = max(max(max(|v0|, |v1|), |v2|), |v3|) per AVX lane.
	FABS_4S(16, 0)
	FABS_4S(17, 1)
	FABS_4S(18, 2)
	FABS_4S(19, 3)
	MAXPS(V16, 16, V18, 18)
	MAXPS(V17, 17, V19, 19)
	FABS_4S(18, 4)
	FABS_4S(19, 5)
	MAXPS(V16, 16, V18, 18)
	MAXPS(V17, 17, V19, 19)
	FABS_4S(18, 6)
	FABS_4S(19, 7)
	MAXPS(V16, 16, V18, 18)
	MAXPS(V17, 17, V19, 19)

	// max4 = max(high half, low half); max(max4, movehl(max4));
	// max_ss(max4, movehdup(max4)): the block maximum in lane 0 of V17.
	MAXPS(V17, 17, V16, 16)
	VDUP V17.D[1], V18.D2
	MAXPS(V17, 17, V18, 18)
	VDUP V17.S[1], V18.S4
	MAXPS(V17, 17, V18, 18)

	// d = amax/127 stored as fp16 (FCVT rounds to nearest even, as
	// F16C and quant.FP32ToFP16 do).
	FDIVS  F31, F17, F18
	FCVTSH F18, F18
	FMOVS  F18, R3
	MOVH.P R3, 2(R2)

	// id = amax != 0 ? 127/amax : 0 (NaN != 0, as in the Go code).
	FDIVS  F17, F31, F19
	FCMPS  $(0.0), F17
	FCSELS NE, F19, F21, F19

	// x*id rounded to float32 first (a separate multiply, as VMULPS then
	// VROUNDPS), then to the nearest integer.
	FMUL_4S_ELEM(0, 0, 19, 0)
	FMUL_4S_ELEM(1, 1, 19, 0)
	FMUL_4S_ELEM(2, 2, 19, 0)
	FMUL_4S_ELEM(3, 3, 19, 0)
	FMUL_4S_ELEM(4, 4, 19, 0)
	FMUL_4S_ELEM(5, 5, 19, 0)
	FMUL_4S_ELEM(6, 6, 19, 0)
	FMUL_4S_ELEM(7, 7, 19, 0)
	QUANT4(0, V8, 8, V16, 16)
	QUANT4(1, V9, 9, V17, 17)
	QUANT4(2, V10, 10, V18, 18)
	QUANT4(3, V11, 11, V19, 19)
	QUANT4(4, V12, 12, V16, 16)
	QUANT4(5, V13, 13, V17, 17)
	QUANT4(6, V14, 14, V18, 18)
	QUANT4(7, V15, 15, V19, 19)

	// Saturating narrowing to 16 and then 8 bits, as VPACKSSDW and
	// VPACKSSWB; NEON keeps the element order, so no permute is needed.
	SQXTN_4H(24, 8)
	SQXTN2_8H(24, 9)
	SQXTN_4H(25, 10)
	SQXTN2_8H(25, 11)
	SQXTN_4H(26, 12)
	SQXTN2_8H(26, 13)
	SQXTN_4H(27, 14)
	SQXTN2_8H(27, 15)
	SQXTN_8B(28, 24)
	SQXTN2_16B(28, 25)
	SQXTN_8B(29, 26)
	SQXTN2_16B(29, 27)
	VST1.P [V28.B16, V29.B16], 32(R2)

	SUBS $1, R1
	BNE  block
	RET
