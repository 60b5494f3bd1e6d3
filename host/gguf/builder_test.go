package gguf

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/testenv"
)

// TestBuilderLayoutExact compares the writer with bytes laid out by hand
// in llama.cpp's order: header, KVs, tensor infos, zero padding to the
// alignment, each tensor padded to the alignment.
func TestBuilderLayoutExact(t *testing.T) {
	a := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12} // 3 F32
	q := make([]byte, 34)                              // one Q8_0 block
	for i := range q {
		q[i] = byte(200 - i)
	}
	b := NewBuilder()
	b.Set("general.architecture", Str("llama"))
	b.Set("x.f", F32(1.5))
	b.Set("x.arr", I32Array([]int32{-1, 2}))
	require.NoError(t, b.AddTensor("a", backend.F32, []uint64{3}, a))
	require.NoError(t, b.AddTensor("q", backend.Q8_0, []uint64{32, 1}, q))

	r := (&raw{}).header(3, 2, 3)
	r.kvStr("general.architecture", "llama")
	r.str("x.f")
	r.u32(uint32(TypeFloat32))
	r.f32(1.5)
	r.str("x.arr")
	r.u32(uint32(TypeArray))
	r.u32(uint32(TypeInt32))
	r.u64(2)
	r.u32(math.MaxUint32)
	r.u32(2)
	r.tensor("a", uint32(backend.F32), 0, 3)
	r.tensor("q", uint32(backend.Q8_0), 32, 32, 1)
	r.padTo(32)
	r.Write(a)
	r.padTo(32)
	r.Write(q)
	r.padTo(32)

	var buf bytes.Buffer
	n, err := b.WriteTo(&buf)
	require.NoError(t, err)
	assert.Equal(t, int64(r.Len()), n)
	requireSameBytes(t, r.Bytes(), buf.Bytes())

	// A custom alignment applies to the header padding and every tensor.
	b.Set(KeyAlignment, U32(64))
	infos, err := b.Tensors()
	require.NoError(t, err)
	assert.Equal(t, uint64(64), infos[1].Offset)
	buf.Reset()
	_, err = b.WriteTo(&buf)
	require.NoError(t, err)
	f, err := Parse(buf.Bytes())
	require.NoError(t, err)
	assert.Equal(t, uint64(64), f.Alignment)
	assert.Zero(t, f.DataOffset%64)
	assert.Equal(t, int(f.DataOffset)+128, buf.Len())
}

// randomValue returns a random value of type vt (arrays of random element
// types, nested up to depth) together with the Go data it was made from.
func randomValue(rng *rand.Rand, vt ValueType, depth int) (Value, any) {
	switch vt {
	case TypeUint8:
		x := uint8(rng.Uint32())
		return U8(x), x
	case TypeInt8:
		x := int8(rng.Uint32())
		return I8(x), x
	case TypeUint16:
		x := uint16(rng.Uint32())
		return U16(x), x
	case TypeInt16:
		x := int16(rng.Uint32())
		return I16(x), x
	case TypeUint32:
		x := rng.Uint32()
		return U32(x), x
	case TypeInt32:
		x := int32(rng.Uint32())
		return I32(x), x
	case TypeUint64:
		x := rng.Uint64()
		return U64(x), x
	case TypeInt64:
		x := int64(rng.Uint64())
		return I64(x), x
	case TypeFloat32:
		x := float32(rng.NormFloat64())
		return F32(x), x
	case TypeFloat64:
		x := rng.NormFloat64()
		return F64(x), x
	case TypeBool:
		x := rng.IntN(2) == 1
		return Bool(x), x
	case TypeString:
		x := randomString(rng)
		return Str(x), x
	}
	return randomArray(rng, ValueType(rng.IntN(13)), depth)
}

