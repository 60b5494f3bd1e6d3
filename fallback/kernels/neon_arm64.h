// Advanced SIMD instructions that Go's arm64 assembler does not know,
// encoded as WORDs (Arm ARM, "A64 Advanced SIMD" encodings). Operands are
// register numbers, in the Arm operand order: NAME(d, n, m) is
// "NAME Vd, Vn, Vm". Every macro below lists its mnemonic and the fixed
// bits; the variable fields are Rd at bit 0, Rn at bit 5, Rm at bit 16,
// and for the by-element forms the lane index i split into L (bit 21,
// i&1) and H (bit 11, i>>1).
//
// The encodings were checked against llvm-mc (-mattr=+dotprod
// -show-encoding), and the built code can be read back with
//     llvm-objdump -d --mattr=+dotprod kernels.test
// which prints these WORDs as their mnemonics. Each one is also executed
// by the package tests under qemu-aarch64 against the pure-Go kernels.

// SDOT Vd.4S, Vn.16B, Vm.16B (FEAT_DotProd): lane j of Vd += the sum of
// the four products of signed bytes 4j..4j+3 of Vn and Vm.
#define SDOT_4S(d, n, m) WORD $(0x4e809400 | ((m)<<16) | ((n)<<5) | (d))

// SDOT Vd.4S, Vn.16B, Vm.4B[i] (FEAT_DotProd): lane j of Vd += the dot of
// bytes 4j..4j+3 of Vn with bytes 4i..4i+3 of Vm.
#define SDOT_4S_ELEM(d, n, m, i) WORD $(0x4f80e000 | (((i)&1)<<21) | (((i)>>1)<<11) | ((m)<<16) | ((n)<<5) | (d))

// SMULL Vd.8H, Vn.8B, Vm.8B and SMULL2 Vd.8H, Vn.16B, Vm.16B: signed byte
// products of the low (high) eight lanes, widened to 16 bits; SMULL
// Vd.4S, Vn.4H, Vm.4H and SMULL2 Vd.4S, Vn.8H, Vm.8H likewise for 16-bit
// lanes.
#define SMULL_8H(d, n, m) WORD $(0x0e20c000 | ((m)<<16) | ((n)<<5) | (d))
#define SMULL2_8H(d, n, m) WORD $(0x4e20c000 | ((m)<<16) | ((n)<<5) | (d))
#define SMULL_4S(d, n, m) WORD $(0x0e60c000 | ((m)<<16) | ((n)<<5) | (d))
#define SMULL2_4S(d, n, m) WORD $(0x4e60c000 | ((m)<<16) | ((n)<<5) | (d))

// MLA Vd.4S, Vn.4S, Vm.S[i]: Vd += Vn*Vm[i], 32-bit lanes.
#define MLA_4S_ELEM(d, n, m, i) WORD $(0x6f800000 | (((i)&1)<<21) | (((i)>>1)<<11) | ((m)<<16) | ((n)<<5) | (d))

// ADDP Vd.4S, Vn.4S, Vm.4S (the same as Go's VADDP, for macros whose
// operands are register numbers): adjacent pairs of Vn, then of Vm.
#define ADDP_4S(d, n, m) WORD $(0x4ea0bc00 | ((m)<<16) | ((n)<<5) | (d))

// MOVI Vd.16B, #0 (Go's VMOVI, for macros whose operands are numbers).
#define MOVI0(d) WORD $(0x4f00e400 | (d))

// MUL Vd.8H, Vn.8H, Vm.8H and MLA Vd.8H, Vn.8H, Vm.8H (Vd += Vn*Vm),
// 16-bit lanes, wrapping.
#define MUL_8H(d, n, m) WORD $(0x4e609c00 | ((m)<<16) | ((n)<<5) | (d))
#define MLA_8H(d, n, m) WORD $(0x4e609400 | ((m)<<16) | ((n)<<5) | (d))

// SADDLP Vd.4S, Vn.8H: adds adjacent pairs of signed 16-bit lanes into
// 32-bit lanes.
#define SADDLP_4S(d, n) WORD $(0x4e602800 | ((n)<<5) | (d))

