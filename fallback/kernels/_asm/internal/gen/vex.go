package gen

import (
	"fmt"
	"strings"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

// AVX-VNNI, the VEX-encoded VPDPBUSD of CPUs without AVX-512 (Intel's
// client CPUs since Alder Lake, its E-core Xeons), is absent from Go's
// assembler, which encodes VPDPBUSD only in its EVEX form (AVX512-VNNI):
// that form faults with #UD on a CPU without AVX-512, whatever its
// registers. So the kernels write the instruction as BYTE directives.
//
// Bytes cannot name a virtual register, so the three operands are
// physical registers (Y0-Y15) that the generator fixes. avo's allocator
// handles fixed registers as it does those of MULQ or SHLQ CL: the first
// BYTE directive declares them as inputs and the accumulator as output,
// which puts them in the liveness analysis, and virtual registers are
// kept off them while they are live.

// The registers the AVX-VNNI kernels fix for VPDPBUSD's operands. Any of
// Y0-Y15 would encode; one shared set keeps the generated code readable
// and leaves the registers between them to the allocator.
var (
	// VNNIAcc are accumulators (VPDPBUSD destinations).
	VNNIAcc = []reg.VecPhysical{reg.Y0, reg.Y1, reg.Y2, reg.Y3, reg.Y4, reg.Y5, reg.Y6, reg.Y7}
	// VNNIW holds the unsigned operand (weights), VNNIX the signed one
	// (activations).
	VNNIW, VNNIX reg.VecPhysical = reg.Y14, reg.Y15
)

// VEXVPDPBUSDY returns the VEX encoding of VPDPBUSD on YMM registers, in
// Intel's operand order: vpdpbusd ymm(dst), ymm(src1), ymm(src2), i.e.
// dst's int32 lanes += the sums of 4 products of src1's unsigned bytes
// with src2's signed bytes. The SDM's form is VEX.256.66.0F38.W0 50 /r:
// a three-byte VEX prefix (C4; R̄X̄B̄ and map 0F38 = 00010; W=0, the
// inverted src1 in vvvv, L=1 for 256 bits, pp=01 for 66), the opcode,
// then ModRM with mod=11 (register operand), dst in reg and src2 in rm.
// Registers numbered 8-15 put their fourth bit in R̄ (dst) and B̄ (src2).
func VEXVPDPBUSDY(dst, src1, src2 int) [5]byte {
	for _, r := range []int{dst, src1, src2} {
		if r < 0 || r > 15 {
			panic(fmt.Sprintf("gen: VEX encodes Y0-Y15, not Y%d", r))
		}
	}
	inv := func(bit int) byte { return byte(bit^1) & 1 }
	p1 := inv(dst>>3)<<7 | 1<<6 | inv(src2>>3)<<5 | 0x02
	p2 := byte(^src1&15)<<3 | 1<<2 | 0x01 // W=0 in bit 7
	modrm := byte(3<<6 | (dst&7)<<3 | src2&7)
	return [5]byte{0xc4, p1, p2, 0x50, modrm}
}

// VPDPBUSDY emits, in Go's operand order, VPDPBUSD x, w, acc on YMM
// registers with the VEX encoding: acc's int32 lanes += sum of 4
// products of w's unsigned bytes with x's signed bytes. It is preceded by
// a comment that spells the instruction, which the package's tests parse
// and check against their own encoder.
func VPDPBUSDY(x, w, acc reg.VecPhysical) {
	idx := func(r reg.VecPhysical) int {
		if !strings.HasPrefix(r.Asm(), "Y") {
			panic(fmt.Sprintf("gen: VPDPBUSDY takes YMM registers, not %s", r.Asm()))
		}
		return int(r.PhysicalIndex())
	}
	enc := VEXVPDPBUSDY(idx(acc), idx(w), idx(x))
	Comment(fmt.Sprintf("VPDPBUSD %s, %s, %s (AVX-VNNI, VEX)", x.Asm(), w.Asm(), acc.Asm()))
	for i, b := range enc {
		in := &ir.Instruction{Opcode: "BYTE", Operands: []Op{U8(b)}}
		if i == 0 {
			in.Inputs = []Op{x, w, acc}
			in.Outputs = []Op{acc}
			in.ISA = []string{"AVXVNNI"}
		}
		Instruction(in)
	}
}
