package quant_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/quant"
	"qinfer/host/testenv"
)

// openGGUF opens a file of the shared llama.cpp test data, skipping the test
// when the data is absent.
func openGGUF(t *testing.T, name string) *gguf.File {
	t.Helper()
	f, err := gguf.Open(testenv.Path(t, "llamacpp", name))
	require.NoError(t, err, name)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func numElements(ti *gguf.TensorInfo) int {
	n := 1
	for _, d := range ti.Dims {
		n *= int(d)
	}
	return n
}

// f32Tensor reads an F32 tensor of tiny-f32.gguf.
func f32Tensor(t *testing.T, f *gguf.File, name string) []float32 {
	t.Helper()
	ti, ok := f.Tensor(name)
	require.True(t, ok, "tensor %s missing from f32 file", name)
	require.Equal(t, backend.F32, ti.Type, name)
	data, err := f.TensorData(ti)
	require.NoError(t, err, name)
	out := make([]float32, numElements(ti))
	require.NoError(t, quant.Dequantize(backend.F32, data, out), name)
	return out
}

// TestQuantizeMatchesLlamaQuantize quantizes every tensor of tiny-f32.gguf
// that llama-quantize stored as Q8_0 or Q4_0 and requires the very same
// bytes.
func TestQuantizeMatchesLlamaQuantize(t *testing.T) {
	src := openGGUF(t, "tiny-f32.gguf")
	for _, file := range []string{"tiny-Q8_0.gguf", "tiny-Q4_0.gguf"} {
		t.Run(file, func(t *testing.T) {
			q := openGGUF(t, file)
			compared := map[backend.DType]int{}
			for i := range q.Tensors {
				ti := &q.Tensors[i]
				if ti.Type != backend.Q8_0 && ti.Type != backend.Q4_0 {
					continue
				}
				want, err := q.TensorData(ti)
				require.NoError(t, err, ti.Name)
				x := f32Tensor(t, src, ti.Name)
				got := make([]byte, len(want))
				require.NoError(t, quant.Quantize(ti.Type, x, got), ti.Name)
				if !assert.Equal(t, want, got, "%s (%v) differs from llama-quantize", ti.Name, ti.Type) {
					for b := 0; b < len(want); b++ {
						if want[b] != got[b] {
							t.Logf("%s: first difference at byte %d: want %#x got %#x", ti.Name, b, want[b], got[b])
							break
						}
					}
				}
				compared[ti.Type]++
			}
			require.NotEmpty(t, compared, "no Q8_0/Q4_0 tensors in %s", file)
			t.Logf("%s: compared %v tensors", file, compared)
		})
	}
}

// TestDequantizeLlamaFiles decodes the F16, Q8_0 and Q4_0 files' tensors and
// compares them with the F32 originals within each format's error bound.
func TestDequantizeLlamaFiles(t *testing.T) {
	src := openGGUF(t, "tiny-f32.gguf")
	for _, file := range []string{"tiny-F16.gguf", "tiny-Q8_0.gguf", "tiny-Q4_0.gguf"} {
		t.Run(file, func(t *testing.T) {
			q := openGGUF(t, file)
			checked := 0
			for i := range q.Tensors {
				ti := &q.Tensors[i]
				if ti.Type == backend.F32 {
					continue
				}
				data, err := q.TensorData(ti)
				require.NoError(t, err, ti.Name)
				got := make([]float32, numElements(ti))
				require.NoError(t, quant.Dequantize(ti.Type, data, got), ti.Name)
				want := f32Tensor(t, src, ti.Name)
				require.Len(t, got, len(want), ti.Name)
				bs := blockSizeOf(t, ti.Type)
				for b := 0; b < len(want); b += bs {
					blk := want[b : b+bs]
					bound := errorBound(ti.Type, blk)
					for j, w := range blk {
						if math.Abs(float64(got[b+j]-w)) > bound {
							require.Failf(t, "dequantized value out of bound", "%s (%v) element %d: got %g, f32 %g, bound %g", ti.Name, ti.Type, b+j, got[b+j], w, bound)
						}
					}
				}
				checked++
			}
			require.Positive(t, checked, "no quantized tensors in %s", file)
		})
	}
}

func blockSizeOf(t *testing.T, dt backend.DType) int {
	tr, err := backend.TraitsOf(dt)
	require.NoError(t, err)
	return tr.BlockSize
}

// errorBound is the largest |dequantized - original| a correct encoding of
// blk can have: half a quantization step (a full one where the format
// clips) plus the fp16 rounding of the scale (relative 2^-11) times the
// largest quant, plus slack for float rounding.
func errorBound(dt backend.DType, blk []float32) float64 {
	var amax float64
	for _, v := range blk {
		amax = math.Max(amax, math.Abs(float64(v)))
	}
	const fp16Rel = 1.0 / 2048
	switch dt {
	case backend.F16:
		// Half an ulp of the half value (relative 2^-11), or of the
		// subnormal spacing 2^-24.
		return math.Max(amax*fp16Rel, math.Pow(2, -25)) * 1.0001
	case backend.Q8_0:
		d := amax / 127
		return d/2 + amax*fp16Rel + 1e-7*amax
	case backend.Q4_0:
		// The largest element maps to -8 exactly; one of the opposite
		// sign can need +8, which is clipped to +7: a full step of error.
		d := amax / 8
		return d + amax*fp16Rel + 1e-7*amax
	}
	return math.Inf(1)
}
