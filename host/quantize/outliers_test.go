package quantize

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/qformat"
	"qinfer/host/testenv"
	"qinfer/host/tokenizer"
)

// Channels of tiny whose norm weights the injected-outlier model scales
// by 50: input channel 5 of layer 0's attention projections and channel 9
// of layer 1's gate and up projections.
const (
	injAttnChan = 5
	injFFNChan  = 9
)

// injectedTiny is tiny-f32 with two deliberately injected outlier
// channels: one entry of blk.0.attn_norm.weight and one of
// blk.1.ffn_norm.weight multiplied by 50, as LLM.int8() describes
// emergent outlier features (a few input channels far larger than the
// rest).
func injectedTiny(t *testing.T) *gguf.File {
	t.Helper()
	src := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-f32.gguf"))
	b := gguf.FromFile(src)
	for _, inj := range []struct {
		name string
		ch   int
	}{{"blk.0.attn_norm.weight", injAttnChan}, {"blk.1.ffn_norm.weight", injFFNChan}} {
		x := f32Tensor(t, src, inj.name)
		x[inj.ch] *= 50
		raw := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
		ti, _ := src.Tensor(inj.name)
		require.NoError(t, b.ReplaceTensor(inj.name, backend.F32, ti.Dims, raw))
	}
	var buf bytes.Buffer
	_, err := b.WriteTo(&buf)
	require.NoError(t, err)
	f, err := gguf.Parse(buf.Bytes())
	require.NoError(t, err)
	return f
}

// evalText is the second half of the shared evaluation text, which the
// calibration (the first half) never sees.
func evalText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(testenv.Path(t, "llamacpp", "eval.txt"))
	require.NoError(t, err)
	return string(b[len(b)/2:])
}

// firstAttnInputMax computes, in float64 and independently of the model
// code, the largest magnitude of every channel of layer 0's attention
// input rmsnorm(embedding) * attn_norm over the calibration chunks.
func firstAttnInputMax(t *testing.T, f *gguf.File, text string, ctx, maxTokens int) []float64 {
	t.Helper()
	tok, err := tokenizer.FromGGUF(f)
	require.NoError(t, err)
	ids, err := tok.Encode(text, true, false)
	require.NoError(t, err)
	embd := f32Tensor(t, f, "token_embd.weight")
	norm := f32Tensor(t, f, "blk.0.attn_norm.weight")
	eps, _ := f.Float("llama.attention.layer_norm_rms_epsilon")
	dim := len(norm)
	m := make([]float64, dim)
	for c := 0; c < min(len(ids), maxTokens)/ctx; c++ {
		for p := 0; p < ctx; p++ {
			id := ids[c*ctx+p]
			if p == 0 {
				id = tok.BOS()
			}
			row := embd[int(id)*dim : (int(id)+1)*dim]
			var ss float64
			for _, v := range row {
				ss += float64(v) * float64(v)
			}
			inv := 1 / math.Sqrt(ss/float64(dim)+eps)
			for i, v := range row {
				m[i] = max(m[i], math.Abs(float64(v)*inv*float64(norm[i])))
			}
		}
	}
	return m
}

// TestSplitReducesErrorOnInjectedOutliers is the acceptance test of the
// split: on a model with injected outlier channels, W8 with the outlier
// columns split off is measurably closer to the F32 model than W8
// without, dynamic and static, measured as the KL divergence of the next
// token distributions on text the calibration did not see.
func TestSplitReducesErrorOnInjectedOutliers(t *testing.T) {
	f32 := injectedTiny(t)
	chunks, _, err := calibChunks(f32, Options{Calibration: evalText(t), Calib: CalibOptions{Ctx: 128, MaxTokens: 256}})
	require.NoError(t, err)
	require.Len(t, chunks, 2)
	dir := t.TempDir()
	measure := func(method Method, mode OutlierMode) float64 {
		out := filepath.Join(dir, method.String()+"-"+mode.String()+".gguf")
		opt := Options{Type: mustType(t, "W8"), Method: method, Outliers: mode, Calibration: calibText(t), Calib: CalibOptions{MaxTokens: 256}}
		_, err := Quantize(f32, out, opt, nil)
		require.NoError(t, err)
		q := openGGUF(t, out)
		var kld float64
		for _, c := range chunks {
			kld += refKLD(t, f32, q, c) / float64(len(chunks))
		}
		return kld
	}
	for _, method := range []Method{Dynamic, Static} {
		off, split := measure(method, OutliersOff), measure(method, OutliersSplit)
		t.Logf("%v: KLD to F32 without a split %.5f, with %.5f", method, off, split)
		assert.Less(t, split, off/2, "%v: the split should at least halve the error", method)
	}
}

