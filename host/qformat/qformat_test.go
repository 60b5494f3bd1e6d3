package qformat

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/quant"
	"qinfer/host/testenv"
)

type rowTensor struct {
	name       string
	typ        backend.DType
	rows, cols int
	data       []byte
	scales     []float32
	act        float32
}

func randRows(t *testing.T, rng *rand.Rand, name string, typ backend.DType, rows, cols int, act float32) rowTensor {
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	data, scales, err := quant.QuantizeRows(typ, x, rows, cols)
	require.NoError(t, err)
	return rowTensor{name, typ, rows, cols, data, scales, act}
}

func f32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func parse(t *testing.T, b *gguf.Builder) *gguf.File {
	t.Helper()
	var buf bytes.Buffer
	_, err := b.WriteTo(&buf)
	require.NoError(t, err)
	f, err := gguf.Parse(buf.Bytes())
	require.NoError(t, err)
	return f
}

// TestRowFormatModelRoundTrip writes a small model whose matrices are in
// every row format (one with a static activation scale) beside ordinary
// GGUF tensors, reads it back and expects identical weights.
func TestRowFormatModelRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	b := gguf.NewBuilder()
	b.Set("general.architecture", gguf.Str("llama"))
	norm := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	require.NoError(t, b.AddTensor("blk.0.attn_norm.weight", backend.F32, []uint64{8}, f32Bytes(norm)))
	tensors := []rowTensor{
		randRows(t, rng, "blk.0.attn_q.weight", backend.W8, 24, 40, 0.0125),
		randRows(t, rng, "blk.0.attn_k.weight", backend.FP8, 8, 40, 0),
		randRows(t, rng, "blk.0.ffn_up.weight", backend.Ternary, 16, 44, 0.5),
		randRows(t, rng, "blk.0.ffn_down.weight", backend.Binary, 12, 48, 0),
	}
	for _, rt := range tensors {
		require.NoError(t, PutRowTensor(b, rt.name, rt.typ, rt.rows, rt.cols, rt.data, rt.scales))
		if rt.act > 0 {
			require.NoError(t, SetActScale(b, rt.name, rt.act))
		}
	}
	q8 := make([]byte, 34*2)
	src := make([]float32, 64)
	for i := range src {
		src[i] = float32(rng.NormFloat64())
	}
	require.NoError(t, quant.Quantize(backend.Q8_0, src, q8))
	require.NoError(t, b.AddTensor("output.weight", backend.Q8_0, []uint64{32, 2}, q8))

	f := parse(t, b)

	// The storage convention, seen as plain GGUF.
	ti, ok := f.Tensor("blk.0.ffn_up.weight")
	require.True(t, ok)
	assert.Equal(t, backend.I8, ti.Type)
	assert.Equal(t, []uint64{11, 16}, ti.Dims)
	si, ok := f.Tensor("blk.0.ffn_up.weight.qscale")
	require.True(t, ok)
	assert.Equal(t, backend.F32, si.Type)
	assert.Equal(t, []uint64{16}, si.Dims)
	s, _ := f.String("qinfer.tensor_type.blk.0.ffn_up.weight")
	assert.Equal(t, "TERNARY", s)
	s, _ = f.String("qinfer.tensor_type.blk.0.attn_k.weight")
	assert.Equal(t, "FP8_E4M3", s)
	a, ok := f.Float("qinfer.act_scale.blk.0.attn_q.weight")
	require.True(t, ok)
	assert.Equal(t, float64(float32(0.0125)), a)

	for _, rt := range tensors {
		w, err := WeightFromGGUF(f, rt.name)
		require.NoError(t, err, rt.name)
		assert.Equal(t, backend.Weight{Name: rt.name, Type: rt.typ, Rows: rt.rows, Cols: rt.cols,
			Data: rt.data, RowScales: rt.scales, ActScale: rt.act}, *w, rt.name)
		typ, err := TensorType(f, rt.name)
		require.NoError(t, err)
		assert.Equal(t, rt.typ, typ)
		assert.True(t, IsScaleTensor(f, rt.name+".qscale"))
	}
	assert.False(t, IsScaleTensor(f, "output.weight"))

	w, err := WeightFromGGUF(f, "output.weight")
	require.NoError(t, err)
	assert.Equal(t, backend.Weight{Name: "output.weight", Type: backend.Q8_0, Rows: 2, Cols: 32, Data: q8}, *w)
	w, err = WeightFromGGUF(f, "blk.0.attn_norm.weight")
	require.NoError(t, err)
	assert.Equal(t, backend.Weight{Name: "blk.0.attn_norm.weight", Type: backend.F32, Rows: 1, Cols: 8, Data: f32Bytes(norm)}, *w)

	sum, err := Summarize(f)
	require.NoError(t, err)
	var names []string
	for _, s := range sum {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"blk.0.attn_norm.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight",
		"blk.0.ffn_up.weight", "blk.0.ffn_down.weight", "output.weight"}, names)
	assert.Equal(t, Summary{Name: "blk.0.ffn_up.weight", Type: backend.Ternary, Dims: []uint64{44, 16}, Bytes: 11*16 + 4*16}, sum[3])
	assert.Equal(t, uint64(44*16), sum[3].Elements())
	assert.Equal(t, Summary{Name: "output.weight", Type: backend.Q8_0, Dims: []uint64{32, 2}, Bytes: 68}, sum[5])
}

