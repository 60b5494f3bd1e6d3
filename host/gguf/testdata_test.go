package gguf

import (
	"encoding/binary"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/testenv"
)

// The expected shapes come from the test data README (what llama.cpp's
// converter was asked to produce), not from this reader.
func TestOpenLlamaCppFiles(t *testing.T) {
	cases := []struct {
		file                        string
		dim, layers, heads, kv, ffn uint64
		embdType                    backend.DType
	}{
		{"tiny-f32.gguf", 64, 2, 4, 4, 192, backend.F32},
		{"tiny-F16.gguf", 64, 2, 4, 4, 192, backend.F16},
		{"tiny-Q8_0.gguf", 64, 2, 4, 4, 192, backend.Q8_0},
		{"tiny-Q4_0.gguf", 64, 2, 4, 4, 192, backend.Q4_0},
		{"gqa-Q8_0.gguf", 128, 3, 8, 2, 320, backend.Q8_0},
		{"gqa-Q4_0.gguf", 128, 3, 8, 2, 320, backend.Q4_0},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			f, err := Open(testenv.Path(t, "llamacpp", c.file))
			require.NoError(t, err)
			defer f.Close()

			assert.Equal(t, uint32(3), f.Version)
			assert.Equal(t, "llama", f.Architecture())
			assert.Equal(t, uint64(DefaultAlignment), f.Alignment)
			for key, want := range map[string]uint64{
				"llama.embedding_length":        c.dim,
				"llama.block_count":             c.layers,
				"llama.attention.head_count":    c.heads,
				"llama.attention.head_count_kv": c.kv,
				"llama.feed_forward_length":     c.ffn,
			} {
				got, ok := f.Uint(key)
				assert.True(t, ok, key)
				assert.Equal(t, want, got, key)
			}
			tokens, ok := f.Strings("tokenizer.ggml.tokens")
			require.True(t, ok)
			require.Len(t, tokens, 32000)
			// The llama SentencePiece vocabulary starts with these.
			assert.Equal(t, []string{"<unk>", "<s>", "</s>", "<0x00>"}, tokens[:4])
			scores, ok := f.Float32s("tokenizer.ggml.scores")
			require.True(t, ok)
			assert.Len(t, scores, 32000)
			types, ok := f.Int32s("tokenizer.ggml.token_type")
			require.True(t, ok)
			assert.Len(t, types, 32000)
			assert.Equal(t, []int32{2, 3, 3}, types[:3], "unknown, control, control")
			eps, ok := f.Float("llama.attention.layer_norm_rms_epsilon")
			assert.True(t, ok)
			assert.InDelta(t, 1e-5, eps, 1e-12)
			_, ok = f.Float("llama.block_count")
			assert.False(t, ok, "a u32 key is not a float")

			wantTensors := 2 + 1 + 9*int(c.layers) // embd, norm, output; 9 per layer
			assert.Len(t, f.Tensors, wantTensors)
			embd, ok := f.Tensor("token_embd.weight")
			require.True(t, ok)
			assert.Equal(t, []uint64{c.dim, 32000}, embd.Dims)
			assert.Equal(t, c.embdType, embd.Type)
			assert.Equal(t, c.dim*32000, embd.Elements())
			down, ok := f.Tensor("blk.1.ffn_down.weight")
			require.True(t, ok)
			assert.Equal(t, []uint64{c.ffn, c.dim}, down.Dims)
			assert.Equal(t, c.dim, down.Rows())
			norm, ok := f.Tensor("output_norm.weight")
			require.True(t, ok)
			assert.Equal(t, backend.F32, norm.Type)
			_, ok = f.Tensor("no.such.tensor")
			assert.False(t, ok)

			st, err := os.Stat(testenv.Path(t, "llamacpp", c.file))
			require.NoError(t, err)
			var end uint64
			for i := range f.Tensors {
				ti := &f.Tensors[i]
				data, err := f.TensorData(ti)
				require.NoError(t, err, ti.Name)
				size, err := ti.Bytes()
				require.NoError(t, err)
				assert.Len(t, data, int(size))
				end = max(end, ti.Offset+size)
			}
			assert.Equal(t, uint64(st.Size()), f.DataOffset+alignUp(end, 32), "the last tensor ends the file, padded")
			assert.Equal(t, st.Size(), f.Size())
		})
	}
}

