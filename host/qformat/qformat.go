// Package qformat stores qinfer's row formats (W8, FP8_E4M3, TERNARY,
// BINARY; see host/quant) in GGUF files, which have no type ids for them,
// and loads any tensor of a GGUF file as a backend.Weight.
//
// A row-format tensor NAME of rows x cols is written as ordinary GGUF
// tensors and metadata (docs/formats.md):
//
//	NAME           I8  [RowBytes(type, cols), rows]  the packed rows
//	NAME.qscale    F32 [rows]                        one scale per row
//	qinfer.tensor_type.NAME = "W8" | "FP8_E4M3" | "TERNARY" | "BINARY"
//	qinfer.act_scale.NAME   = F32, optional: the static activation scale
//	NAME.outlier_cols I32 [k]       optional (LLM.int8() split, with
//	NAME.outlier_w    F16 [k, rows] outlier_w): columns and their weights
//
// so llama.cpp and gguf tools can still read (and ignore) the file.
package qformat

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/quant"
)

// Key prefixes and the companion tensor suffixes of the storage
// convention.
const (
	TypeKeyPrefix     = "qinfer.tensor_type."
	ActScaleKeyPrefix = "qinfer.act_scale."
	ScaleSuffix       = ".qscale"
	// OutlierColsSuffix and OutlierWSuffix name the two tensors of a
	// split (LLM.int8()) row-format tensor: its outlier columns and their
	// F16 weights (outliers.go).
	OutlierColsSuffix = ".outlier_cols"
	OutlierWSuffix    = ".outlier_w"
)

// TypeKey is the metadata key naming tensor name's row format.
func TypeKey(name string) string { return TypeKeyPrefix + name }

// ActScaleKey is the metadata key of tensor name's static activation scale.
func ActScaleKey(name string) string { return ActScaleKeyPrefix + name }

// ScaleTensor is the name of the tensor holding name's row scales.
func ScaleTensor(name string) string { return name + ScaleSuffix }

// PutRowTensor stores a row-format tensor in b: the packed rows as an I8
// tensor called name, the scales as name.qscale, and the type in the
// metadata. Tensors already in b under those names are replaced in place
// (a quantizer editing a builder made by gguf.FromFile); new ones are
// appended. data must hold rows*RowBytes(t, cols) bytes and scales rows
// finite values; data is referenced, not copied, until b is written.
func PutRowTensor(b *gguf.Builder, name string, t backend.DType, rows, cols int, data []byte, scales []float32) error {
	if !quant.IsRowFormat(t) {
		return fmt.Errorf("tensor %s: %v is not a row format", name, t)
	}
	w := backend.Weight{Name: name, Type: t, Rows: rows, Cols: cols, Data: data, RowScales: scales}
	if err := w.Validate(); err != nil {
		return fmt.Errorf("tensor %s: %w", name, err)
	}
	if err := checkScales(name, scales); err != nil {
		return err
	}
	if err := quant.CheckRowData(t, data, rows, cols); err != nil {
		return fmt.Errorf("tensor %s: %w", name, err)
	}
	// Check both names first so that a failure leaves b as it was.
	if sn := ScaleTensor(name); len(sn) > gguf.MaxTensorName {
		return fmt.Errorf("tensor %s: its scale tensor name %s is %d bytes, llama.cpp allows at most %d", name, sn, len(sn), gguf.MaxTensorName)
	}
	rb, _ := backend.RowBytes(t, cols)
	sb := make([]byte, 4*rows)
	for i, s := range scales {
		binary.LittleEndian.PutUint32(sb[4*i:], math.Float32bits(s))
	}
	if err := putTensor(b, name, backend.I8, []uint64{uint64(rb), uint64(rows)}, data); err != nil {
		return err
	}
	if err := putTensor(b, ScaleTensor(name), backend.F32, []uint64{uint64(rows)}, sb); err != nil {
		return err
	}
	b.Set(TypeKey(name), gguf.Str(t.String()))
	return nil
}

func putTensor(b *gguf.Builder, name string, t backend.DType, dims []uint64, data []byte) error {
	err := b.ReplaceTensor(name, t, dims, data)
	if err != nil {
		err = b.AddTensor(name, t, dims, data)
	}
	if err != nil {
		return fmt.Errorf("store tensor %s: %w", name, err)
	}
	return nil
}

