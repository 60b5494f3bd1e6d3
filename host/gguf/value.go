package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ValueType is the type of a GGUF metadata value, as numbered in the file.
type ValueType uint32

// GGUF metadata value types.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{
	TypeUint8: "u8", TypeInt8: "i8", TypeUint16: "u16", TypeInt16: "i16",
	TypeUint32: "u32", TypeInt32: "i32", TypeFloat32: "f32", TypeBool: "bool",
	TypeString: "string", TypeArray: "array", TypeUint64: "u64", TypeInt64: "i64",
	TypeFloat64: "f64",
}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// Valid reports whether t is one of the thirteen GGUF value types.
func (t ValueType) Valid() bool { return t <= TypeFloat64 }

// size returns the encoded size of a fixed-size type, 0 for string and
// array.
func (t ValueType) size() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

func (t ValueType) isInt() bool {
	switch t {
	case TypeUint8, TypeInt8, TypeUint16, TypeInt16, TypeUint32, TypeInt32, TypeUint64, TypeInt64:
		return true
	}
	return false
}

func (t ValueType) isSigned() bool {
	return t == TypeInt8 || t == TypeInt16 || t == TypeInt32 || t == TypeInt64
}

// Value is one metadata value: a scalar, a string, or an array whose
// elements all have type ElemType (arrays may nest). Make Values with the
// constructors (U32, Str, F32Array, ...); the zero Value is the u8 0.
// Values are immutable and safe to share; they never reference the mapped
// file, so they outlive File.Close.
type Value struct {
	Type     ValueType
	ElemType ValueType // for arrays only

	bits uint64 // fixed-size scalar, little-endian bit pattern widened to 64 bits
	str  string // string scalar

	// Arrays: fixed-size elements stay in their encoded form (compact,
	// decoded on access); strings and nested arrays are decoded.
	raw  []byte
	strs []string
	arrs []Value
}

// Len returns the number of elements of an array, and 0 for scalars.
func (v Value) Len() int {
	if v.Type != TypeArray {
		return 0
	}
	switch v.ElemType {
	case TypeString:
		return len(v.strs)
	case TypeArray:
		return len(v.arrs)
	}
	if sz := v.ElemType.size(); sz > 0 {
		return len(v.raw) / sz
	}
	return 0
}

// Uint returns an unsigned integer, or a signed one that is not negative.
func (v Value) Uint() (uint64, bool) {
	if !v.Type.isInt() {
		return 0, false
	}
	if v.Type.isSigned() {
		i := signExtend(v.bits, v.Type)
		if i < 0 {
			return 0, false
		}
		return uint64(i), true
	}
	return v.bits, true
}

// Int returns any integer that fits in an int64.
func (v Value) Int() (int64, bool) {
	if !v.Type.isInt() {
		return 0, false
	}
	if v.Type.isSigned() {
		return signExtend(v.bits, v.Type), true
	}
	if v.bits > math.MaxInt64 {
		return 0, false
	}
	return int64(v.bits), true
}

// Float returns an f32 or f64 value. Integers are not converted: a float
// key stored as an integer is a malformed file worth noticing.
func (v Value) Float() (float64, bool) {
	switch v.Type {
	case TypeFloat32:
		return float64(math.Float32frombits(uint32(v.bits))), true
	case TypeFloat64:
		return math.Float64frombits(v.bits), true
	}
	return 0, false
}

// Bool returns a bool value.
func (v Value) Bool() (bool, bool) {
	if v.Type != TypeBool {
		return false, false
	}
	return v.bits != 0, true
}

// String returns a string value. (Value is deliberately not a
// fmt.Stringer; use Summary for display.)
func (v Value) String() (string, bool) {
	if v.Type != TypeString {
		return "", false
	}
	return v.str, true
}

// Strings returns the elements of a string array.
func (v Value) Strings() ([]string, bool) {
	if v.Type != TypeArray || v.ElemType != TypeString {
		return nil, false
	}
	out := make([]string, len(v.strs))
	copy(out, v.strs)
	return out, true
}

