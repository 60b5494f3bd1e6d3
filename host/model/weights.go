package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/qformat"
)

// uploader moves GGUF tensors to a backend and remembers everything it
// allocated, so that a failed load or Close frees all of it.
type uploader struct {
	f  *gguf.File
	be backend.Backend
	// fuseByCopy allows fusing tensors that are not adjacent in the file
	// by concatenating them on the host first. That is free on a device
	// backend (Upload copies anyway) but on a host-memory backend it would
	// duplicate mmap'd weights on the Go heap, so there only adjacent
	// tensors are fused.
	fuseByCopy bool
	owned      []any
}

func newUploader(f *gguf.File, be backend.Backend) *uploader {
	return &uploader{f: f, be: be, fuseByCopy: be.Info().Memory > 0}
}

// own records a backend object for freeing.
func (u *uploader) own(t any) { u.owned = append(u.owned, t) }

// free releases everything owned, newest first, and returns the first
// error.
func (u *uploader) free() error {
	var errs []error
	for i := len(u.owned) - 1; i >= 0; i-- {
		if err := u.be.Free(u.owned[i]); err != nil {
			errs = append(errs, err)
		}
	}
	u.owned = nil
	return errors.Join(errs...)
}

// info finds a tensor and checks its shape: rows == 0 means a 1-D tensor
// of cols elements.
func (u *uploader) info(name string, cols, rows int) (*gguf.TensorInfo, error) {
	ti, ok := u.f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("tensor %s is missing", name)
	}
	want := []uint64{uint64(cols)}
	if rows > 0 {
		want = append(want, uint64(rows))
	}
	if !sameDims(ti.Dims, want) {
		return nil, fmt.Errorf("tensor %s has shape %v, want %v", name, ti.Dims, want)
	}
	return ti, nil
}

func sameDims(have, want []uint64) bool {
	if len(have) != len(want) {
		return false
	}
	for i := range have {
		if have[i] != want[i] {
			return false
		}
	}
	return true
}

// matrix uploads a [rows][cols] weight as it is stored in the file.
func (u *uploader) matrix(name string, rows, cols int) (backend.Tensor, error) {
	w, err := u.weight(name, rows, cols)
	if err != nil {
		return nil, err
	}
	return u.upload(w)
}

// weight reads a [rows][cols] weight of any type: GGUF's own, or one of
// qinfer's row formats (stored as I8 rows plus scales and metadata,
// docs/formats.md), which qformat.WeightFromGGUF decodes.
func (u *uploader) weight(name string, rows, cols int) (*backend.Weight, error) {
	w, err := qformat.WeightFromGGUF(u.f, name)
	if err != nil {
		return nil, err
	}
	if w.Rows != rows || w.Cols != cols {
		return nil, fmt.Errorf("tensor %s has shape %dx%d, want %dx%d", name, w.Rows, w.Cols, rows, cols)
	}
	if w.RowScales == nil {
		// GGUF types: the stored dimensions must be exactly [cols, rows].
		if _, err := u.info(name, cols, rows); err != nil {
			return nil, err
		}
	}
	return w, nil
}

func (u *uploader) upload(w *backend.Weight) (backend.Tensor, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	t, err := u.be.Upload(w)
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", w.Name, err)
	}
	u.own(t)
	return t, nil
}

// norm uploads a 1-D F32 weight (RMSNorm gains) as a one-row weight.
func (u *uploader) norm(name string, dim int) (backend.Tensor, error) {
	ti, err := u.info(name, dim, 0)
	if err != nil {
		return nil, err
	}
	if ti.Type != backend.F32 {
		return nil, fmt.Errorf("tensor %s is %v, want F32", name, ti.Type)
	}
	data, err := u.f.TensorData(ti)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	return u.upload(&backend.Weight{Name: name, Type: backend.F32, Rows: 1, Cols: dim, Data: data})
}

