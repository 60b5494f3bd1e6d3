// Command cpu generates small CPU helpers of the kernels: the spin-wait
// hint of the Pool's workers, the clean-up after AVX-512 kernels, and the
// streaming read of the bandwidth benchmark.
package main

//go:generate go run . -out ../../cpu_amd64.s -stubs ../../cpu_amd64.go -pkg kernels

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"

	"qinfer/fallback/kernels/_asm/internal/gen"
)

func main() {
	gen.Header()

	TEXT("cpuPause", NOSPLIT, "func()")
	Doc("cpuPause executes PAUSE: a spinning thread yields the core's resources",
		"and slows the loop down to a few tens of nanoseconds per check.")
	PAUSE()
	RET()

	TEXT("clearUpperZMM", NOSPLIT, "func()")
	Doc("clearUpperZMM zeroes ZMM16-31 and the upper bits of ZMM0-15. VZEROUPPER, which",
		"ends every kernel, leaves 16-31 alone, and upper bits left dirty there keep the",
		"core in its 512-bit state, slowing later SSE code (Go's own float code) and AVX2.")
	for _, x := range []reg.VecPhysical{reg.X16, reg.X17, reg.X18, reg.X19, reg.X20, reg.X21, reg.X22, reg.X23,
		reg.X24, reg.X25, reg.X26, reg.X27, reg.X28, reg.X29, reg.X30, reg.X31} {
		VPXORD(x, x, x)
	}
	VZEROUPPER()
	RET()

	streamRead()

	Generate()
}

// streamRead is the reference for memory read bandwidth: it only loads,
// four 32-byte loads per iteration into independent sums, so that what
// limits it is memory, not the instructions (a plain Go loop over uint64
// words needs eight loads and adds per 64 bytes).
func streamRead() {
	TEXT("streamReadAVX2", NOSPLIT, "func(p *byte, n int) uint64")
	Doc("streamReadAVX2 reads the n bytes at p (n a multiple of 128) and returns a",
		"checksum of them, for the read bandwidth benchmark.")
	p := Load(Param("p"), GP64())
	n := Load(Param("n"), GP64())
	var acc [4]reg.VecVirtual
	for i := range acc {
		acc[i] = YMM()
		VPXOR(acc[i], acc[i], acc[i])
	}
	SHRQ(Imm(7), n)
	JZ(LabelRef("done"))
	Label("loop")
	for i := range acc {
		VPADDQ(Mem{Base: p, Disp: 32 * i}, acc[i], acc[i])
	}
	ADDQ(Imm(128), p)
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("done")
	VPADDQ(acc[1], acc[0], acc[0])
	VPADDQ(acc[3], acc[2], acc[2])
	VPADDQ(acc[2], acc[0], acc[0])
	x := XMM()
	VEXTRACTI128(Imm(1), acc[0], x)
	VPADDQ(acc[0].AsX(), x, x)
	r, t := GP64(), GP64()
	VMOVQ(x, r)
	VPEXTRQ(Imm(1), x, t)
	ADDQ(t, r)
	Store(r, ReturnIndex(0))
	VZEROUPPER()
	RET()
}