// TestSplitChoosesAndStoresColumns checks the columns chosen on the
// injected model against an independent computation of layer 0's
// attention input, the static scale computed without them, and what the
// file and the report say.
func TestSplitChoosesAndStoresColumns(t *testing.T) {
	f32 := injectedTiny(t)
	text := calibText(t)
	out := filepath.Join(t.TempDir(), "split.gguf")
	opt := Options{Type: mustType(t, "W8"), Method: Static, Calibration: text, Calib: CalibOptions{MaxTokens: 256}}
	rep, err := Quantize(f32, out, opt, nil)
	require.NoError(t, err)
	f := openGGUF(t, out)

	chMax := firstAttnInputMax(t, f32, text, 128, 256)
	var above []int32
	var restMax float64
	for c, m := range chMax {
		if m > 6 {
			above = append(above, int32(c))
		} else {
			restMax = max(restMax, m)
		}
	}
	require.Equal(t, []int32{injAttnChan}, above, "only the injected channel of layer 0's attention input exceeds 6")
	for _, name := range []string{"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"} {
		w, err := qformat.WeightFromGGUF(f, name)
		require.NoError(t, err)
		assert.Equal(t, above, w.OutlierCols, name)
		require.Len(t, w.OutlierW, w.Rows)
		// Static min-max scale of the other channels.
		assert.InEpsilon(t, restMax/127, w.ActScale, 1e-5, name)
	}
	for _, name := range []string{"blk.1.ffn_gate.weight", "blk.1.ffn_up.weight"} {
		w, err := qformat.WeightFromGGUF(f, name)
		require.NoError(t, err)
		assert.Contains(t, w.OutlierCols, int32(injFFNChan), name)
	}
	// The embeddings are never split; tensors of 64 inputs split at most
	// 2 columns (1/32), of 192 at most 6.
	_, ok := f.Tensor("token_embd.weight.outlier_cols")
	assert.False(t, ok)
	for _, tr := range rep.Tensors {
		assert.LessOrEqual(t, len(tr.SplitCols), int(tr.Dims[0])/32, tr.Name)
	}

	// The report: printed, stored as metadata, and consistent with the
	// tensors and the sizes.
	require.NotNil(t, rep.Outliers)
	js, ok := f.String("qinfer.quant.outliers")
	require.True(t, ok)
	var stored OutlierReport
	require.NoError(t, json.Unmarshal([]byte(js), &stored))
	assert.Equal(t, *rep.Outliers, stored)
	assert.Equal(t, "split", stored.Mode)
	assert.Equal(t, 6.0, stored.Threshold)
	assert.Equal(t, 1.0/32, stored.Cap)
	byName := map[string]OutlierTensor{}
	for _, ot := range stored.Tensors {
		byName[ot.Name] = ot
	}
	assert.Equal(t, above, byName["blk.0.attn_q.weight"].Split)
	assert.Contains(t, rep.Outliers.Text(), "blk.0.attn_q.weight")
	assert.Contains(t, rep.Outliers.Text(), "1: [5]")

	sums, err := qformat.Summarize(f)
	require.NoError(t, err)
	var fileBytes int64
	for _, s := range sums {
		fileBytes += int64(s.Bytes)
	}
	assert.Equal(t, rep.OutputBytes, fileBytes, "reported size counts the split columns as the file holds them")
	for _, tr := range rep.Tensors {
		if len(tr.SplitCols) == 0 {
			continue
		}
		rows := int64(tr.Dims[1])
		k := int64(len(tr.SplitCols))
		assert.Equal(t, int64(tr.Dims[0])*rows+4*rows+4*k+2*k*rows, tr.Bytes, tr.Name)
		w, err := qformat.WeightFromGGUF(f, tr.Name)
		require.NoError(t, err)
		assert.Equal(t, tr.SplitCols, w.OutlierCols, tr.Name)
	}
	cr := rep.Calibration
	for _, ct := range cr.Tensors {
		if ct.Name == "blk.0.attn_q.weight" {
			assert.Equal(t, 1, ct.SplitColumns)
			assert.InEpsilon(t, restMax, ct.AbsMax, 1e-5)
		}
	}
}

