package gguf

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/testenv"
)

// vocabSeeds derives small seeds from the vocab-only GGUF files of the
// shared test data: the same keys and value types, each array cut to a few
// elements (whole files, up to 1.7 MB, make the fuzzer crawl). It returns
// nothing when the data is absent: the fuzz target keeps its own seeds
// then instead of skipping.
func vocabSeeds(t testing.TB) [][]byte {
	dir := os.Getenv("QINFER_TESTDATA")
	if dir == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			return nil
		}
		dir = filepath.Join(root, "..", "shared", "testdata")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "vocab", "*.gguf"))
	var out [][]byte
	for _, path := range files {
		f, err := Open(path)
		require.NoError(t, err)
		b := NewBuilder()
		for _, kv := range f.KVs {
			v := kv.Value
			if vals, ok := v.Values(); ok && len(vals) > 6 {
				switch v.ElemType {
				case TypeString:
					s, _ := v.Strings()
					v = StrArray(s[:6])
				case TypeFloat32:
					x, _ := v.Float32s()
					v = F32Array(x[:6])
				case TypeInt32:
					x, _ := v.Int32s()
					v = I32Array(x[:6])
				}
			}
			b.Set(kv.Key, v)
		}
		var buf bytes.Buffer
		_, err = b.WriteTo(&buf)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		out = append(out, buf.Bytes())
	}
	return out
}

// builtSeed is a small file with every value type, nested arrays and a
// few tensor types.
func builtSeed(t testing.TB) []byte {
	rng := rand.New(rand.NewPCG(7, 7))
	b := NewBuilder()
	for i := 0; i < 13; i++ {
		v, _ := randomValue(rng, ValueType(i), 0)
		b.Set("k"+ValueType(i).String(), v)
		a, _ := randomArray(rng, ValueType(i), 0)
		b.Set("a"+ValueType(i).String(), a)
	}
	b.Set(KeyAlignment, U32(16))
	require.NoError(t, b.AddTensor("f", backend.F32, []uint64{3, 2}, make([]byte, 24)))
	require.NoError(t, b.AddTensor("q", backend.Q4_0, []uint64{32}, bytes.Repeat([]byte{0x5a}, 18)))
	require.NoError(t, b.AddTensor("k", backend.Q6_K, []uint64{256}, bytes.Repeat([]byte{3}, 210)))
	var buf bytes.Buffer
	_, err := b.WriteTo(&buf)
	require.NoError(t, err)
	return buf.Bytes()
}

// FuzzParse feeds arbitrary bytes to Parse. Whatever parses must be
// internally consistent: its tensor data in bounds, its accessors safe,
// and a rewrite must parse back to the same content and be stable.
func FuzzParse(f *testing.F) {
	for _, s := range vocabSeeds(f) {
		f.Add(s)
	}
	f.Add(validFile())
	f.Add(builtSeed(f))
	f.Add((&raw{}).header(3, 0, 0).Bytes())
	f.Add((&raw{}).header(2, 1, 1).Bytes())
	f.Add([]byte("GGUF"))

	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			var fe *FormatError
			require.True(t, errors.As(err, &fe), "error %v is not a *FormatError", err)
			return
		}
		for i := range file.Tensors {
			ti := &file.Tensors[i]
			td, err := file.TensorData(ti)
			require.NoError(t, err, ti.Name)
			size, err := ti.Bytes()
			require.NoError(t, err)
			require.Equal(t, int(size), len(td))
		}
		for _, kv := range file.KVs {
			touchValue(kv.Value)
		}

		var out bytes.Buffer
		_, err = FromFile(file).WriteTo(&out)
		require.NoError(t, err)
		again, err := Parse(out.Bytes())
		require.NoError(t, err, "rewrite does not parse")
		assert.Equal(t, file.Version, again.Version)
		assert.Equal(t, file.KVs, again.KVs)
		require.Len(t, again.Tensors, len(file.Tensors))
		for i := range file.Tensors {
			a, b := file.Tensors[i], again.Tensors[i]
			assert.Equal(t, a.Name, b.Name)
			assert.Equal(t, a.Dims, b.Dims)
			assert.Equal(t, a.Type, b.Type)
			da, _ := file.TensorData(&a)
			db, err := again.TensorData(&b)
			require.NoError(t, err)
			assert.Equal(t, da, db)
		}
		var out2 bytes.Buffer
		_, err = FromFile(again).WriteTo(&out2)
		require.NoError(t, err)
		require.Equal(t, out.Bytes(), out2.Bytes(), "rewriting is not stable")
	})
}

// touchValue calls every accessor; none may panic on any parsed value.
func touchValue(v Value) {
	v.Uint()
	v.Int()
	v.Float()
	v.Bool()
	v.String()
	v.Strings()
	v.Float32s()
	v.Int32s()
	v.Uint64s()
	v.Summary(4)
	if vals, ok := v.Values(); ok {
		for _, e := range vals {
			touchValue(e)
		}
	}
}