// Float32s returns the elements of an f32 array (or an f64 array,
// rounded to f32).
func (v Value) Float32s() ([]float32, bool) {
	if v.Type != TypeArray || (v.ElemType != TypeFloat32 && v.ElemType != TypeFloat64) {
		return nil, false
	}
	n := v.Len()
	out := make([]float32, n)
	for i := range out {
		if v.ElemType == TypeFloat32 {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(v.raw[4*i:]))
		} else {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(v.raw[8*i:])))
		}
	}
	return out, true
}

// Int32s returns the elements of an integer array as int32: i32 arrays
// directly, other integer arrays converted when every element fits.
func (v Value) Int32s() ([]int32, bool) {
	if v.Type != TypeArray || !v.ElemType.isInt() {
		return nil, false
	}
	n := v.Len()
	out := make([]int32, n)
	for i := range out {
		e := v.elem(i)
		x, ok := e.Int()
		if !ok || x < math.MinInt32 || x > math.MaxInt32 {
			return nil, false
		}
		out[i] = int32(x)
	}
	return out, true
}

// Uint64s returns the elements of an integer array as uint64 when none
// is negative.
func (v Value) Uint64s() ([]uint64, bool) {
	if v.Type != TypeArray || !v.ElemType.isInt() {
		return nil, false
	}
	out := make([]uint64, v.Len())
	for i := range out {
		x, ok := v.elem(i).Uint()
		if !ok {
			return nil, false
		}
		out[i] = x
	}
	return out, true
}

// Values returns the elements of any array as Values.
func (v Value) Values() ([]Value, bool) {
	if v.Type != TypeArray {
		return nil, false
	}
	out := make([]Value, v.Len())
	for i := range out {
		out[i] = v.elem(i)
	}
	return out, true
}

// elem returns element i of an array; i must be in range.
func (v Value) elem(i int) Value {
	switch v.ElemType {
	case TypeString:
		return Value{Type: TypeString, str: v.strs[i]}
	case TypeArray:
		return v.arrs[i]
	}
	sz := v.ElemType.size()
	return Value{Type: v.ElemType, bits: loadLE(v.raw[i*sz : (i+1)*sz])}
}

// Summary renders the value for people (inspection tools, logs), showing
// at most maxElems array elements.
func (v Value) Summary(maxElems int) string {
	var sb strings.Builder
	v.summary(&sb, maxElems)
	return sb.String()
}

func (v Value) summary(sb *strings.Builder, maxElems int) {
	switch {
	case v.Type == TypeArray:
		n := v.Len()
		fmt.Fprintf(sb, "[%d]%v{", n, v.ElemType)
		for i := 0; i < n && i < maxElems; i++ {
			if i > 0 {
				sb.WriteString(", ")
			}
			v.elem(i).summary(sb, maxElems)
		}
		if n > maxElems {
			sb.WriteString(", ...")
		}
		sb.WriteByte('}')
	case v.Type == TypeString:
		sb.WriteString(strconv.Quote(v.str))
	case v.Type == TypeBool:
		sb.WriteString(strconv.FormatBool(v.bits != 0))
	case v.Type == TypeFloat32 || v.Type == TypeFloat64:
		f, _ := v.Float()
		bits := 64
		if v.Type == TypeFloat32 {
			bits = 32
		}
		sb.WriteString(strconv.FormatFloat(f, 'g', -1, bits))
	case v.Type.isSigned():
		i, _ := v.Int()
		sb.WriteString(strconv.FormatInt(i, 10))
	case v.Type.isInt():
		sb.WriteString(strconv.FormatUint(v.bits, 10))
	default:
		fmt.Fprintf(sb, "<invalid %v>", v.Type)
	}
}

func signExtend(bits uint64, t ValueType) int64 {
	switch t {
	case TypeInt8:
		return int64(int8(bits))
	case TypeInt16:
		return int64(int16(bits))
	case TypeInt32:
		return int64(int32(bits))
	}
	return int64(bits)
}

// loadLE reads a 1-, 2-, 4- or 8-byte little-endian number.
func loadLE(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(b))
	case 4:
		return uint64(binary.LittleEndian.Uint32(b))
	case 8:
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}