// SetActScale records a static activation scale for the input of the
// row-format tensor name.
func SetActScale(b *gguf.Builder, name string, scale float32) error {
	if err := quant.CheckActScale(scale); err != nil {
		return fmt.Errorf("tensor %s: %w", name, err)
	}
	b.Set(ActScaleKey(name), gguf.F32(scale))
	return nil
}

// TensorType returns the type of tensor name as qinfer sees it: its row
// format when the metadata names one, otherwise its GGUF type.
func TensorType(f *gguf.File, name string) (backend.DType, error) {
	ti, ok := f.Tensor(name)
	if !ok {
		return 0, fmt.Errorf("tensor %s is missing", name)
	}
	s, ok := f.String(TypeKey(name))
	if !ok {
		if _, present := f.Get(TypeKey(name)); present {
			return 0, fmt.Errorf("tensor %s: metadata %s is not a string", name, TypeKey(name))
		}
		return ti.Type, nil
	}
	t, err := backend.ParseDType(s)
	if err != nil || !quant.IsRowFormat(t) {
		return 0, fmt.Errorf("tensor %s: metadata %s = %q is not a row format (W8, FP8_E4M3, TERNARY, BINARY)", name, TypeKey(name), s)
	}
	return t, nil
}

// IsScaleTensor reports whether name is the scale tensor of a row-format
// tensor of f (and so not a tensor in its own right).
func IsScaleTensor(f *gguf.File, name string) bool {
	return isCompanion(f, name, ScaleSuffix)
}

// IsCompanionTensor reports whether name is part of a row-format tensor
// of f rather than a tensor in its own right: its scale tensor or one of
// its outlier tensors.
func IsCompanionTensor(f *gguf.File, name string) bool {
	return isCompanion(f, name, ScaleSuffix) || isCompanion(f, name, OutlierColsSuffix) || isCompanion(f, name, OutlierWSuffix)
}

func isCompanion(f *gguf.File, name, suffix string) bool {
	base, ok := strings.CutSuffix(name, suffix)
	if !ok {
		return false
	}
	_, ok = f.Get(TypeKey(base))
	return ok
}

// WeightFromGGUF returns tensor name of f as a backend.Weight ready for
// Upload: GGUF types as stored (Rows = product of Dims[1:], Cols =
// Dims[0]), row formats with their type, shape, RowScales and, when set,
// ActScale. Data is a slice of f's mapping (no copy); RowScales are
// copied. Everything the kernels rely on is checked here, so that a
// corrupt or hand-edited file fails with an error naming the tensor.
func WeightFromGGUF(f *gguf.File, name string) (*backend.Weight, error) {
	t, err := TensorType(f, name)
	if err != nil {
		return nil, err
	}
	ti, _ := f.Tensor(name)
	data, err := f.TensorData(ti)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	act, err := actScale(f, name)
	if err != nil {
		return nil, err
	}
	if !quant.IsRowFormat(t) {
		if act != 0 {
			return nil, fmt.Errorf("tensor %s: %s is set but static activation scales apply to row formats only, not %v", name, ActScaleKey(name), t)
		}
		if err := noOutliers(f, name, t); err != nil {
			return nil, err
		}
		if len(ti.Dims) == 0 {
			return nil, fmt.Errorf("tensor %s has no dimensions", name)
		}
		w := &backend.Weight{Name: name, Type: t, Rows: int(ti.Rows()), Cols: int(ti.Dims[0]), Data: data}
		if err := w.Validate(); err != nil {
			return nil, err
		}
		return w, nil
	}

	if ti.Type != backend.I8 || len(ti.Dims) != 2 {
		return nil, fmt.Errorf("tensor %s: %v stored as %v %v, want I8 [row bytes, rows]", name, t, ti.Type, ti.Dims)
	}
	tr, _ := backend.TraitsOf(t)
	rb, rows := ti.Dims[0], ti.Dims[1]
	if rb == 0 || rows == 0 || rb > math.MaxInt32 || rows > math.MaxInt32 {
		return nil, fmt.Errorf("tensor %s: %v stored with shape %v", name, t, ti.Dims)
	}
	cols := int(rb) / tr.TypeSize * tr.BlockSize
	if cols > quant.MaxRowCols {
		return nil, fmt.Errorf("tensor %s: %v rows of %d elements, at most %d supported", name, t, cols, quant.MaxRowCols)
	}
	scales, err := loadScales(f, name, int(rows))
	if err != nil {
		return nil, err
	}
	w := &backend.Weight{Name: name, Type: t, Rows: int(rows), Cols: cols, Data: data, RowScales: scales, ActScale: act}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	if err := quant.CheckRowData(t, data, w.Rows, w.Cols); err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	if w.OutlierCols, w.OutlierW, err = loadOutliers(f, w); err != nil {
		return nil, err
	}
	return w, nil
}

