package gguf

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// validFile is a small well-formed file: two KVs, two F32 tensors.
func validFile() []byte {
	r := (&raw{}).header(3, 2, 2)
	r.kvStr("general.architecture", "llama")
	r.kvU32("llama.block_count", 2)
	r.tensor("a", 0, 0, 4, 2) // 32 bytes
	r.tensor("b", 0, 32, 3)   // 12 bytes, padded to 32
	r.padTo(32)
	for i := 0; i < 8+3; i++ {
		r.f32(float32(i) + 0.5)
	}
	r.padTo(32)
	return r.Bytes()
}

func TestParseValidSmallFile(t *testing.T) {
	f, err := Parse(validFile())
	require.NoError(t, err)
	assert.Equal(t, "llama", f.Architecture())
	n, ok := f.Uint("llama.block_count")
	assert.True(t, ok)
	assert.Equal(t, uint64(2), n)
	b, ok := f.Tensor("b")
	require.True(t, ok)
	data, err := f.TensorData(b)
	require.NoError(t, err)
	require.Len(t, data, 12)
	assert.Equal(t, math.Float32bits(8.5), uint32(data[0])|uint32(data[1])<<8|uint32(data[2])<<16|uint32(data[3])<<24)
}

func TestParseErrors(t *testing.T) {
	// Each case builds a file that is wrong in exactly one way.
	kvFile := func(key string, typ uint32, body func(r *raw)) []byte {
		r := (&raw{}).header(3, 0, 1)
		r.str(key)
		r.u32(typ)
		body(r)
		return r.Bytes()
	}
	tensorFile := func(body func(r *raw), dataBytes int) []byte {
		r := (&raw{}).header(3, 1, 0)
		body(r)
		r.padTo(32)
		r.Write(make([]byte, dataBytes))
		return r.Bytes()
	}
	twoTensors := func(offA, offB uint64) []byte {
		r := (&raw{}).header(3, 2, 0)
		r.tensor("a", 0, offA, 16)
		r.tensor("b", 0, offB, 16)
		r.padTo(32)
		r.Write(make([]byte, 128))
		return r.Bytes()
	}
	nested := func(depth int) []byte {
		return kvFile("deep", uint32(TypeArray), func(r *raw) {
			for i := 0; i < depth; i++ {
				r.u32(uint32(TypeArray))
				r.u64(1)
			}
			r.u32(uint32(TypeUint8))
			r.u64(0)
		})
	}
	valid := validFile()

	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "too short for the GGUF magic"},
		{"three bytes", []byte("GGU"), "too short"},
		{"wrong magic", append([]byte("GGML"), valid[4:]...), `not a GGUF file: magic "GGML"`},
		{"big-endian magic", append([]byte("FUGG"), valid[4:]...), "big-endian"},
		{"byte-swapped version", (&raw{}).header(0x03000000, 0, 0).Bytes(), "big-endian"},
		{"version 0", (&raw{}).header(0, 0, 0).Bytes(), "invalid GGUF version 0"},
		{"version 1", (&raw{}).header(1, 0, 0).Bytes(), "version 1 is not supported"},
		{"version 4", (&raw{}).header(4, 0, 0).Bytes(), "version 4 is newer"},
		{"truncated version", []byte("GGUF\x03\x00"), "truncated: version"},
		{"truncated counts", valid[:12], "truncated: tensor count"},
		{"absurd kv count", (&raw{}).header(3, 0, 1<<62).Bytes(), "metadata count 4611686018427387904 is impossible"},
		{"absurd tensor count", (&raw{}).header(3, math.MaxUint64, 0).Bytes(), "tensor count 18446744073709551615"},
		{"kv count beyond data", (&raw{}).header(3, 0, 3).Bytes(), "metadata count 3 is impossible"},
		{"truncated key", func() []byte {
			r := (&raw{}).header(3, 0, 1)
			r.kvStr("general.architecture", "llama")
			return r.Bytes()[:24+8+10]
		}(), "key of metadata entry 0 length 20 exceeds the 10 bytes left"},
		{"absurd key length", kvFile("", 0, func(r *raw) { r.Truncate(24); r.u64(math.MaxUint64); r.Write(make([]byte, 20)) }), "key of metadata entry 0 length 18446744073709551615 exceeds"},
		{"empty key", kvFile("", uint32(TypeUint8), func(r *raw) { r.u8(1); r.u64(0) }), "metadata entry 0 has an empty key"},
		{"duplicate key", func() []byte {
			r := (&raw{}).header(3, 0, 2)
			r.kvU32("k", 1)
			r.kvU32("k", 2)
			return r.Bytes()
		}(), `duplicate metadata key "k"`},
		{"unknown value type", kvFile("k", 13, func(r *raw) { r.u64(0) }), `key "k" has unknown value type 13`},
		{"absurd string length", kvFile("k", uint32(TypeString), func(r *raw) { r.u64(1 << 40); r.WriteString("abc") }), "length 1099511627776 exceeds the 3 bytes left"},
		{"truncated value", kvFile("k", uint32(TypeUint64), func(r *raw) { r.u32(7) }), "truncated: u64 value of \"k\""},
		{"unknown array type", kvFile("k", uint32(TypeArray), func(r *raw) { r.u32(99); r.u64(0) }), "array of unknown value type 99"},
		{"absurd array length", kvFile("k", uint32(TypeArray), func(r *raw) { r.u32(uint32(TypeUint32)); r.u64(1 << 61); r.u32(1) }), "array of 2305843009213693952 u32 elements cannot fit"},
		{"absurd string array length", kvFile("k", uint32(TypeArray), func(r *raw) { r.u32(uint32(TypeString)); r.u64(5); r.str("x") }), "array of 5 string elements cannot fit"},
		{"string in array too long", kvFile("k", uint32(TypeArray), func(r *raw) { r.u32(uint32(TypeString)); r.u64(2); r.str("x"); r.u64(1000) }), `string 1 length 1000 exceeds`},
		{"truncated array", kvFile("k", uint32(TypeArray), func(r *raw) { r.u32(uint32(TypeUint16)); r.u64(3); r.u16(1); r.u16(2); r.u8(0) }), "cannot fit"},
		{"arrays nested too deep", nested(maxNesting + 1), "nested more than 16 deep"},
		{"alignment not u32", func() []byte {
			r := (&raw{}).header(3, 0, 1)
			r.kvStr(KeyAlignment, "32")
			return r.Bytes()
		}(), "general.alignment is a string"},
		{"alignment not power of two", func() []byte {
			r := (&raw{}).header(3, 0, 1)
			r.kvU32(KeyAlignment, 48)
			return r.Bytes()
		}(), "general.alignment is 48, want a power of two"},
		{"alignment zero", func() []byte {
			r := (&raw{}).header(3, 0, 1)
			r.kvU32(KeyAlignment, 0)
			return r.Bytes()
		}(), "general.alignment is 0"},
		{"too many dims", tensorFile(func(r *raw) { r.tensor("t", 0, 0, 1, 1, 1, 1, 1) }, 32), `tensor "t" has 5 dimensions, at most 4`},
		{"dims overflow", tensorFile(func(r *raw) { r.tensor("t", 0, 0, 1<<40, 1<<40) }, 32), "more than 2^63 elements"},
		{"dim beyond int64", tensorFile(func(r *raw) { r.tensor("t", 0, 0, 1<<63) }, 32), "larger than int64"},
		{"bytes overflow", tensorFile(func(r *raw) { r.tensor("t", 0, 0, 1<<31, 1<<31) }, 32), "more than 2^63 bytes"},
		{"unsupported ggml type", tensorFile(func(r *raw) { r.tensor("t", 16, 0, 256) }, 128), "IQ2_XXS (16) is not supported"},
		{"unknown type", tensorFile(func(r *raw) { r.tensor("t", 77, 0, 256) }, 128), "unknown tensor type 77"},
		{"qinfer type", tensorFile(func(r *raw) { r.tensor("t", 1000, 0, 256) }, 256), "qinfer format, not a GGUF type"},
		{"row not whole blocks", tensorFile(func(r *raw) { r.tensor("t", 8, 0, 33) }, 64), "not a multiple of the block size 32"},
		{"unaligned offset", tensorFile(func(r *raw) { r.tensor("t", 0, 4, 4) }, 64), "offset 4 is not a multiple of the alignment 32"},
		{"offset outside file", tensorFile(func(r *raw) { r.tensor("t", 0, 1<<62, 4) }, 64), `tensor "t": data [4611686018427387904, 4611686018427387920) of the data section runs past its end at 64`},
		{"offset near max", tensorFile(func(r *raw) { r.tensor("t", 0, math.MaxUint64-31, 4) }, 64), "runs past its end"},
		{"data truncated", tensorFile(func(r *raw) { r.tensor("t", 0, 0, 64) }, 100), "runs past its end at 100"},
		{"no data section", func() []byte {
			r := (&raw{}).header(3, 1, 0)
			r.tensor("t", 0, 0, 1)
			return r.Bytes()
		}(), "data section starts at byte 64, past the end"},
		{"overlap", twoTensors(0, 32), `tensor "b": data [32, 96) overlaps tensor "a" ending at 64`},
		{"overlap reversed order", twoTensors(32, 0), `tensor "a": data [32, 96) overlaps tensor "b" ending at 64`},
		{"same offset", twoTensors(64, 64), "overlaps"},
		{"duplicate tensor", func() []byte {
			r := (&raw{}).header(3, 2, 0)
			r.tensor("t", 0, 0, 8)
			r.tensor("t", 0, 32, 8)
			r.padTo(32)
			r.Write(make([]byte, 64))
			return r.Bytes()
		}(), `duplicate tensor name "t"`},
		{"truncated tensor info", valid[:len(valid)-100], "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(c.data)
			require.Error(t, err)
			assert.Nil(t, f)
			var fe *FormatError
			require.True(t, errors.As(err, &fe), "error %v is not a *FormatError", err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func TestParseEmptyTensorsNeverOverlap(t *testing.T) {
	// Zero-element tensors take no bytes, so sharing an offset with a
	// real tensor is fine (llama.cpp places them the same way).
	r := (&raw{}).header(3, 2, 0)
	r.tensor("a", 0, 0, 8)
	r.tensor("empty", 0, 0, 0, 5)
	r.padTo(32)
	r.Write(make([]byte, 32))
	f, err := Parse(r.Bytes())
	require.NoError(t, err)
	e, _ := f.Tensor("empty")
	data, err := f.TensorData(e)
	require.NoError(t, err)
	assert.Empty(t, data)
}

func TestParseHostileCountsAllocateLittle(t *testing.T) {
	// Counts the bytes could just hold, in 4 MB whose first entry is bad:
	// reserving room for them all would take tens of MB.
	plausible := (&raw{}).header(3, 0, (4<<20)/minKVBytes)
	plausible.Write(make([]byte, 4<<20))
	hostile := [][]byte{
		plausible.Bytes(),
		(&raw{}).header(3, 1<<40, 1<<40).Bytes(),
		func() []byte {
			r := (&raw{}).header(3, 0, 1)
			r.str("k")
			r.u32(uint32(TypeArray))
			r.u32(uint32(TypeString))
			r.u64(1 << 50)
			r.Write(make([]byte, 1000))
			return r.Bytes()
		}(),
	}
	for _, data := range hostile {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Parse(data)
		runtime.ReadMemStats(&after)
		require.Error(t, err)
		assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(512<<10), "parsing a hostile header allocated too much")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "missing.gguf"))
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "missing.gguf")

	_, err = Open(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a regular file")

	empty := filepath.Join(dir, "empty.gguf")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	_, err = Open(empty)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "empty.gguf")
	assert.Contains(t, err.Error(), "too short")

	bad := filepath.Join(dir, "v1.gguf")
	require.NoError(t, os.WriteFile(bad, (&raw{}).header(1, 0, 0).Bytes(), 0o644))
	_, err = Open(bad)
	var fe *FormatError
	require.ErrorAs(t, err, &fe)
	assert.Contains(t, err.Error(), "v1.gguf")
}

func TestTensorDataChecksBounds(t *testing.T) {
	f, err := Parse(validFile())
	require.NoError(t, err)
	a, _ := f.Tensor("a")
	forged := *a
	forged.Offset = 64
	_, err = f.TensorData(&forged)
	assert.ErrorContains(t, err, "outside the")
	forged = *a
	forged.Dims = []uint64{1 << 20}
	_, err = f.TensorData(&forged)
	assert.ErrorContains(t, err, "outside the")
	forged.Type = 16
	_, err = f.TensorData(&forged)
	assert.ErrorContains(t, err, "IQ2_XXS")

	require.NoError(t, f.Close())
	require.NoError(t, f.Close(), "closing twice is harmless")
	_, err = f.TensorData(a)
	assert.ErrorIs(t, err, ErrClosed)
}
