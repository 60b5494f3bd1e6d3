package gguf

import (
	"fmt"
	"math"
)

// storeLE writes the low len(b) bytes of x, little-endian.
func storeLE(b []byte, x uint64) {
	for i := range b {
		b[i] = byte(x >> (8 * i))
	}
}

// Scalar constructors, for Builder.Set.

// U8 makes a u8 value.
func U8(x uint8) Value { return Value{Type: TypeUint8, bits: uint64(x)} }

// I8 makes an i8 value.
func I8(x int8) Value { return Value{Type: TypeInt8, bits: uint64(uint8(x))} }

// U16 makes a u16 value.
func U16(x uint16) Value { return Value{Type: TypeUint16, bits: uint64(x)} }

// I16 makes an i16 value.
func I16(x int16) Value { return Value{Type: TypeInt16, bits: uint64(uint16(x))} }

// U32 makes a u32 value (the type llama.cpp expects for counts, token ids
// and general.alignment).
func U32(x uint32) Value { return Value{Type: TypeUint32, bits: uint64(x)} }

// I32 makes an i32 value.
func I32(x int32) Value { return Value{Type: TypeInt32, bits: uint64(uint32(x))} }

// U64 makes a u64 value.
func U64(x uint64) Value { return Value{Type: TypeUint64, bits: x} }

// I64 makes an i64 value.
func I64(x int64) Value { return Value{Type: TypeInt64, bits: uint64(x)} }

// F32 makes an f32 value.
func F32(x float32) Value { return Value{Type: TypeFloat32, bits: uint64(math.Float32bits(x))} }

// F64 makes an f64 value.
func F64(x float64) Value { return Value{Type: TypeFloat64, bits: math.Float64bits(x)} }

// Bool makes a bool value.
func Bool(x bool) Value {
	v := Value{Type: TypeBool}
	if x {
		v.bits = 1
	}
	return v
}

// Str makes a string value.
func Str(s string) Value { return Value{Type: TypeString, str: s} }

// StrArray makes a string array; the slice is copied.
func StrArray(s []string) Value {
	return Value{Type: TypeArray, ElemType: TypeString, strs: append([]string{}, s...)}
}

// F32Array makes an f32 array (token scores). Like every array
// constructor it encodes the elements at once: later changes to the slice
// do not affect the Value.
func F32Array(x []float32) Value { return Array(x) }

// I32Array makes an i32 array (token types).
func I32Array(x []int32) Value { return Array(x) }

// U32Array makes a u32 array.
func U32Array(x []uint32) Value { return Array(x) }

// I64Array makes an i64 array.
func I64Array(x []int64) Value { return Array(x) }

// U64Array makes a u64 array.
func U64Array(x []uint64) Value { return Array(x) }

// F64Array makes an f64 array.
func F64Array(x []float64) Value { return Array(x) }

// Element is any Go type that maps to a fixed-size GGUF value type.
type Element interface {
	uint8 | int8 | uint16 | int16 | uint32 | int32 | uint64 | int64 | float32 | float64 | bool
}

// Array makes an array of a fixed-size element type.
func Array[T Element](x []T) Value {
	var et ValueType
	switch any(*new(T)).(type) {
	case uint8:
		et = TypeUint8
	case int8:
		et = TypeInt8
	case uint16:
		et = TypeUint16
	case int16:
		et = TypeInt16
	case uint32:
		et = TypeUint32
	case int32:
		et = TypeInt32
	case uint64:
		et = TypeUint64
	case int64:
		et = TypeInt64
	case float32:
		et = TypeFloat32
	case float64:
		et = TypeFloat64
	case bool:
		et = TypeBool
	}
	sz := et.size()
	raw := make([]byte, sz*len(x))
	for i, e := range x {
		storeLE(raw[i*sz:(i+1)*sz], scalarBits(e))
	}
	return Value{Type: TypeArray, ElemType: et, raw: raw}
}

// scalarBits returns the little-endian bit pattern of a fixed-size
// element, zero-extended to 64 bits.
func scalarBits(e any) uint64 {
	switch x := e.(type) {
	case uint8:
		return uint64(x)
	case int8:
		return uint64(uint8(x))
	case uint16:
		return uint64(x)
	case int16:
		return uint64(uint16(x))
	case uint32:
		return uint64(x)
	case int32:
		return uint64(uint32(x))
	case uint64:
		return x
	case int64:
		return uint64(x)
	case float32:
		return uint64(math.Float32bits(x))
	case float64:
		return math.Float64bits(x)
	case bool:
		if x {
			return 1
		}
	}
	return 0
}

// Arrays makes an array of arrays. Each element must itself be an array;
// their element types may differ.
func Arrays(elems []Value) (Value, error) {
	for i, e := range elems {
		if e.Type != TypeArray {
			return Value{}, fmt.Errorf("gguf: nested array element %d is a %v, not an array", i, e.Type)
		}
	}
	return Value{Type: TypeArray, ElemType: TypeArray, arrs: append([]Value{}, elems...)}, nil
}