// bias reads 1-D F32 tensors and places them side by side in one
// [1][sum] activation, which Add broadcasts over a fused projection.
// Biases are activations rather than weights because Add is defined on
// F32 activations on every backend.
func (u *uploader) bias(names []string, sizes []int) (backend.Tensor, error) {
	total := 0
	for _, s := range sizes {
		total += s
	}
	vals := make([]float32, 0, total)
	for i, name := range names {
		ti, err := u.info(name, sizes[i], 0)
		if err != nil {
			return nil, err
		}
		if ti.Type != backend.F32 {
			return nil, fmt.Errorf("tensor %s is %v, want F32", name, ti.Type)
		}
		data, err := u.f.TensorData(ti)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		vals = append(vals, bytesToF32(data)...)
	}
	t, err := u.be.NewActivation(fmt.Sprintf("%s..bias", names[0]), 1, total)
	if err != nil {
		return nil, fmt.Errorf("bias %s: %w", names[0], err)
	}
	u.own(t)
	if err := u.be.Write(t, vals); err != nil {
		return nil, fmt.Errorf("bias %s: %w", names[0], err)
	}
	return t, nil
}

// bytesToF32 decodes little-endian float32 data (GGUF is little-endian).
func bytesToF32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// linear is one or more projections of the same input whose outputs lie
// side by side in one activation (Q|K|V, gate|up). When the parts share a
// type they are uploaded as one weight with their rows concatenated (GGUF
// rows are independent, so concatenation is exact) and run as one MatMul.
type linear struct {
	fused backend.Tensor
	parts []backend.Tensor
}

// forward computes x through the projection into whole, or, when not
// fused, each part into its view of whole.
func (l *linear) forward(be backend.Backend, x, whole backend.Tensor, views ...backend.Tensor) error {
	if l.fused != nil {
		return be.MatMul(whole, l.fused, x)
	}
	for i, w := range l.parts {
		if err := be.MatMul(views[i], w, x); err != nil {
			return err
		}
	}
	return nil
}

// linear loads the named [rows[i]][cols] weights as one projection.
// Parts of one type (and, for row formats, one static activation scale,
// which parts sharing an input have anyway) are fused: their rows and row
// scales concatenated.
func (u *uploader) linear(names []string, rows []int, cols int) (*linear, error) {
	ws := make([]*backend.Weight, len(names))
	datas := make([][]byte, len(names))
	fusable := true
	for i, name := range names {
		w, err := u.weight(name, rows[i], cols)
		if err != nil {
			return nil, err
		}
		ws[i], datas[i] = w, w.Data
		// Parts split LLM.int8()-style fuse only with the same outlier
		// columns (parts sharing an input get the same ones).
		fusable = fusable && w.Type == ws[0].Type && w.ActScale == ws[0].ActScale && slices.Equal(w.OutlierCols, ws[0].OutlierCols)
	}
	if fusable && len(names) > 1 {
		if data, ok := u.concat(datas); ok {
			total := 0
			var scales []float32
			var ow []uint16
			for i, r := range rows {
				total += r
				scales = append(scales, ws[i].RowScales...)
				ow = append(ow, ws[i].OutlierW...)
			}
			name := names[0]
			for _, n := range names[1:] {
				name += "+" + n
			}
			t, err := u.upload(&backend.Weight{Name: name, Type: ws[0].Type, Rows: total, Cols: cols, Data: data,
				RowScales: scales, ActScale: ws[0].ActScale, OutlierCols: ws[0].OutlierCols, OutlierW: ow})
			if err != nil {
				return nil, err
			}
			return &linear{fused: t}, nil
		}
	}
	l := &linear{}
	for _, w := range ws {
		t, err := u.upload(w)
		if err != nil {
			return nil, err
		}
		l.parts = append(l.parts, t)
	}
	return l, nil
}

// concat returns the parts as one slice: without copying when they are
// adjacent in the mapped file, by copying when the backend copies anyway.
func (u *uploader) concat(parts [][]byte) ([]byte, bool) {
	total := 0
	adjacent := true
	for i, p := range parts {
		if len(p) == 0 {
			return nil, false
		}
		if i > 0 {
			prev := parts[i-1]
			end := unsafe.Add(unsafe.Pointer(unsafe.SliceData(prev)), len(prev))
			adjacent = adjacent && end == unsafe.Pointer(unsafe.SliceData(p))
		}
		total += len(p)
	}
	if adjacent {
		// The parts are consecutive bytes of one mapping, so one slice
		// over them is valid memory.
		return unsafe.Slice(unsafe.SliceData(parts[0]), total), true
	}
	if !u.fuseByCopy {
		return nil, false
	}
	out := make([]byte, 0, total)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, true
}