// randomArray returns a random array of element type et (nested arrays
// stop at depth 2).
func randomArray(rng *rand.Rand, et ValueType, depth int) (Value, any) {
	n := rng.IntN(5)
	if depth >= 2 && et == TypeArray {
		et = TypeString
	}
	switch et {
	case TypeString:
		s := make([]string, n)
		for i := range s {
			s[i] = randomString(rng)
		}
		return StrArray(s), s
	case TypeArray:
		vals := make([]Value, n)
		goVals := make([]any, n)
		for i := range vals {
			vals[i], goVals[i] = randomValue(rng, TypeArray, depth+1)
		}
		v, err := Arrays(vals)
		if err != nil {
			panic(err)
		}
		return v, goVals
	case TypeFloat32:
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return F32Array(x), x
	case TypeInt32:
		x := make([]int32, n)
		for i := range x {
			x[i] = int32(rng.Uint32())
		}
		return I32Array(x), x
	case TypeUint64:
		x := make([]uint64, n)
		for i := range x {
			x[i] = rng.Uint64()
		}
		return U64Array(x), x
	default:
		elems := make([]any, n)
		for i := range elems {
			_, elems[i] = randomValue(rng, et, depth)
		}
		return arrayOf(et, elems), elems
	}
}

// arrayOf builds a fixed-size array through the generic constructor.
func arrayOf(et ValueType, elems []any) Value {
	switch et {
	case TypeUint8:
		return Array(conv[uint8](elems))
	case TypeInt8:
		return Array(conv[int8](elems))
	case TypeUint16:
		return Array(conv[uint16](elems))
	case TypeInt16:
		return Array(conv[int16](elems))
	case TypeUint32:
		return U32Array(conv[uint32](elems))
	case TypeInt64:
		return I64Array(conv[int64](elems))
	case TypeFloat64:
		return F64Array(conv[float64](elems))
	case TypeBool:
		return Array(conv[bool](elems))
	}
	panic(fmt.Sprintf("arrayOf %v", et))
}

func conv[T any](elems []any) []T {
	out := make([]T, len(elems))
	for i, e := range elems {
		out[i] = e.(T)
	}
	return out
}

func randomString(rng *rand.Rand) string {
	b := make([]byte, rng.IntN(12))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return string(b)
}

// checkParsed compares a parsed value with the Go data it was made from.
func checkParsed(t *testing.T, key string, v Value, want any) {
	t.Helper()
	switch w := want.(type) {
	case uint8, uint16, uint32, uint64:
		got, ok := v.Uint()
		require.True(t, ok, key)
		assert.Equal(t, fmt.Sprint(w), fmt.Sprint(got), key)
	case int8, int16, int32, int64:
		got, ok := v.Int()
		require.True(t, ok, key)
		assert.Equal(t, fmt.Sprint(w), fmt.Sprint(got), key)
	case float32:
		got, ok := v.Float()
		require.True(t, ok, key)
		assert.Equal(t, w, float32(got), key)
	case float64:
		got, ok := v.Float()
		require.True(t, ok, key)
		assert.Equal(t, w, got, key)
	case bool:
		got, ok := v.Bool()
		require.True(t, ok, key)
		assert.Equal(t, w, got, key)
	case string:
		got, ok := v.String()
		require.True(t, ok, key)
		assert.Equal(t, w, got, key)
	case []string:
		got, ok := v.Strings()
		require.True(t, ok, key)
		assert.Equal(t, w, got, key)
	case []float32:
		got, ok := v.Float32s()
		require.True(t, ok, key)
		assert.Equal(t, w, got, key)
	case []int32:
		got, ok := v.Int32s()
		require.True(t, ok, key)
		assert.Equal(t, w, got, key)
	case []uint64:
		got, ok := v.Uint64s()
		require.True(t, ok, key)
		assert.Equal(t, w, got, key)
	case []any:
		got, ok := v.Values()
		require.True(t, ok, key)
		require.Len(t, got, len(w), key)
		for i := range w {
			checkParsed(t, fmt.Sprintf("%s[%d]", key, i), got[i], w[i])
		}
	default:
		t.Fatalf("%s: unhandled %T", key, want)
	}
}