// SXTL Vd.8H, Vn.8B and SXTL2 Vd.8H, Vn.16B (SSHLL/SSHLL2 #0): sign-extend
// the low (high) eight bytes to 16 bits.
#define SXTL_8H(d, n) WORD $(0x0f08a400 | ((n)<<5) | (d))
#define SXTL2_8H(d, n) WORD $(0x4f08a400 | ((n)<<5) | (d))

// SXTL Vd.4S, Vn.4H and SXTL2 Vd.4S, Vn.8H: 16-bit lanes to 32 bits.
#define SXTL_4S(d, n) WORD $(0x0f10a400 | ((n)<<5) | (d))
#define SXTL2_4S(d, n) WORD $(0x4f10a400 | ((n)<<5) | (d))

// SCVTF Vd.4S, Vn.4S: int32 lanes to float32 (exact below 2^24).
#define SCVTF_4S(d, n) WORD $(0x4e21d800 | ((n)<<5) | (d))

// FCVTL Vd.4S, Vn.4H and FCVTL2 Vd.4S, Vn.8H: the four low (high) fp16
// lanes to float32 (exact).
#define FCVTL_4S(d, n) WORD $(0x0e217800 | ((n)<<5) | (d))
#define FCVTL2_4S(d, n) WORD $(0x4e217800 | ((n)<<5) | (d))

// FADD Vd.4S / Vd.2S, Vn, Vm: lane-wise float32 sums.
#define FADD_4S(d, n, m) WORD $(0x4e20d400 | ((m)<<16) | ((n)<<5) | (d))
#define FADD_2S(d, n, m) WORD $(0x0e20d400 | ((m)<<16) | ((n)<<5) | (d))

// FADDP Sd, Vn.2S: scalar sum of the two low lanes of Vn.
#define FADDP_S(d, n) WORD $(0x7e30d800 | ((n)<<5) | (d))

// FMUL Vd.4S, Vn.4S, Vm.S[i]: each lane rounded as a scalar FMUL is.
#define FMUL_4S_ELEM(d, n, m, i) WORD $(0x4f809000 | (((i)&1)<<21) | (((i)>>1)<<11) | ((m)<<16) | ((n)<<5) | (d))

// FMLA Vd.4S, Vn.4S, Vm.S[i]: Vd += Vn*Vm[i], fused (one rounding), as
// VFMADD231PS computes it.
#define FMLA_4S_ELEM(d, n, m, i) WORD $(0x4f801000 | (((i)&1)<<21) | (((i)>>1)<<11) | ((m)<<16) | ((n)<<5) | (d))

// FABS Vd.4S, Vn.4S.
#define FABS_4S(d, n) WORD $(0x4ea0f800 | ((n)<<5) | (d))

// FCMGT Vd.4S, Vn.4S, Vm.4S: all ones where Vn > Vm (false if either is
// NaN). FACGT likewise for |Vn| > |Vm|.
#define FCMGT_4S(d, n, m) WORD $(0x6ea0e400 | ((m)<<16) | ((n)<<5) | (d))
#define FACGT_4S(d, n, m) WORD $(0x6ea0ec00 | ((m)<<16) | ((n)<<5) | (d))

// FCVTNS Vd.4S, Vn.4S: float32 to int32, rounding to nearest with ties to
// even, saturating; NaN gives 0.
#define FCVTNS_4S(d, n) WORD $(0x4e21a800 | ((n)<<5) | (d))

// SQXTN Vd.4H, Vn.4S / SQXTN2 Vd.8H, Vn.4S: signed saturating narrowing of
// 32-bit lanes into the low (high) half of Vd; SQXTN Vd.8B, Vn.8H /
// SQXTN2 Vd.16B, Vn.8H likewise from 16 to 8 bits.
#define SQXTN_4H(d, n) WORD $(0x0e614800 | ((n)<<5) | (d))
#define SQXTN2_8H(d, n) WORD $(0x4e614800 | ((n)<<5) | (d))
#define SQXTN_8B(d, n) WORD $(0x0e214800 | ((n)<<5) | (d))
#define SQXTN2_16B(d, n) WORD $(0x4e214800 | ((n)<<5) | (d))
