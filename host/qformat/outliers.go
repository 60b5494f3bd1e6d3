package qformat

import (
	"encoding/binary"
	"fmt"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/quant"
)

// A row-format tensor NAME split LLM.int8()-style (backend.Weight.
// OutlierCols, host/quant outliers.go) carries two more GGUF tensors:
//
//	NAME.outlier_cols  I32 [k]        the outlier columns, strictly increasing
//	NAME.outlier_w     F16 [k, rows]  their weights, row r's k values together
//
// with the codes of those columns in NAME those of a zero weight and the
// row scales in NAME.qscale computed from the other columns. Both tensors
// are present or neither is.

// OutlierColsTensor is the name of the tensor listing name's outlier
// columns.
func OutlierColsTensor(name string) string { return name + OutlierColsSuffix }

// OutlierWTensor is the name of the tensor holding the F16 weights of
// name's outlier columns.
func OutlierWTensor(name string) string { return name + OutlierWSuffix }

// PutWeight stores a row-format weight in b as PutRowTensor does, plus its
// outlier columns when it has some (and removes outlier tensors a tensor
// of that name had before when it has none) and its static activation
// scale when it is > 0. Everything is checked before b is changed, so an
// error leaves b as it was. The data is referenced until b is written.
func PutWeight(b *gguf.Builder, w *backend.Weight) error {
	if !quant.IsRowFormat(w.Type) {
		return fmt.Errorf("tensor %s: %v is not a row format", w.Name, w.Type)
	}
	if err := w.Validate(); err != nil {
		return fmt.Errorf("tensor %s: %w", w.Name, err)
	}
	if err := quant.CheckRowData(w.Type, w.Data, w.Rows, w.Cols); err != nil {
		return fmt.Errorf("tensor %s: %w", w.Name, err)
	}
	k := len(w.OutlierCols)
	if k > 0 {
		if err := quant.CheckOutliers(w.Type, w.Data, w.Rows, w.Cols, w.OutlierCols, w.OutlierW); err != nil {
			return fmt.Errorf("tensor %s: %w", w.Name, err)
		}
		for _, n := range []string{OutlierColsTensor(w.Name), OutlierWTensor(w.Name)} {
			if len(n) > gguf.MaxTensorName {
				return fmt.Errorf("tensor %s: its outlier tensor name %s is %d bytes, llama.cpp allows at most %d", w.Name, n, len(n), gguf.MaxTensorName)
			}
		}
	}
	if w.ActScale != 0 {
		if err := quant.CheckActScale(w.ActScale); err != nil {
			return fmt.Errorf("tensor %s: %w", w.Name, err)
		}
	}
	if err := PutRowTensor(b, w.Name, w.Type, w.Rows, w.Cols, w.Data, w.RowScales); err != nil {
		return err
	}
	if w.ActScale != 0 {
		b.Set(ActScaleKey(w.Name), gguf.F32(w.ActScale))
	} else {
		b.Delete(ActScaleKey(w.Name))
	}
	if k == 0 {
		b.DeleteTensor(OutlierColsTensor(w.Name))
		b.DeleteTensor(OutlierWTensor(w.Name))
		return nil
	}
	cb := make([]byte, 4*k)
	for i, c := range w.OutlierCols {
		binary.LittleEndian.PutUint32(cb[4*i:], uint32(c))
	}
	wb := make([]byte, 2*len(w.OutlierW))
	for i, h := range w.OutlierW {
		binary.LittleEndian.PutUint16(wb[2*i:], h)
	}
	if err := putTensor(b, OutlierColsTensor(w.Name), backend.I32, []uint64{uint64(k)}, cb); err != nil {
		return err
	}
	return putTensor(b, OutlierWTensor(w.Name), backend.F16, []uint64{uint64(k), uint64(w.Rows)}, wb)
}

// loadOutliers reads the outlier tensors of the row-format weight w
// (shape, data and scales already checked), nil when it has none.
func loadOutliers(f *gguf.File, w *backend.Weight) ([]int32, []uint16, error) {
	cn, wn := OutlierColsTensor(w.Name), OutlierWTensor(w.Name)
	ci, hasC := f.Tensor(cn)
	wi, hasW := f.Tensor(wn)
	switch {
	case !hasC && !hasW:
		return nil, nil, nil
	case !hasC:
		return nil, nil, fmt.Errorf("tensor %s: %s is present but %s is missing", w.Name, wn, cn)
	case !hasW:
		return nil, nil, fmt.Errorf("tensor %s: %s is present but %s is missing", w.Name, cn, wn)
	}
	if ci.Type != backend.I32 || len(ci.Dims) != 1 || ci.Dims[0] == 0 || ci.Dims[0] > uint64(w.Cols) {
		return nil, nil, fmt.Errorf("tensor %s: outlier column tensor %s is %v %v, want I32 [k] with 1 <= k <= %d", w.Name, cn, ci.Type, ci.Dims, w.Cols)
	}
	k := int(ci.Dims[0])
	if wi.Type != backend.F16 || len(wi.Dims) != 2 || wi.Dims[0] != uint64(k) || wi.Dims[1] != uint64(w.Rows) {
		return nil, nil, fmt.Errorf("tensor %s: outlier weight tensor %s is %v %v, want F16 [%d %d]", w.Name, wn, wi.Type, wi.Dims, k, w.Rows)
	}
	cb, err := f.TensorData(ci)
	if err != nil {
		return nil, nil, fmt.Errorf("tensor %s: %w", cn, err)
	}
	wb, err := f.TensorData(wi)
	if err != nil {
		return nil, nil, fmt.Errorf("tensor %s: %w", wn, err)
	}
	ocols := make([]int32, k)
	for i := range ocols {
		ocols[i] = int32(binary.LittleEndian.Uint32(cb[4*i:]))
	}
	ow := make([]uint16, k*w.Rows)
	for i := range ow {
		ow[i] = binary.LittleEndian.Uint16(wb[2*i:])
	}
	if err := quant.CheckOutliers(w.Type, w.Data, w.Rows, w.Cols, ocols, ow); err != nil {
		return nil, nil, fmt.Errorf("tensor %s: %w", w.Name, err)
	}
	return ocols, ow, nil
}

// noOutliers rejects outlier tensors beside a tensor that is not a row
// format, which no backend would apply.
func noOutliers(f *gguf.File, name string, t backend.DType) error {
	for _, n := range []string{OutlierColsTensor(name), OutlierWTensor(name)} {
		if _, ok := f.Tensor(n); ok {
			return fmt.Errorf("tensor %s: %s is present but outlier columns apply to row formats only, not %v", name, n, t)
		}
	}
	return nil
}