// ggmlTypes are the GGUF tensor types qinfer stores.
var ggmlTypes = []backend.DType{
	backend.F32, backend.F16, backend.BF16, backend.F64, backend.I8, backend.I16, backend.I32, backend.I64,
	backend.Q4_0, backend.Q4_1, backend.Q5_0, backend.Q5_1, backend.Q8_0, backend.Q8_1,
	backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K, backend.Q8_K,
}

func TestBuilderRandomRoundTrip(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			b := NewBuilder()
			want := map[string]any{}
			var keys []string
			// Every scalar type, an array of every element type, then
			// random ones.
			for i := 0; i < 40; i++ {
				key := fmt.Sprintf("test.key%d", i)
				v, goVal := randomValue(rng, ValueType(i%13), 0)
				if i >= 13 && i < 26 {
					v, goVal = randomArray(rng, ValueType(i-13), 0)
				}
				b.Set(key, v)
				want[key] = goVal
				keys = append(keys, key)
			}
			align := uint64(1) << (rng.IntN(4) + 3) // 8 .. 64
			b.Set(KeyAlignment, U32(uint32(align)))
			keys = append(keys, KeyAlignment)
			want[KeyAlignment] = uint32(align)

			type tensor struct {
				typ  backend.DType
				dims []uint64
				data []byte
			}
			var tensors []tensor
			for i, typ := range ggmlTypes {
				tr, err := backend.TraitsOf(typ)
				require.NoError(t, err)
				dims := []uint64{uint64(tr.BlockSize * (1 + rng.IntN(3)))}
				for d := rng.IntN(4); d > 0; d-- {
					dims = append(dims, uint64(1+rng.IntN(3)))
				}
				n := uint64(tr.TypeSize) * dims[0] / uint64(tr.BlockSize)
				for _, d := range dims[1:] {
					n *= d
				}
				data := make([]byte, n)
				for j := range data {
					data[j] = byte(rng.Uint32())
				}
				tensors = append(tensors, tensor{typ, dims, data})
				require.NoError(t, b.AddTensor(fmt.Sprintf("t%d.%v", i, typ), typ, dims, data))
			}

			var buf bytes.Buffer
			n, err := b.WriteTo(&buf)
			require.NoError(t, err)
			require.Equal(t, int64(buf.Len()), n)

			f, err := Parse(buf.Bytes())
			require.NoError(t, err)
			assert.Equal(t, uint32(3), f.Version)
			assert.Equal(t, align, f.Alignment)
			require.Len(t, f.KVs, len(keys))
			for i, kv := range f.KVs {
				assert.Equal(t, keys[i], kv.Key, "metadata order")
				checkParsed(t, kv.Key, kv.Value, want[kv.Key])
			}
			require.Len(t, f.Tensors, len(tensors))
			var expectOff uint64
			for i, ti := range f.Tensors {
				w := tensors[i]
				assert.Equal(t, fmt.Sprintf("t%d.%v", i, w.typ), ti.Name, "tensor order")
				assert.Equal(t, w.typ, ti.Type)
				assert.Equal(t, w.dims, ti.Dims)
				assert.Equal(t, expectOff, ti.Offset, "tensors back to back, each padded")
				data, err := f.TensorData(&f.Tensors[i])
				require.NoError(t, err)
				assert.Equal(t, w.data, data, ti.Name)
				expectOff += (uint64(len(w.data)) + align - 1) / align * align
			}
			assert.Equal(t, uint64(buf.Len()), f.DataOffset+expectOff)

			// Writing what we read reproduces the same bytes.
			var again bytes.Buffer
			_, err = FromFile(f).WriteTo(&again)
			require.NoError(t, err)
			requireSameBytes(t, buf.Bytes(), again.Bytes())
		})
	}
}

