// Package gen holds what the row-format kernel generators share: read-only
// constants and the addressing of four rows a stride apart.
package gen

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

var consts = map[string]Mem{}

// constant returns the read-only constant name, writing it the first
// time it is asked for: n elements of size bytes, all v.
func constant(name string, n, size int, v Constant) Mem {
	if m, ok := consts[name]; ok {
		return m
	}
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < n; i++ {
		DATA(size*i, v)
	}
	consts[name] = m
	return m
}

// Splat8 returns a 32-byte constant holding v in every byte.
func Splat8(name string, v byte) Mem { return constant(name, 32, 1, U8(v)) }

// Splat16 returns a 32-byte constant holding v in every word.
func Splat16(name string, v uint16) Mem { return constant(name, 16, 2, U16(v)) }

// Splat32 returns a 32-byte constant holding v in every dword.
func Splat32(name string, v uint32) Mem { return constant(name, 8, 4, U32(v)) }

// Scalar32 returns a 4-byte constant holding the dword v (a float32's
// bits, for a scalar broadcast).
func Scalar32(name string, v uint32) Mem { return constant(name, 1, 4, U32(v)) }

// Nth addresses item i (< 4) of items stride bytes apart from base, with
// stride3 = 3*stride: x86 scales an index by 1, 2, 4 or 8 only.
func Nth(i int, base, stride, stride3 reg.Register) Mem {
	switch i {
	case 0:
		return Mem{Base: base}
	case 1:
		return Mem{Base: base, Index: stride, Scale: 1}
	case 2:
		return Mem{Base: base, Index: stride, Scale: 2}
	}
	return Mem{Base: base, Index: stride3, Scale: 1}
}
