package quantize

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/quant"
	"qinfer/host/testenv"
)

func openGGUF(t *testing.T, path string) *gguf.File {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func mustType(t *testing.T, name string) FileType {
	t.Helper()
	ft, err := ParseFileType(name)
	require.NoError(t, err)
	return ft
}

// TestMatchesLlamaQuantize is the acceptance test: quantizing llama.cpp's
// F32 tiny model gives, tensor by tensor, the types and bytes of the files
// llama-quantize (build 4748) wrote, and in fact the whole file.
func TestMatchesLlamaQuantize(t *testing.T) {
	src := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-f32.gguf"))
	for _, typ := range []string{"Q8_0", "Q4_0", "F16"} {
		t.Run(typ, func(t *testing.T) {
			ref := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-"+typ+".gguf"))
			out := filepath.Join(t.TempDir(), "out.gguf")
			rep, err := Quantize(src, out, Options{Type: mustType(t, typ)}, nil)
			require.NoError(t, err)
			got := openGGUF(t, out)

			require.Equal(t, len(ref.Tensors), len(got.Tensors))
			for i := range ref.Tensors {
				r, g := &ref.Tensors[i], &got.Tensors[i]
				require.Equal(t, r.Name, g.Name, "tensor %d", i)
				assert.Equal(t, r.Type, g.Type, "type of %s", r.Name)
				assert.Equal(t, r.Dims, g.Dims, "shape of %s", r.Name)
				rd, err := ref.TensorData(r)
				require.NoError(t, err)
				gd, err := got.TensorData(g)
				require.NoError(t, err)
				assert.True(t, bytes.Equal(rd, gd), "bytes of %s", r.Name)
			}
			require.Equal(t, len(ref.KVs), len(got.KVs))
			for i := range ref.KVs {
				assert.Equal(t, ref.KVs[i].Key, got.KVs[i].Key, "key %d", i)
				assert.Equal(t, ref.KVs[i].Value, got.KVs[i].Value, "value of %s", ref.KVs[i].Key)
			}
			want, err := os.ReadFile(testenv.Path(t, "llamacpp", "tiny-"+typ+".gguf"))
			require.NoError(t, err)
			have, err := os.ReadFile(out)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(want, have), "whole file differs from llama-quantize's (%d vs %d bytes)", len(have), len(want))

			var data int64
			for _, tr := range rep.Tensors {
				data += tr.Bytes
			}
			assert.Equal(t, data, rep.OutputBytes)
		})
	}
}

// dequantizedCopy rebuilds f with every tensor as F32 (the values its
// quantized data stands for), in memory.
func dequantizedCopy(t *testing.T, f *gguf.File) *gguf.File {
	t.Helper()
	b := gguf.FromFile(f)
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if ti.Type == backend.F32 {
			continue
		}
		data, err := f.TensorData(ti)
		require.NoError(t, err)
		x, err := quant.DequantizeRows(ti.Type, data, int(ti.Rows()), int(ti.Dims[0]))
		require.NoError(t, err)
		raw := make([]byte, 4*len(x))
		require.NoError(t, quant.Quantize(backend.F32, x, raw))
		require.NoError(t, b.ReplaceTensor(ti.Name, backend.F32, ti.Dims, raw))
	}
	b.Delete("general.file_type")
	b.Delete("general.quantization_version")
	var buf bytes.Buffer
	_, err := b.WriteTo(&buf)
	require.NoError(t, err)
	out, err := gguf.Parse(buf.Bytes())
	require.NoError(t, err)
	return out
}

// TestGQATypesMatchLlamaQuantize checks the type choice and tensor order
// on the grouped-query model, whose unquantized original is not in the
// test data: its Q8_0 file dequantized stands in for it.
func TestGQATypesMatchLlamaQuantize(t *testing.T) {
	src := dequantizedCopy(t, openGGUF(t, testenv.Path(t, "llamacpp", "gqa-Q8_0.gguf")))
	for _, typ := range []string{"Q8_0", "Q4_0"} {
		ref := openGGUF(t, testenv.Path(t, "llamacpp", "gqa-"+typ+".gguf"))
		out := filepath.Join(t.TempDir(), "out.gguf")
		_, err := Quantize(src, out, Options{Type: mustType(t, typ)}, nil)
		require.NoError(t, err)
		got := openGGUF(t, out)
		require.Equal(t, len(ref.Tensors), len(got.Tensors))
		for i := range ref.Tensors {
			assert.Equal(t, ref.Tensors[i].Name, got.Tensors[i].Name, "%s tensor %d", typ, i)
			assert.Equal(t, ref.Tensors[i].Type, got.Tensors[i].Type, "%s type of %s", typ, ref.Tensors[i].Name)
			assert.Equal(t, ref.Tensors[i].Offset, got.Tensors[i].Offset, "%s offset of %s", typ, ref.Tensors[i].Name)
		}
		if typ == "Q8_0" {
			// Requantizing Q8_0 values to Q8_0 reproduces them.
			for i := range ref.Tensors {
				rd, _ := ref.TensorData(&ref.Tensors[i])
				gd, _ := got.TensorData(&got.Tensors[i])
				assert.True(t, bytes.Equal(rd, gd), "bytes of %s", ref.Tensors[i].Name)
			}
		}
	}
}

// TestHalfPrecisionInputs: F16 and BF16 inputs are widened exactly and
// then quantized, so they give the bytes their F32 widening gives.
func TestHalfPrecisionInputs(t *testing.T) {
	s := synthSpec{layers: 1, dim: 64, kvDim: 64, ffn: 64, vocab: 64}
	f32 := synthFile(t, s)
	for _, half := range []backend.DType{backend.F16, backend.BF16} {
		b := gguf.FromFile(f32)
		for i := range f32.Tensors {
			ti := &f32.Tensors[i]
			if len(ti.Dims) < 2 {
				continue
			}
			x := f32Tensor(t, f32, ti.Name)
			raw := make([]byte, 2*len(x))
			require.NoError(t, quant.Quantize(half, x, raw))
			require.NoError(t, b.ReplaceTensor(ti.Name, half, ti.Dims, raw))
		}
		var buf bytes.Buffer
		_, err := b.WriteTo(&buf)
		require.NoError(t, err)
		halfFile, err := gguf.Parse(buf.Bytes())
		require.NoError(t, err)
		widened := dequantizedCopy(t, halfFile)

		dir := t.TempDir()
		a, w := filepath.Join(dir, "a.gguf"), filepath.Join(dir, "b.gguf")
		_, err = Quantize(halfFile, a, Options{Type: mustType(t, "Q4_K_M")}, nil)
		require.NoError(t, err)
		_, err = Quantize(widened, w, Options{Type: mustType(t, "Q4_K_M")}, nil)
		require.NoError(t, err)
		fa, fw := openGGUF(t, a), openGGUF(t, w)
		for i := range fa.Tensors {
			da, _ := fa.TensorData(&fa.Tensors[i])
			dw, _ := fw.TensorData(&fw.Tensors[i])
			assert.Equal(t, fw.Tensors[i].Type, fa.Tensors[i].Type, "%v %s", half, fa.Tensors[i].Name)
			assert.True(t, bytes.Equal(dw, da), "%v %s", half, fa.Tensors[i].Name)
		}
	}
}