func TestBuilderEditFile(t *testing.T) {
	src, err := Open(testenv.Path(t, "llamacpp", "tiny-Q8_0.gguf"))
	require.NoError(t, err)
	defer src.Close()

	b := FromFile(src)
	b.Set("general.name", Str("edited"))    // replaced in place
	b.Set("qinfer.note", Str("added last")) // appended
	b.Delete("general.file_type")
	b.Delete("no.such.key")
	newNorm := make([]byte, 4*64)
	for i := range newNorm {
		newNorm[i] = byte(i * 7)
	}
	require.NoError(t, b.ReplaceTensor("output_norm.weight", backend.F32, []uint64{64}, newNorm))
	assert.True(t, b.DeleteTensor("blk.1.ffn_up.weight"))
	assert.False(t, b.DeleteTensor("blk.1.ffn_up.weight"))

	var buf bytes.Buffer
	_, err = b.WriteTo(&buf)
	require.NoError(t, err)
	f, err := Parse(buf.Bytes())
	require.NoError(t, err)

	name, _ := f.String("general.name")
	assert.Equal(t, "edited", name)
	_, ok := f.Get("general.file_type")
	assert.False(t, ok)
	assert.Equal(t, "qinfer.note", f.KVs[len(f.KVs)-1].Key)
	var srcKeys, keys []string
	for _, kv := range src.KVs {
		if kv.Key != "general.file_type" {
			srcKeys = append(srcKeys, kv.Key)
		}
	}
	for _, kv := range f.KVs[:len(f.KVs)-1] {
		keys = append(keys, kv.Key)
	}
	assert.Equal(t, srcKeys, keys, "other keys keep their order")

	require.Len(t, f.Tensors, len(src.Tensors)-1)
	_, ok = f.Tensor("blk.1.ffn_up.weight")
	assert.False(t, ok)
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		got, err := f.TensorData(ti)
		require.NoError(t, err)
		if ti.Name == "output_norm.weight" {
			assert.Equal(t, newNorm, got)
			continue
		}
		st, ok := src.Tensor(ti.Name)
		require.True(t, ok)
		want, err := src.TensorData(st)
		require.NoError(t, err)
		assert.Equal(t, want, got, ti.Name)
	}
}