// TestSplitCap: a threshold far too low marks every channel an outlier;
// the cap keeps the split at 1/32 (here 1/16) of each tensor's inputs,
// the largest channels.
func TestSplitCap(t *testing.T) {
	f32 := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-f32.gguf"))
	out := filepath.Join(t.TempDir(), "cap.gguf")
	opt := Options{Type: mustType(t, "W8"), Outliers: OutliersSplit, OutlierThreshold: 1e-6, OutlierCap: 1.0 / 16,
		Calibration: calibText(t), Calib: CalibOptions{MaxTokens: 128}}
	rep, err := Quantize(f32, out, opt, nil)
	require.NoError(t, err)
	f := openGGUF(t, out)
	split := 0
	for _, tr := range rep.Tensors {
		if tr.To != backend.W8 {
			continue
		}
		split++
		assert.Len(t, tr.SplitCols, int(tr.Dims[0])/16, tr.Name)
		assert.True(t, slices.IsSorted(tr.SplitCols), tr.Name)
	}
	assert.Equal(t, 15, split, "every W8 tensor (14 in the layers and the classifier)")
	// The largest channels are the ones kept: compare with layer 0's
	// attention input, computed independently.
	chMax := firstAttnInputMax(t, f32, calibText(t), 128, 128)
	order := make([]int32, len(chMax))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		if chMax[a] > chMax[b] {
			return -1
		}
		if chMax[a] < chMax[b] {
			return 1
		}
		return 0
	})
	want := slices.Clone(order[:4])
	slices.Sort(want)
	w, err := qformat.WeightFromGGUF(f, "blk.0.attn_q.weight")
	require.NoError(t, err)
	assert.Equal(t, want, w.OutlierCols)
}

