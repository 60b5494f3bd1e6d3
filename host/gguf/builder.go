package gguf

import (
	"errors"
	"fmt"

	"qinfer/host/backend"
)

// Builder assembles a GGUF file: metadata in insertion order, then
// tensors in insertion order, laid out as llama.cpp lays them out (tensor
// infos, padding to the alignment, each tensor's data padded to the
// alignment). Tensor data is referenced, not copied, until written.
type Builder struct {
	version     uint32
	kvs         []KV
	kvIndex     map[string]int
	tensors     []builderTensor
	tensorIndex map[string]int
	// padEmpty pads the header to the alignment even without tensors
	// (ggml does, gguf-py does not; FromFile keeps the source's choice).
	padEmpty bool
}

type builderTensor struct {
	info TensorInfo
	data []byte
	// from is set for tensors copied by FromFile: their bytes are taken
	// from the source file at write time, so a closed source is an error
	// rather than a fault.
	from *File
	src  TensorInfo
}

// NewBuilder returns an empty GGUF v3 builder. The alignment is 32 unless
// general.alignment (a u32) is set.
func NewBuilder() *Builder {
	return &Builder{
		version:     3,
		kvIndex:     map[string]int{},
		tensorIndex: map[string]int{},
	}
}

// FromFile returns a builder holding all of f's metadata and tensors, in
// f's order, for edit-and-write. Tensor data is read from f when written,
// so f must stay open until then. Writing it unchanged reproduces a
// llama.cpp or gguf-py file byte for byte.
func FromFile(f *File) *Builder {
	b := NewBuilder()
	b.version = f.Version
	b.padEmpty = !f.unpadded
	for _, kv := range f.KVs {
		b.Set(kv.Key, kv.Value)
	}
	for _, t := range f.Tensors {
		info := t
		info.Dims = append([]uint64(nil), t.Dims...)
		b.tensorIndex[t.Name] = len(b.tensors)
		b.tensors = append(b.tensors, builderTensor{info: info, from: f, src: t})
	}
	return b
}

// SetVersion chooses the GGUF version written: 3 (the default) or 2,
// which share one layout.
func (b *Builder) SetVersion(v uint32) error {
	if v != 2 && v != 3 {
		return fmt.Errorf("gguf: cannot write version %d, only 2 and 3", v)
	}
	b.version = v
	return nil
}

// Set adds or replaces a metadata entry. A replaced entry keeps its
// position.
func (b *Builder) Set(key string, v Value) {
	if i, ok := b.kvIndex[key]; ok {
		b.kvs[i].Value = v
		return
	}
	b.kvIndex[key] = len(b.kvs)
	b.kvs = append(b.kvs, KV{Key: key, Value: v})
}

// Delete removes a metadata entry, if present.
func (b *Builder) Delete(key string) {
	i, ok := b.kvIndex[key]
	if !ok {
		return
	}
	b.kvs = append(b.kvs[:i], b.kvs[i+1:]...)
	delete(b.kvIndex, key)
	for j := i; j < len(b.kvs); j++ {
		b.kvIndex[b.kvs[j].Key] = j
	}
}

// Get returns a metadata value.
func (b *Builder) Get(key string) (Value, bool) {
	i, ok := b.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return b.kvs[i].Value, true
}

// KVs returns the metadata in the order it will be written.
func (b *Builder) KVs() []KV { return append([]KV(nil), b.kvs...) }

// AddTensor appends a tensor. data must hold exactly the tensor's bytes in
// GGUF layout; it is kept, not copied, until written, so do not change it
// before then.
func (b *Builder) AddTensor(name string, t backend.DType, dims []uint64, data []byte) error {
	if _, dup := b.tensorIndex[name]; dup {
		return fmt.Errorf("gguf: tensor %q already added", name)
	}
	bt, err := newBuilderTensor(name, t, dims, data)
	if err != nil {
		return err
	}
	b.tensorIndex[name] = len(b.tensors)
	b.tensors = append(b.tensors, bt)
	return nil
}

// ReplaceTensor changes an existing tensor's type, shape and data (a
// quantizer's edit), keeping its position.
func (b *Builder) ReplaceTensor(name string, t backend.DType, dims []uint64, data []byte) error {
	i, ok := b.tensorIndex[name]
	if !ok {
		return fmt.Errorf("gguf: no tensor %q to replace", name)
	}
	bt, err := newBuilderTensor(name, t, dims, data)
	if err != nil {
		return err
	}
	b.tensors[i] = bt
	return nil
}

// DeleteTensor removes a tensor and reports whether it was there.
func (b *Builder) DeleteTensor(name string) bool {
	i, ok := b.tensorIndex[name]
	if !ok {
		return false
	}
	b.tensors = append(b.tensors[:i], b.tensors[i+1:]...)
	delete(b.tensorIndex, name)
	for j := i; j < len(b.tensors); j++ {
		b.tensorIndex[b.tensors[j].info.Name] = j
	}
	return true
}

// Tensors returns the tensor infos in write order, with the data offsets
// they will be written at.
func (b *Builder) Tensors() ([]TensorInfo, error) {
	align, err := b.alignment()
	if err != nil {
		return nil, err
	}
	out := make([]TensorInfo, len(b.tensors))
	var off uint64
	for i, t := range b.tensors {
		out[i] = t.info
		out[i].Dims = append([]uint64(nil), t.info.Dims...)
		out[i].Offset = off
		size, _ := t.info.Bytes() // validated when added
		off = alignUp(off+size, align)
	}
	return out, nil
}

func newBuilderTensor(name string, t backend.DType, dims []uint64, data []byte) (builderTensor, error) {
	if name == "" {
		return builderTensor{}, errors.New("gguf: tensor name is empty")
	}
	if len(name) > MaxTensorName {
		return builderTensor{}, fmt.Errorf("gguf: tensor name %q is %d bytes, llama.cpp allows at most %d", name, len(name), MaxTensorName)
	}
	if len(dims) == 0 || len(dims) > MaxDims {
		return builderTensor{}, fmt.Errorf("gguf: tensor %q has %d dimensions, want 1 to %d", name, len(dims), MaxDims)
	}
	info := TensorInfo{Name: name, Dims: append([]uint64(nil), dims...), Type: t}
	size, err := info.Bytes()
	if err != nil {
		return builderTensor{}, fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	if uint64(len(data)) != size {
		return builderTensor{}, fmt.Errorf("gguf: tensor %q: %v %v needs %d bytes, got %d", name, t, dims, size, len(data))
	}
	return builderTensor{info: info, data: data}, nil
}