func TestBuilderErrors(t *testing.T) {
	b := NewBuilder()
	f32 := make([]byte, 16)
	require.NoError(t, b.AddTensor("a", backend.F32, []uint64{4}, f32))
	assert.ErrorContains(t, b.AddTensor("a", backend.F32, []uint64{4}, f32), `tensor "a" already added`)
	assert.ErrorContains(t, b.AddTensor("b", backend.F32, []uint64{5}, f32), "needs 20 bytes, got 16")
	assert.ErrorContains(t, b.AddTensor("b", backend.Q8_0, []uint64{16}, f32), "not a multiple of the block size")
	assert.ErrorContains(t, b.AddTensor("b", backend.F32, nil, f32), "0 dimensions")
	assert.ErrorContains(t, b.AddTensor("b", backend.F32, []uint64{1, 1, 1, 1, 4}, f32), "5 dimensions")
	assert.ErrorContains(t, b.AddTensor("", backend.F32, []uint64{4}, f32), "name is empty")
	assert.ErrorContains(t, b.AddTensor(string(make([]byte, 64)), backend.F32, []uint64{4}, f32), "llama.cpp allows at most 63")
	assert.ErrorContains(t, b.AddTensor("w8", backend.W8, []uint64{16}, f32), "qinfer format")
	assert.ErrorContains(t, b.AddTensor("iq", backend.DType(16), []uint64{256}, f32), "IQ2_XXS")
	assert.ErrorContains(t, b.AddTensor("big", backend.F32, []uint64{1 << 40, 1 << 40}, f32), "2^63")
	assert.ErrorContains(t, b.ReplaceTensor("missing", backend.F32, []uint64{4}, f32), `no tensor "missing"`)
	assert.ErrorContains(t, b.ReplaceTensor("a", backend.F32, []uint64{8}, f32), "needs 32 bytes")
	assert.ErrorContains(t, b.SetVersion(1), "only 2 and 3")

	bad := []struct {
		name string
		edit func(b *Builder)
		want string
	}{
		{"alignment type", func(b *Builder) { b.Set(KeyAlignment, U64(32)) }, "general.alignment must be a u32"},
		{"alignment value", func(b *Builder) { b.Set(KeyAlignment, U32(24)) }, "general.alignment is 24"},
		{"empty key", func(b *Builder) { b.Set("", U8(1)) }, "empty metadata key"},
		{"invalid type", func(b *Builder) { b.Set("k", Value{Type: 77}) }, `key "k": invalid value type 77`},
		{"invalid elem type", func(b *Builder) { b.Set("k", Value{Type: TypeArray, ElemType: 13}) }, "array of invalid value type 13"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			b := NewBuilder()
			require.NoError(t, b.AddTensor("a", backend.F32, []uint64{4}, f32))
			c.edit(b)
			var buf bytes.Buffer
			n, err := b.WriteTo(&buf)
			assert.ErrorContains(t, err, c.want)
			assert.Zero(t, n)
			assert.Zero(t, buf.Len(), "nothing written for an invalid builder")

			dir := t.TempDir()
			err = b.WriteFile(filepath.Join(dir, "out.gguf"))
			assert.ErrorContains(t, err, c.want)
			entries, _ := os.ReadDir(dir)
			assert.Empty(t, entries, "no file, no temporary file")
		})
	}
}

func TestBuilderClosedSource(t *testing.T) {
	f, err := Parse(validFile())
	require.NoError(t, err)
	b := FromFile(f)
	require.NoError(t, f.Close())
	var buf bytes.Buffer
	_, err = b.WriteTo(&buf)
	assert.ErrorIs(t, err, ErrClosed)
	assert.Zero(t, buf.Len())
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.after {
		n := w.after
		w.after = 0
		return n, errors.New("disk full")
	}
	w.after -= len(p)
	return len(p), nil
}

func TestBuilderWriteErrors(t *testing.T) {
	b := NewBuilder()
	require.NoError(t, b.AddTensor("a", backend.F32, []uint64{1 << 20}, make([]byte, 4<<20)))
	n, err := b.WriteTo(&failWriter{after: 3 << 20})
	assert.ErrorContains(t, err, "disk full")
	assert.Equal(t, int64(3<<20), n, "bytes written before the failure")

	err = b.WriteFile(filepath.Join(t.TempDir(), "missing-dir", "x.gguf"))
	assert.ErrorContains(t, err, "missing-dir")
}

func TestBuilderVersion2AndEmpty(t *testing.T) {
	b := NewBuilder()
	require.NoError(t, b.SetVersion(2))
	b.Set("general.architecture", Str("llama"))
	var buf bytes.Buffer
	_, err := b.WriteTo(&buf)
	require.NoError(t, err)
	// gguf-py's layout: no padding when there are no tensors.
	r := (&raw{}).header(2, 0, 1)
	r.kvStr("general.architecture", "llama")
	requireSameBytes(t, r.Bytes(), buf.Bytes())

	f, err := Parse(buf.Bytes())
	require.NoError(t, err)
	assert.Equal(t, uint32(2), f.Version)
	assert.Equal(t, "llama", f.Architecture())
	assert.Empty(t, f.Tensors)

	// ggml's layout pads even without tensors; a rewrite keeps that.
	r.padTo(32)
	f, err = Parse(r.Bytes())
	require.NoError(t, err)
	buf.Reset()
	_, err = FromFile(f).WriteTo(&buf)
	require.NoError(t, err)
	requireSameBytes(t, r.Bytes(), buf.Bytes())
}