// TestOutlierModes: what each mode does with each kind of type, and the
// notes and plans that say so.
func TestOutlierModes(t *testing.T) {
	f32 := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-f32.gguf"))
	text := calibText(t)
	cal := CalibOptions{MaxTokens: 128}

	// Dynamic W8 without a calibration text: no split, nothing to say.
	rep, err := Quantize(f32, filepath.Join(t.TempDir(), "a.gguf"), Options{Type: mustType(t, "W8")}, nil)
	require.NoError(t, err)
	assert.Nil(t, rep.Outliers)
	assert.Nil(t, rep.Calibration)

	// Dynamic W8 with one: split by default (the calibration finds the
	// channels).
	rep, err = Quantize(f32, filepath.Join(t.TempDir(), "b.gguf"), Options{Type: mustType(t, "W8"), Calibration: text, Calib: cal}, nil)
	require.NoError(t, err)
	require.NotNil(t, rep.Outliers)
	assert.Equal(t, "split", rep.Outliers.Mode)
	assert.NotEmpty(t, rep.Outliers.Tensors)

	// --outliers off with a calibration text: not even calibrated.
	rep, err = Quantize(f32, filepath.Join(t.TempDir(), "c.gguf"), Options{Type: mustType(t, "W8"), Outliers: OutliersOff, Calibration: text, Calib: cal}, nil)
	require.NoError(t, err)
	assert.Nil(t, rep.Outliers)
	assert.Nil(t, rep.Calibration)

	// A GGUF block type with a calibration text stays llama.cpp's file.
	rep, err = Quantize(f32, filepath.Join(t.TempDir(), "q8auto.gguf"), Options{Type: mustType(t, "Q8_0"), Calibration: text, Calib: cal}, nil)
	require.NoError(t, err)
	assert.Nil(t, rep.Outliers)
	for _, tr := range rep.Tensors {
		assert.NotEqual(t, backend.F16, tr.To, tr.Name)
	}

	// Split asked of it falls back to the per-tensor rule, with a note:
	// the tensors whose input has outlier channels stay F16.
	rep, err = Quantize(f32, filepath.Join(t.TempDir(), "q8.gguf"), Options{Type: mustType(t, "Q8_0"), Outliers: OutliersSplit, Calibration: text, Calib: cal}, nil)
	require.NoError(t, err)
	require.NotNil(t, rep.Outliers)
	assert.Equal(t, "tensor", rep.Outliers.Mode)
	assert.Contains(t, rep.Outliers.Note, "split is not available for Q8_0")
	assert.Contains(t, rep.Outliers.Text(), "note: split is not available for Q8_0")
	checkTensorRule(t, rep)

	// The per-tensor rule with W8, dynamic and static.
	for _, m := range []Method{Dynamic, Static} {
		out := filepath.Join(t.TempDir(), "w8t.gguf")
		rep, err = Quantize(f32, out, Options{Type: mustType(t, "W8"), Method: m, Outliers: OutliersTensor, Calibration: text, Calib: cal}, nil)
		require.NoError(t, err)
		assert.Equal(t, "tensor", rep.Outliers.Mode)
		checkTensorRule(t, rep)
		f := openGGUF(t, out)
		ty, err := qformat.TensorType(f, "blk.0.ffn_down.weight")
		require.NoError(t, err)
		assert.Equal(t, backend.F16, ty)
	}

	// In a mixed plan of a block type it falls back to the per-tensor rule.
	opt := mixedOpts(t, Budget{KLD: 10})
	opt.Outliers = OutliersSplit
	// Only layer 1 is planned, which keeps the sensitivity runs few.
	opt.Keep = []Keep{{Pattern: "blk.0.*", Type: backend.Q4_0}, {Pattern: "output.weight", Type: backend.Q8_0}, {Pattern: "token_embd.weight", Type: backend.Q4_0}}
	rep, err = Quantize(f32, filepath.Join(t.TempDir(), "mix.gguf"), opt, nil)
	require.NoError(t, err)
	require.NotNil(t, rep.Plan)
	assert.Equal(t, "tensor", rep.Plan.Outliers)
	assert.Contains(t, rep.Plan.OutlierNote, "the per-tensor rule is used instead")
	pinned := 0
	for _, pt := range rep.Plan.Tensors {
		if pt.Outliers > 0 {
			pinned++
			assert.Len(t, pt.Options, 1, "%s is held at the top of the ladder", pt.Name)
			assert.Equal(t, "Q8_0", pt.Type, pt.Name)
			assert.Empty(t, pt.SplitColumns)
		}
	}
	assert.Greater(t, pinned, 0, "blk.1.ffn_down's input has outlier channels")
}

// checkTensorRule: every tensor the report lists with outlier channels
// (tiny's ffn_down inputs have them) is F16, whole, and no other is.
func checkTensorRule(t *testing.T, rep *Report) {
	t.Helper()
	held := map[string]bool{}
	for _, ot := range rep.Outliers.Tensors {
		if ot.Name != "token_embd.weight" {
			held[ot.Name] = true
		}
		assert.Empty(t, ot.Split, ot.Name)
	}
	assert.True(t, held["blk.0.ffn_down.weight"])
	for _, tr := range rep.Tensors {
		if len(tr.Dims) < 2 || tr.Name == "token_embd.weight" {
			continue
		}
		assert.Equal(t, held[tr.Name], tr.To == backend.F16, tr.Name)
		assert.Empty(t, tr.SplitCols, tr.Name)
	}
}