// TestReplaceInLlamaCppFile converts tensors of llama.cpp's tiny model in
// place (as the quantizer does on a gguf.FromFile builder), writes the
// file and loads them back.
func TestReplaceInLlamaCppFile(t *testing.T) {
	path := testenv.Path(t, "llamacpp", "tiny-f32.gguf")
	src, err := gguf.Open(path)
	require.NoError(t, err)
	defer src.Close()

	b := gguf.FromFile(src)
	want := map[string]rowTensor{}
	types := []backend.DType{backend.W8, backend.FP8, backend.Ternary, backend.Binary}
	i := 0
	for _, ti := range src.Tensors {
		if len(ti.Dims) != 2 || ti.Type != backend.F32 {
			continue
		}
		raw, err := src.TensorData(&ti)
		require.NoError(t, err)
		x := make([]float32, len(raw)/4)
		for k := range x {
			x[k] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:]))
		}
		typ := types[i%len(types)]
		i++
		rows, cols := int(ti.Dims[1]), int(ti.Dims[0])
		data, scales, err := quant.QuantizeRows(typ, x, rows, cols)
		require.NoError(t, err, ti.Name)
		require.NoError(t, PutRowTensor(b, ti.Name, typ, rows, cols, data, scales))
		want[ti.Name] = rowTensor{ti.Name, typ, rows, cols, data, scales, 0}
	}
	require.GreaterOrEqual(t, i, 4, "tiny-f32.gguf has too few matrices")
	out := filepath.Join(t.TempDir(), "rows.gguf")
	require.NoError(t, b.WriteFile(out))

	f, err := gguf.Open(out)
	require.NoError(t, err)
	defer f.Close()
	for name, rt := range want {
		w, err := WeightFromGGUF(f, name)
		require.NoError(t, err, name)
		assert.Equal(t, rt.typ, w.Type, name)
		assert.Equal(t, rt.rows, w.Rows, name)
		assert.Equal(t, rt.cols, w.Cols, name)
		assert.Equal(t, rt.data, w.Data, name)
		assert.Equal(t, rt.scales, w.RowScales, name)
	}
	// The 1-D tensors are untouched.
	for _, ti := range src.Tensors {
		if len(ti.Dims) != 1 {
			continue
		}
		w, err := WeightFromGGUF(f, ti.Name)
		require.NoError(t, err)
		raw, _ := src.TensorData(&ti)
		assert.Equal(t, raw, w.Data, ti.Name)
	}
}

func TestWeightFromGGUFErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	good := randRows(t, rng, "w", backend.Ternary, 4, 16, 0)
	base := func() *gguf.Builder {
		b := gguf.NewBuilder()
		require.NoError(t, PutRowTensor(b, good.name, good.typ, good.rows, good.cols, good.data, good.scales))
		require.NoError(t, b.AddTensor("plain", backend.F32, []uint64{4, 2}, make([]byte, 32)))
		return b
	}
	cases := []struct {
		name, tensor, want string
		edit               func(b *gguf.Builder)
	}{
		{"missing tensor", "nope", "tensor nope is missing", func(*gguf.Builder) {}},
		{"missing scales", "w", "scale tensor w.qscale is missing", func(b *gguf.Builder) { b.DeleteTensor("w.qscale") }},
		{"scales not F32", "w", "scale tensor w.qscale is F16 [4], want F32 [4]", func(b *gguf.Builder) {
			require.NoError(t, b.ReplaceTensor("w.qscale", backend.F16, []uint64{4}, make([]byte, 8)))
		}},
		{"scales wrong count", "w", "want F32 [4]", func(b *gguf.Builder) {
			require.NoError(t, b.ReplaceTensor("w.qscale", backend.F32, []uint64{3}, make([]byte, 12)))
		}},
		{"NaN scale", "w", "tensor w: row 2 has scale NaN", func(b *gguf.Builder) {
			require.NoError(t, b.ReplaceTensor("w.qscale", backend.F32, []uint64{4}, f32Bytes([]float32{1, 1, float32(math.NaN()), 1})))
		}},
		{"unknown type", "w", `metadata qinfer.tensor_type.w = "W7" is not a row format`, func(b *gguf.Builder) {
			b.Set(TypeKey("w"), gguf.Str("W7"))
		}},
		{"block type named", "w", `= "Q8_0" is not a row format`, func(b *gguf.Builder) {
			b.Set(TypeKey("w"), gguf.Str("Q8_0"))
		}},
		{"type not a string", "w", "is not a string", func(b *gguf.Builder) { b.Set(TypeKey("w"), gguf.U32(1000)) }},
		{"stored as F32", "plain", "TERNARY stored as F32 [4 2], want I8", func(b *gguf.Builder) {
			b.Set(TypeKey("plain"), gguf.Str("TERNARY"))
		}},
		{"invalid ternary code", "w", "TERNARY row 1 element 0 has the invalid code 3", func(b *gguf.Builder) {
			d := append([]byte(nil), good.data...)
			d[4] |= 3
			require.NoError(t, b.ReplaceTensor("w", backend.I8, []uint64{4, 4}, d))
		}},
		{"act scale on GGUF type", "plain", "static activation scales apply to row formats only, not F32", func(b *gguf.Builder) {
			b.Set(ActScaleKey("plain"), gguf.F32(0.1))
		}},
		{"act scale not f32", "w", "metadata qinfer.act_scale.w is f64, want f32", func(b *gguf.Builder) {
			b.Set(ActScaleKey("w"), gguf.F64(0.1))
		}},
		{"act scale negative", "w", "static activation scale -0.1", func(b *gguf.Builder) {
			b.Set(ActScaleKey("w"), gguf.F32(-0.1))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := base()
			c.edit(b)
			f := parse(t, b)
			_, err := WeightFromGGUF(f, c.tensor)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
	// And the unedited file loads.
	_, err := WeightFromGGUF(parse(t, base()), "w")
	require.NoError(t, err)
}

func TestPutRowTensorErrors(t *testing.T) {
	b := gguf.NewBuilder()
	assert.ErrorContains(t, PutRowTensor(b, "w", backend.Q8_0, 1, 32, make([]byte, 34), []float32{1}), "not a row format")
	assert.ErrorContains(t, PutRowTensor(b, "w", backend.W8, 2, 4, make([]byte, 8), []float32{1}), "needs 2 row scales")
	assert.ErrorContains(t, PutRowTensor(b, "w", backend.W8, 2, 4, make([]byte, 7), []float32{1, 1}), "needs 8 bytes")
	assert.ErrorContains(t, PutRowTensor(b, "w", backend.W8, 1, 4, make([]byte, 4), []float32{float32(math.Inf(1))}), "row 0 has scale +Inf")
	assert.ErrorContains(t, PutRowTensor(b, "w", backend.Ternary, 1, 4, []byte{0xff}, []float32{1}), "invalid code 3")
	long := "blk.0.a_very_long_tensor_name_that_is_fine_until_the_suffix.w"
	assert.ErrorContains(t, PutRowTensor(b, long, backend.W8, 1, 4, make([]byte, 4), []float32{1}), "llama.cpp allows at most 63")
	assert.ErrorContains(t, SetActScale(b, "w", 0), "want a finite scale > 0")
	_, ok := b.Get(TypeKey("w"))
	assert.False(t, ok, "nothing recorded for rejected tensors")
	ts, err := b.Tensors()
	require.NoError(t, err)
	assert.Empty(t, ts, "no tensor added for rejected tensors")
}

// splitRows quantizes a random rows x cols matrix to typ with the given
// outlier columns split off.
func splitRows(t *testing.T, rng *rand.Rand, name string, typ backend.DType, rows, cols int, ocols []int32, act float32) *backend.Weight {
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	data, scales, ow, err := quant.QuantizeRowsSplit(typ, x, rows, cols, ocols)
	require.NoError(t, err)
	return &backend.Weight{Name: name, Type: typ, Rows: rows, Cols: cols, Data: data, RowScales: scales, ActScale: act, OutlierCols: ocols, OutlierW: ow}
}

// TestSplitWeightRoundTrip stores split weights of every row format (and
// one without a split) with PutWeight and reads them back.
func TestSplitWeightRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	b := gguf.NewBuilder()
	ws := []*backend.Weight{
		splitRows(t, rng, "blk.0.attn_q.weight", backend.W8, 24, 40, []int32{3, 17, 39}, 0.0125),
		splitRows(t, rng, "blk.0.attn_k.weight", backend.FP8, 8, 40, []int32{0}, 0),
		splitRows(t, rng, "blk.0.ffn_up.weight", backend.Ternary, 16, 44, []int32{1, 2, 43}, 0.5),
		splitRows(t, rng, "blk.0.ffn_down.weight", backend.Binary, 12, 48, []int32{20, 21}, 0),
		splitRows(t, rng, "blk.0.attn_v.weight", backend.W8, 8, 40, nil, 0),
	}
	for _, w := range ws {
		require.NoError(t, PutWeight(b, w), w.Name)
	}
	f := parse(t, b)

	ci, ok := f.Tensor("blk.0.attn_q.weight.outlier_cols")
	require.True(t, ok)
	assert.Equal(t, backend.I32, ci.Type)
	assert.Equal(t, []uint64{3}, ci.Dims)
	raw, err := f.TensorData(ci)
	require.NoError(t, err)
	assert.Equal(t, []byte{3, 0, 0, 0, 17, 0, 0, 0, 39, 0, 0, 0}, raw)
	wi, ok := f.Tensor("blk.0.attn_q.weight.outlier_w")
	require.True(t, ok)
	assert.Equal(t, backend.F16, wi.Type)
	assert.Equal(t, []uint64{3, 24}, wi.Dims)
	_, ok = f.Tensor("blk.0.attn_v.weight.outlier_cols")
	assert.False(t, ok)

	for _, w := range ws {
		got, err := WeightFromGGUF(f, w.Name)
		require.NoError(t, err, w.Name)
		assert.Equal(t, *w, *got, w.Name)
		assert.True(t, IsCompanionTensor(f, w.Name+".qscale"))
		assert.False(t, IsCompanionTensor(f, w.Name))
		if len(w.OutlierCols) > 0 {
			assert.True(t, IsCompanionTensor(f, w.Name+".outlier_cols"))
			assert.True(t, IsCompanionTensor(f, w.Name+".outlier_w"))
		}
	}

	sum, err := Summarize(f)
	require.NoError(t, err)
	require.Len(t, sum, len(ws))
	// I8 codes, F32 row scales, I32 columns, F16 weights.
	assert.Equal(t, Summary{Name: "blk.0.attn_q.weight", Type: backend.W8, Dims: []uint64{40, 24},
		Bytes: 40*24 + 4*24 + 4*3 + 2*3*24, SplitCols: 3}, sum[0])
	assert.Equal(t, Summary{Name: "blk.0.attn_v.weight", Type: backend.W8, Dims: []uint64{40, 8}, Bytes: 40*8 + 4*8}, sum[4])

	// Putting a tensor again without a split removes the outlier tensors
	// and the activation scale.
	plain := splitRows(t, rng, "blk.0.attn_q.weight", backend.W8, 24, 40, nil, 0)
	require.NoError(t, PutWeight(b, plain))
	f = parse(t, b)
	got, err := WeightFromGGUF(f, plain.Name)
	require.NoError(t, err)
	assert.Equal(t, *plain, *got)
	_, ok = f.Tensor("blk.0.attn_q.weight.outlier_w")
	assert.False(t, ok)
}

func TestSplitWeightErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	good := splitRows(t, rng, "w", backend.W8, 4, 16, []int32{2, 9}, 0)
	base := func() *gguf.Builder {
		b := gguf.NewBuilder()
		require.NoError(t, PutWeight(b, good))
		require.NoError(t, b.AddTensor("plain", backend.F32, []uint64{4, 2}, make([]byte, 32)))
		return b
	}
	f16s := func(v ...uint16) []byte {
		out := make([]byte, 2*len(v))
		for i, h := range v {
			binary.LittleEndian.PutUint16(out[2*i:], h)
		}
		return out
	}
	i32s := func(v ...int32) []byte {
		out := make([]byte, 4*len(v))
		for i, c := range v {
			binary.LittleEndian.PutUint32(out[4*i:], uint32(c))
		}
		return out
	}
	cases := []struct {
		name, tensor, want string
		edit               func(b *gguf.Builder)
	}{
		{"weights missing", "w", "tensor w: w.outlier_cols is present but w.outlier_w is missing", func(b *gguf.Builder) { b.DeleteTensor("w.outlier_w") }},
		{"columns missing", "w", "tensor w: w.outlier_w is present but w.outlier_cols is missing", func(b *gguf.Builder) { b.DeleteTensor("w.outlier_cols") }},
		{"columns not I32", "w", "outlier column tensor w.outlier_cols is F32 [2], want I32 [k] with 1 <= k <= 16", func(b *gguf.Builder) {
			require.NoError(t, b.ReplaceTensor("w.outlier_cols", backend.F32, []uint64{2}, make([]byte, 8)))
		}},
		{"too many columns", "w", "want I32 [k] with 1 <= k <= 16", func(b *gguf.Builder) {
			require.NoError(t, b.ReplaceTensor("w.outlier_cols", backend.I32, []uint64{17}, make([]byte, 68)))
		}},
		{"weights wrong shape", "w", "outlier weight tensor w.outlier_w is F16 [2 3], want F16 [2 4]", func(b *gguf.Builder) {
			require.NoError(t, b.ReplaceTensor("w.outlier_w", backend.F16, []uint64{2, 3}, make([]byte, 12)))
		}},
		{"weights F32", "w", "outlier weight tensor w.outlier_w is F32 [2 4]", func(b *gguf.Builder) {
			require.NoError(t, b.ReplaceTensor("w.outlier_w", backend.F32, []uint64{2, 4}, make([]byte, 32)))
		}},
		{"unsorted", "w", "tensor w: outlier column 1 is 2: want strictly increasing columns in [0, 16)", func(b *gguf.Builder) {
			require.NoError(t, b.ReplaceTensor("w.outlier_cols", backend.I32, []uint64{2}, i32s(9, 2)))
		}},
		{"out of range", "w", "outlier column 1 is 16", func(b *gguf.Builder) {
			require.NoError(t, b.ReplaceTensor("w.outlier_cols", backend.I32, []uint64{2}, i32s(2, 16)))
		}},
		{"non-zero code", "w", "tensor w: W8 row 0: outlier column 3 has a non-zero code", func(b *gguf.Builder) {
			require.NoError(t, b.ReplaceTensor("w.outlier_cols", backend.I32, []uint64{2}, i32s(3, 9)))
		}},
		{"infinite weight", "w", "tensor w: outlier weight of row 2 column 9 is +Inf", func(b *gguf.Builder) {
			require.NoError(t, b.ReplaceTensor("w.outlier_w", backend.F16, []uint64{2, 4}, f16s(0, 0, 0, 0, 0, 0x7c00, 0, 0)))
		}},
		{"on a GGUF type", "plain", "tensor plain: plain.outlier_cols is present but outlier columns apply to row formats only, not F32", func(b *gguf.Builder) {
			require.NoError(t, b.AddTensor("plain.outlier_cols", backend.I32, []uint64{1}, i32s(0)))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := base()
			c.edit(b)
			_, err := WeightFromGGUF(parse(t, b), c.tensor)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
	w, err := WeightFromGGUF(parse(t, base()), "w")
	require.NoError(t, err)
	assert.Equal(t, good.OutlierCols, w.OutlierCols)

	// PutWeight checks before it writes anything.
	b := gguf.NewBuilder()
	bad := *good
	bad.OutlierCols = []int32{3, 9}
	assert.ErrorContains(t, PutWeight(b, &bad), "tensor w: W8 row 0: outlier column 3 has a non-zero code")
	bad = *good
	bad.OutlierW = bad.OutlierW[:7]
	assert.ErrorContains(t, PutWeight(b, &bad), "need 8 F16 weights, have 7")
	bad = *good
	bad.Name = "blk.0.a_very_long_tensor_name_that_fits_with_qscale.w"
	assert.ErrorContains(t, PutWeight(b, &bad), "outlier tensor name blk.0.a_very_long_tensor_name_that_fits_with_qscale.w.outlier_cols is 66 bytes")
	bad = *good
	bad.ActScale = -1
	assert.ErrorContains(t, PutWeight(b, &bad), "static activation scale -1")
	ts, err := b.Tensors()
	require.NoError(t, err)
	assert.Empty(t, ts)
	assert.Empty(t, b.KVs())
}