func actScale(f *gguf.File, name string) (float32, error) {
	key := ActScaleKey(name)
	v, ok := f.Get(key)
	if !ok {
		return 0, nil
	}
	if v.Type != gguf.TypeFloat32 {
		return 0, fmt.Errorf("tensor %s: metadata %s is %v, want f32", name, key, v.Type)
	}
	x, _ := v.Float()
	s := float32(x)
	if err := quant.CheckActScale(s); err != nil {
		return 0, fmt.Errorf("tensor %s: metadata %s: %w", name, key, err)
	}
	return s, nil
}

func loadScales(f *gguf.File, name string, rows int) ([]float32, error) {
	sn := ScaleTensor(name)
	si, ok := f.Tensor(sn)
	if !ok {
		return nil, fmt.Errorf("tensor %s: its scale tensor %s is missing", name, sn)
	}
	if si.Type != backend.F32 || len(si.Dims) != 1 || si.Dims[0] != uint64(rows) {
		return nil, fmt.Errorf("tensor %s: scale tensor %s is %v %v, want F32 [%d]", name, sn, si.Type, si.Dims, rows)
	}
	sb, err := f.TensorData(si)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", sn, err)
	}
	scales := make([]float32, rows)
	for i := range scales {
		scales[i] = math.Float32frombits(binary.LittleEndian.Uint32(sb[4*i:]))
	}
	if err := checkScales(name, scales); err != nil {
		return nil, err
	}
	return scales, nil
}

// checkScales rejects non-finite row scales, which would turn every
// output of the row into NaN or infinity.
func checkScales(name string, scales []float32) error {
	for i, s := range scales {
		if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			return fmt.Errorf("tensor %s: row %d has scale %v", name, i, s)
		}
	}
	return nil
}

// Summary describes one tensor as qinfer sees it, for size and
// bits-per-weight reports: its logical type and shape ([cols, rows] for a
// row format) and the bytes it takes in the file, scale and outlier
// tensors included.
type Summary struct {
	Name  string
	Type  backend.DType
	Dims  []uint64
	Bytes uint64
	// SplitCols is the number of outlier columns of a split row-format
	// tensor.
	SplitCols int
}

// Elements is the number of weights.
func (s *Summary) Elements() uint64 {
	n := uint64(1)
	for _, d := range s.Dims {
		n *= d
	}
	return n
}

// Summarize lists f's tensors in file order, scale tensors folded into the
// tensors they belong to.
func Summarize(f *gguf.File) ([]Summary, error) {
	var out []Summary
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if IsCompanionTensor(f, ti.Name) {
			continue
		}
		size, err := ti.Bytes()
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", ti.Name, err)
		}
		t, err := TensorType(f, ti.Name)
		if err != nil {
			return nil, err
		}
		s := Summary{Name: ti.Name, Type: t, Dims: append([]uint64(nil), ti.Dims...), Bytes: size}
		if quant.IsRowFormat(t) {
			w, err := WeightFromGGUF(f, ti.Name)
			if err != nil {
				return nil, err
			}
			s.Dims = []uint64{uint64(w.Cols), uint64(w.Rows)}
			s.Bytes += 4 * uint64(w.Rows)
			if k := len(w.OutlierCols); k > 0 {
				s.SplitCols = k
				s.Bytes += 4*uint64(k) + 2*uint64(k)*uint64(w.Rows)
			}
		}
		out = append(out, s)
	}
	return out, nil
}