// TestMixedW8Split: a mixed W8 plan measures and sizes the row-format
// rungs with their split columns and lists them in the plan.
func TestMixedW8Split(t *testing.T) {
	f32 := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-f32.gguf"))
	out := filepath.Join(t.TempDir(), "mixw8.gguf")
	opt := Options{Type: mustType(t, "W8"), Method: Mixed, Budget: Budget{KLD: 10}, Calibration: calibText(t),
		Keep:  []Keep{{Pattern: "output.weight", Type: backend.W8}, {Pattern: "blk.*.attn_*", Type: backend.W8}, {Pattern: "token_embd.weight", Type: backend.Q8_0}},
		Calib: CalibOptions{Ctx: 64, MinTokens: 64, MaxTokens: 64}}
	rep, err := Quantize(f32, out, opt, nil)
	require.NoError(t, err)
	pl := rep.Plan
	require.NotNil(t, pl)
	assert.Equal(t, "split", pl.Outliers)
	f := openGGUF(t, out)
	found := 0
	for _, pt := range pl.Tensors {
		if len(pt.SplitColumns) == 0 {
			continue
		}
		found++
		assert.Equal(t, "W8", pt.Type, pt.Name)
		w, err := qformat.WeightFromGGUF(f, pt.Name)
		require.NoError(t, err)
		assert.Equal(t, pt.SplitColumns, w.OutlierCols, pt.Name)
		k := int64(len(pt.SplitColumns))
		rows, cols := int64(w.Rows), int64(w.Cols)
		assert.Equal(t, rows*cols+4*rows+4*k+2*k*rows, pt.Bytes, pt.Name)
		assert.Greater(t, len(pt.Options), 1, "%s is not pinned by the per-tensor rule", pt.Name)
	}
	assert.Greater(t, found, 0, "the ffn_down inputs of tiny have outlier channels")
}

// TestOutlierOptionErrors: bad outlier options fail before anything is
// written.
func TestOutlierOptionErrors(t *testing.T) {
	f32 := openGGUF(t, testenv.Path(t, "llamacpp", "tiny-f32.gguf"))
	w8 := mustType(t, "W8")
	text := calibText(t)
	cases := []struct {
		name string
		opt  Options
		want string
	}{
		{"split without calibration", Options{Type: w8, Outliers: OutliersSplit}, "--outliers split finds the outlier channels by running a calibration text"},
		{"split with threshold off", Options{Type: w8, Outliers: OutliersSplit, OutlierThreshold: -1, Calibration: text}, "--outliers split needs an outlier threshold > 0"},
		{"tensor without calibration", Options{Type: w8, Outliers: OutliersTensor}, "--outliers tensor finds the outlier channels by running a calibration text"},
		{"tensor with threshold off", Options{Type: mustType(t, "Q4_0"), Outliers: OutliersTensor, OutlierThreshold: -1, Calibration: text}, "--outliers tensor needs an outlier threshold > 0"},
		{"cap above 1", Options{Type: w8, Outliers: OutliersSplit, OutlierCap: 1.5, Calibration: text}, "outlier cap 1.5 outside (0, 1]"},
		{"cap negative", Options{Type: w8, OutlierCap: -0.1}, "outlier cap -0.1 outside (0, 1]"},
		{"NaN threshold", Options{Type: w8, OutlierThreshold: math.NaN()}, "outlier threshold NaN"},
		{"unknown mode", Options{Type: w8, Outliers: OutlierMode(9)}, "unknown outlier mode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Quantize(f32, filepath.Join(dir, "out.gguf"), c.opt, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			requireNothingWritten(t, dir)
		})
	}
	for in, want := range map[string]OutlierMode{"split": OutliersSplit, "TENSOR": OutliersTensor, "off": OutliersOff, "": OutliersAuto} {
		m, err := ParseOutlierMode(in)
		require.NoError(t, err)
		assert.Equal(t, want, m)
	}
	_, err := ParseOutlierMode("column")
	assert.ErrorContains(t, err, `unknown outlier mode "column"`)
}

// TestStaticSkipsSplitChannels checks the observers' statistics without
// the split channels against a direct computation.
func TestStaticSkipsSplitChannels(t *testing.T) {
	s := newActStats(4)
	s.skipChannels([]int32{1})
	x := []float32{0.5, 100, -2, 1, -0.25, -300, 3, 0}
	require.NoError(t, s.add(x, 2, 4))
	assert.Equal(t, float32(3), s.absMax)
	assert.Equal(t, 6.0, s.count)
	assert.Equal(t, []float32{0.5, 300, 3, 1}, s.chanMax)
	assert.Equal(t, 3.0, s.clip(MinMax, 0))
	// The median of the six other magnitudes (0, 0.25, 0.5, 1, 2, 3) lies
	// between 0.5 and 1, far from the skipped 100 and 300.
	assert.InDelta(t, 0.75, s.percentile(50), 0.5)
	assert.Equal(t, []int32{1, 2}, s.splitColumns(2, 5))
	assert.Equal(t, []int32{1}, s.splitColumns(2, 1), "the cap keeps the largest")
	assert.Nil(t, s.splitColumns(2, 0))
}