// TestTensorDataAcrossQuantizations checks every tensor's bytes through an
// independent path: llama-quantize made the F16, Q8_0 and Q4_0 files from
// the F32 one, so dequantizing each tensor (with a reference decoder here)
// must land within the format's rounding error of the F32 values. A wrong
// offset, size or type would be far off.
func TestTensorDataAcrossQuantizations(t *testing.T) {
	ref, err := Open(testenv.Path(t, "llamacpp", "tiny-f32.gguf"))
	require.NoError(t, err)
	defer ref.Close()
	for _, name := range []string{"tiny-F16.gguf", "tiny-Q8_0.gguf", "tiny-Q4_0.gguf"} {
		t.Run(name, func(t *testing.T) {
			f, err := Open(testenv.Path(t, "llamacpp", name))
			require.NoError(t, err)
			defer f.Close()
			require.Len(t, f.Tensors, len(ref.Tensors))
			seen := map[backend.DType]bool{}
			for i := range ref.Tensors {
				rt := &ref.Tensors[i]
				if testing.Short() && rt.Rows() >= 32000 {
					continue // the vocabulary-sized tensors are 90% of the work
				}
				qt, ok := f.Tensor(rt.Name)
				require.True(t, ok, rt.Name)
				require.Equal(t, rt.Dims, qt.Dims, rt.Name)
				seen[qt.Type] = true
				rdata, err := ref.TensorData(rt)
				require.NoError(t, err)
				qdata, err := f.TensorData(qt)
				require.NoError(t, err)
				want := decodeF32(rdata)
				checkDequant(t, rt.Name, qt.Type, qdata, want)
			}
			assert.True(t, seen[backend.F32], "norms stay F32")
		})
	}
}

func checkDequant(t *testing.T, name string, typ backend.DType, data []byte, want []float32) {
	t.Helper()
	switch typ {
	case backend.F32:
		require.Equal(t, want, decodeF32(data), name)
	case backend.F16:
		require.Len(t, data, 2*len(want), name)
		for i, w := range want {
			got := halfToFloat(binary.LittleEndian.Uint16(data[2*i:]))
			// F16 rounding: half an ulp of 11 significant bits, or the
			// subnormal step.
			tol := max(math.Abs(float64(w))*math.Pow(2, -11), math.Pow(2, -25))
			if math.Abs(float64(got-w)) > tol {
				t.Fatalf("%s[%d]: f16 %g, f32 %g", name, i, got, w)
			}
		}
	case backend.Q8_0, backend.Q4_0:
		blockBytes, scale := 34, 127.0
		if typ == backend.Q4_0 {
			blockBytes, scale = 18, 8.0
		}
		require.Len(t, data, len(want)/32*blockBytes, name)
		for b := 0; b < len(want)/32; b++ {
			blk := data[b*blockBytes : (b+1)*blockBytes]
			d := float64(halfToFloat(binary.LittleEndian.Uint16(blk)))
			amax := 0.0
			for _, w := range want[b*32 : b*32+32] {
				amax = max(amax, math.Abs(float64(w)))
			}
			// The scale is amax/127 (Q8_0) or amax/8 (Q4_0), stored
			// as f16.
			require.InDelta(t, amax/scale, math.Abs(d), amax/scale*1e-3+1e-7, "%s block %d scale", name, b)
			for j := 0; j < 32; j++ {
				var q float64
				if typ == backend.Q8_0 {
					q = float64(int8(blk[2+j]))
				} else if j < 16 {
					q = float64(int(blk[2+j]&0xF) - 8)
				} else {
					q = float64(int(blk[2+j-16]>>4) - 8)
				}
				w := float64(want[b*32+j])
				// Rounding costs half a step; Q4_0 clamps the
				// extreme of the opposite sign to 7 steps, a full
				// step off. Plus the f16 rounding of the scale.
				tol := math.Abs(d)*0.5 + math.Abs(d)*scale*math.Pow(2, -10)
				if typ == backend.Q4_0 {
					tol = math.Abs(d) * 1.01
				}
				if math.Abs(q*d-w) > tol {
					t.Fatalf("%s block %d elem %d: dequantized %g, f32 %g (scale %g)", name, b, j, q*d, w, d)
				}
			}
		}
	default:
		t.Fatalf("%s: unexpected type %v", name, typ)
	}
}

func decodeF32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// halfToFloat decodes an IEEE binary16 value.
func halfToFloat(h uint16) float32 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1F
	frac := float64(h & 0x3FF)
	switch exp {
	case 0:
		return float32(sign * frac * math.Pow(2, -24))
	case 31:
		if frac != 0 {
			return float32(math.NaN())
		}
		return float32(sign * math.Inf(1))
	}
	return float32(sign * (1 + frac/1024) * math.Pow(2, float64(exp-15)))
}

func TestOpenVocabFiles(t *testing.T) {
	cases := []struct {
		file, arch, model string
		tokens            int
		merges            bool
	}{
		{"ggml-vocab-llama-spm.gguf", "llama", "llama", 32000, false},
		{"ggml-vocab-gpt-2.gguf", "gpt2", "gpt2", 50257, true},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			f, err := Open(testenv.Path(t, "vocab", c.file))
			require.NoError(t, err)
			defer f.Close()
			assert.Equal(t, c.arch, f.Architecture())
			m, _ := f.String("tokenizer.ggml.model")
			assert.Equal(t, c.model, m)
			tokens, ok := f.Strings("tokenizer.ggml.tokens")
			require.True(t, ok)
			assert.Len(t, tokens, c.tokens)
			_, ok = f.Strings("tokenizer.ggml.merges")
			assert.Equal(t, c.merges, ok)
			assert.Empty(t, f.Tensors)
		})
	}
}
