package backend

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRowBytes(t *testing.T) {
	// Closed forms from the block layouts: Q8_0 is 2+32 bytes per 32,
	// Q4_0 2+16, Q4_K 144 per 256, Q6_K 210 per 256.
	for _, c := range []struct {
		t    DType
		cols int
		want int
	}{{F32, 7, 28}, {F16, 7, 14}, {Q8_0, 96, 3 * 34}, {Q4_0, 64, 2 * 18}, {Q4_K, 512, 2 * 144}, {Q6_K, 256, 210}, {W8, 5, 5}} {
		got, err := RowBytes(c.t, c.cols)
		require.NoError(t, err, "%v", c.t)
		assert.Equal(t, c.want, got, "%v x %d", c.t, c.cols)
	}
	_, err := RowBytes(Q8_0, 33)
	assert.ErrorContains(t, err, "multiple of the block size 32")
	_, err = RowBytes(DType(999), 32)
	assert.ErrorContains(t, err, "unknown tensor type 999")
}

func TestParseDType(t *testing.T) {
	for _, name := range []string{"q8_0", "Q4_K", "f16", "FP8_E4M3", "ternary"} {
		d, err := ParseDType(name)
		require.NoError(t, err)
		assert.True(t, equalFold(d.String(), name))
	}
	_, err := ParseDType("Q9_9")
	assert.ErrorContains(t, err, `"Q9_9"`)
}

func TestWeightValidate(t *testing.T) {
	w := &Weight{Name: "w", Type: Q8_0, Rows: 2, Cols: 32, Data: make([]byte, 68)}
	assert.NoError(t, w.Validate())
	w.Data = w.Data[:67]
	assert.ErrorContains(t, w.Validate(), "needs 68 bytes, have 67")
	r := &Weight{Name: "r", Type: W8, Rows: 2, Cols: 4, Data: make([]byte, 8), RowScales: []float32{1}}
	assert.ErrorContains(t, r.Validate(), "needs 2 row scales, have 1")
}

func TestWeightValidateOutliers(t *testing.T) {
	good := func() *Weight {
		return &Weight{Name: "o", Type: W8, Rows: 2, Cols: 6, Data: make([]byte, 12), RowScales: []float32{1, 1},
			OutlierCols: []int32{1, 5}, OutlierW: []uint16{1, 2, 3, 4}}
	}
	require.NoError(t, good().Validate())
	for name, c := range map[string]struct {
		edit func(w *Weight)
		want string
	}{
		"block type":     {func(w *Weight) { w.Type, w.Cols, w.Data, w.RowScales = Q8_0, 32, make([]byte, 68), nil }, "apply to row formats"},
		"weights short":  {func(w *Weight) { w.OutlierW = w.OutlierW[:3] }, "need 4 F16 weights, have 3"},
		"weights only":   {func(w *Weight) { w.OutlierCols = nil }, "0 outlier columns of 2 rows need 0 F16 weights, have 4"},
		"unsorted":       {func(w *Weight) { w.OutlierCols = []int32{5, 1} }, "outlier column 1 is 1: want strictly increasing columns in [0, 6)"},
		"duplicate":      {func(w *Weight) { w.OutlierCols = []int32{1, 1} }, "outlier column 1 is 1"},
		"out of range":   {func(w *Weight) { w.OutlierCols = []int32{1, 6} }, "outlier column 1 is 6"},
		"negative":       {func(w *Weight) { w.OutlierCols = []int32{-1, 2} }, "outlier column 0 is -1"},
		"more than cols": {func(w *Weight) { w.OutlierCols = make([]int32, 7); w.OutlierW = make([]uint16, 14) }, "7 outlier columns for rows of 6"},
	} {
		w := good()
		c.edit(w)
		assert.ErrorContains(t, w.Validate(), c.want, name)
	}
}

func TestBatchInputValidate(t *testing.T) {
	kv := KVConfig{Ctx: 8, Seqs: 2}
	ok := &BatchInput{IDs: []int32{1, 2}, Pos: []int32{0, 7}, Seq: []int32{0, 1}, Outputs: []int32{1}}
	assert.NoError(t, ok.Validate(kv, 10))
	for name, c := range map[string]struct {
		in   BatchInput
		want string
	}{
		"empty":    {BatchInput{}, "no tokens"},
		"lengths":  {BatchInput{IDs: []int32{1}, Pos: []int32{0, 1}, Seq: []int32{0}}, "1 ids, 2 positions"},
		"vocab":    {BatchInput{IDs: []int32{10}, Pos: []int32{0}, Seq: []int32{0}}, "outside vocabulary of 10"},
		"context":  {BatchInput{IDs: []int32{1}, Pos: []int32{8}, Seq: []int32{0}}, "outside context of 8"},
		"sequence": {BatchInput{IDs: []int32{1}, Pos: []int32{0}, Seq: []int32{2}}, "outside 2 slots"},
		"output":   {BatchInput{IDs: []int32{1}, Pos: []int32{0}, Seq: []int32{0}, Outputs: []int32{1}}, "output row 1 outside batch of 1"},
	} {
		assert.ErrorContains(t, c.in.Validate(kv, 10), c.want, name)
	}
}

func TestBatchInputCheckShape(t *testing.T) {
	ok := BatchInput{IDs: []int32{7, 0, 3}, Pos: []int32{4, 5, 0}, Seq: []int32{0, 0, 1}, Outputs: []int32{2, 0}}
	require.NoError(t, ok.CheckShape(3))
	for _, c := range []struct {
		in   BatchInput
		want string
	}{
		{BatchInput{}, "no tokens"},
		{BatchInput{IDs: make([]int32, 6), Pos: make([]int32, 6), Seq: make([]int32, 6)}, "6 tokens exceed capacity 5"},
		{BatchInput{IDs: []int32{1}, Pos: []int32{0, 1}, Seq: []int32{0}}, "1 ids, 2 positions, 1 sequence ids"},
		{BatchInput{IDs: []int32{-1}, Pos: []int32{0}, Seq: []int32{0}}, "token 0 has negative id -1"},
		{BatchInput{IDs: []int32{1}, Pos: []int32{-2}, Seq: []int32{0}}, "token 0 has negative position -2"},
		{BatchInput{IDs: []int32{1, 2}, Pos: []int32{0, 1}, Seq: []int32{0, -1}}, "token 1 has negative sequence id -1"},
		{BatchInput{IDs: []int32{1}, Pos: []int32{0}, Seq: []int32{0}, Outputs: []int32{1}}, "output 0 is row 1, outside batch of 1"},
		{BatchInput{IDs: []int32{1}, Pos: []int32{0}, Seq: []int32{0}, Outputs: []int32{0, 0}}, "2 output rows for 1 tokens"},
	} {
		assert.EqualError(t, c.in.CheckShape(5), c.want)
	}
}
