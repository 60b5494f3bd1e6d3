package gguf

import (
	"bytes"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValueIntegerAccessors(t *testing.T) {
	cases := []struct {
		v      Value
		u      uint64
		uOK    bool
		i      int64
		iOK    bool
		vtype  ValueType
		render string
	}{
		{U8(200), 200, true, 200, true, TypeUint8, "200"},
		{I8(-7), 0, false, -7, true, TypeInt8, "-7"},
		{I8(7), 7, true, 7, true, TypeInt8, "7"},
		{U16(65535), 65535, true, 65535, true, TypeUint16, "65535"},
		{I16(-32768), 0, false, -32768, true, TypeInt16, "-32768"},
		{U32(4294967295), 4294967295, true, 4294967295, true, TypeUint32, "4294967295"},
		{I32(-1), 0, false, -1, true, TypeInt32, "-1"},
		{I32(123456), 123456, true, 123456, true, TypeInt32, "123456"},
		{U64(math.MaxUint64), math.MaxUint64, true, 0, false, TypeUint64, "18446744073709551615"},
		{I64(math.MinInt64), 0, false, math.MinInt64, true, TypeInt64, "-9223372036854775808"},
	}
	for _, c := range cases {
		t.Run(c.render, func(t *testing.T) {
			assert.Equal(t, c.vtype, c.v.Type)
			u, ok := c.v.Uint()
			assert.Equal(t, c.uOK, ok)
			assert.Equal(t, c.u, u)
			i, ok := c.v.Int()
			assert.Equal(t, c.iOK, ok)
			assert.Equal(t, c.i, i)
			_, ok = c.v.Float()
			assert.False(t, ok, "integers are not floats")
			_, ok = c.v.String()
			assert.False(t, ok)
			_, ok = c.v.Bool()
			assert.False(t, ok)
			assert.Equal(t, 0, c.v.Len())
			assert.Equal(t, c.render, c.v.Summary(3))
		})
	}
}

func TestValueScalarAccessors(t *testing.T) {
	f, ok := F32(-1.25e-3).Float()
	require.True(t, ok)
	assert.Equal(t, float64(float32(-1.25e-3)), f)
	f, ok = F64(math.Pi).Float()
	require.True(t, ok)
	assert.Equal(t, math.Pi, f)
	_, ok = F32(1).Uint()
	assert.False(t, ok)

	b, ok := Bool(true).Bool()
	assert.True(t, ok)
	assert.True(t, b)
	b, ok = Bool(false).Bool()
	assert.True(t, ok)
	assert.False(t, b)
	_, ok = Bool(true).Uint()
	assert.False(t, ok)

	s, ok := Str("héllo\x00").String()
	assert.True(t, ok)
	assert.Equal(t, "héllo\x00", s)
	_, ok = Str("1").Uint()
	assert.False(t, ok)
	assert.Equal(t, `"a\"b"`, Str(`a"b`).Summary(1))
	assert.Equal(t, "true", Bool(true).Summary(1))
	assert.Equal(t, "0.1", F32(0.1).Summary(1), "f32 renders with f32 precision")
}

func TestValueArrayAccessors(t *testing.T) {
	strs := []string{"a", "", "ccc"}
	v := StrArray(strs)
	strs[0] = "changed"
	got, ok := v.Strings()
	require.True(t, ok)
	assert.Equal(t, []string{"a", "", "ccc"}, got, "the constructor copies")
	got[1] = "mutated"
	again, _ := v.Strings()
	assert.Equal(t, "", again[1], "the accessor copies")
	assert.Equal(t, 3, v.Len())
	_, ok = v.Float32s()
	assert.False(t, ok)
	_, ok = v.String()
	assert.False(t, ok)

	fs := []float32{1.5, -2, float32(math.Inf(1)), 3e-8}
	fv := F32Array(fs)
	gotF, ok := fv.Float32s()
	require.True(t, ok)
	assert.Equal(t, fs, gotF)
	gotF, ok = F64Array([]float64{0.1, -1e300}).Float32s()
	require.True(t, ok)
	assert.Equal(t, []float32{0.1, float32(math.Inf(-1))}, gotF)
	_, ok = fv.Int32s()
	assert.False(t, ok)

	i32, ok := I32Array([]int32{-5, 0, math.MaxInt32}).Int32s()
	require.True(t, ok)
	assert.Equal(t, []int32{-5, 0, math.MaxInt32}, i32)
	i32, ok = Array([]uint8{0, 255}).Int32s()
	require.True(t, ok)
	assert.Equal(t, []int32{0, 255}, i32)
	i32, ok = Array([]int16{-300, 300}).Int32s()
	require.True(t, ok)
	assert.Equal(t, []int32{-300, 300}, i32)
	_, ok = I64Array([]int64{1, math.MaxInt32 + 1}).Int32s()
	assert.False(t, ok, "out of int32 range")
	_, ok = U32Array([]uint32{math.MaxUint32}).Int32s()
	assert.False(t, ok, "out of int32 range")

	u, ok := U64Array([]uint64{math.MaxUint64, 3}).Uint64s()
	require.True(t, ok)
	assert.Equal(t, []uint64{math.MaxUint64, 3}, u)
	_, ok = I32Array([]int32{1, -1}).Uint64s()
	assert.False(t, ok)

	vals, ok := Array([]bool{true, false}).Values()
	require.True(t, ok)
	require.Len(t, vals, 2)
	b0, _ := vals[0].Bool()
	b1, _ := vals[1].Bool()
	assert.True(t, b0)
	assert.False(t, b1)

	assert.Equal(t, `[3]string{"a", "", ...}`, v.Summary(2))
	assert.Equal(t, "[2]i16{-300, 300}", Array([]int16{-300, 300}).Summary(5))
}

func TestValueNestedArrays(t *testing.T) {
	inner1 := I32Array([]int32{1, 2})
	inner2 := StrArray([]string{"x"})
	v, err := Arrays([]Value{inner1, inner2})
	require.NoError(t, err)
	assert.Equal(t, TypeArray, v.Type)
	assert.Equal(t, TypeArray, v.ElemType)
	assert.Equal(t, 2, v.Len())
	elems, ok := v.Values()
	require.True(t, ok)
	got, _ := elems[0].Int32s()
	assert.Equal(t, []int32{1, 2}, got)
	s, _ := elems[1].Strings()
	assert.Equal(t, []string{"x"}, s)
	assert.Equal(t, `[2]array{[2]i32{1, 2}, [1]string{"x"}}`, v.Summary(4))

	_, err = Arrays([]Value{inner1, U8(1)})
	assert.ErrorContains(t, err, "nested array element 1 is a u8")
}

func TestValueTypeNames(t *testing.T) {
	assert.Equal(t, "f32", TypeFloat32.String())
	assert.Equal(t, "type(42)", ValueType(42).String())
	assert.True(t, TypeFloat64.Valid())
	assert.False(t, ValueType(13).Valid())
}

func TestFileAccessorsMissingKey(t *testing.T) {
	b := NewBuilder()
	b.Set("present.u32", U32(7))
	var buf bytes.Buffer
	_, err := b.WriteTo(&buf)
	require.NoError(t, err)
	f, err := Parse(buf.Bytes())
	require.NoError(t, err)
	v, ok := f.Uint("present.u32")
	assert.True(t, ok)
	assert.Equal(t, uint64(7), v)
	_, ok = f.Uint("absent")
	assert.False(t, ok, "Uint of a missing key")
	_, ok = f.Int("absent")
	assert.False(t, ok, "Int of a missing key")
	_, ok = f.Float("absent")
	assert.False(t, ok)
	_, ok = f.Bool("absent")
	assert.False(t, ok)
	_, ok = f.String("absent")
	assert.False(t, ok)
	_, ok = f.Strings("absent")
	assert.False(t, ok)
	_, ok = f.Float32s("absent")
	assert.False(t, ok)
	_, ok = f.Int32s("absent")
	assert.False(t, ok)
}
