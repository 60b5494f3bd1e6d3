package gguf

import (
	"errors"
	"fmt"
)

// ErrClosed is returned for tensor data requested after Close.
var ErrClosed = errors.New("gguf: file is closed")

// KV is one metadata entry, in file order.
type KV struct {
	Key   string
	Value Value
}

// File is a parsed GGUF file. Metadata and tensor infos live on the Go
// heap; tensor data stays in the mapped (or given) bytes and is handed out
// as zero-copy slices by TensorData. A File is not changed after parsing,
// so concurrent readers are safe; Close must wait for them.
type File struct {
	Version   uint32
	KVs       []KV
	Tensors   []TensorInfo
	Alignment uint64
	// DataOffset is where the data section starts: the end of the tensor
	// infos rounded up to Alignment. Tensor offsets are relative to it.
	DataOffset uint64

	data        []byte // whole file
	unmap       func([]byte) error
	closed      bool
	unpadded    bool // no tensors and no padding after the tensor infos
	kvIndex     map[string]int
	tensorIndex map[string]int
}

// Open maps the file at path read-only and parses it. The weights are not
// read until used and never copied into the Go heap (except on platforms
// without mmap, where the file is read into memory). Close unmaps it.
func Open(path string) (*File, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: open %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		if unmap != nil {
			_ = unmap(data)
		}
		var fe *FormatError
		if errors.As(err, &fe) {
			fe.Path = path
			return nil, fe
		}
		return nil, fmt.Errorf("gguf: %s: %w", path, err)
	}
	f.unmap = unmap
	return f, nil
}

// Close releases the mapping. Slices returned by TensorData must not be
// used afterwards (on Unix they would fault). Closing twice is harmless.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	data := f.data
	f.data = nil
	if f.unmap != nil {
		if err := f.unmap(data); err != nil {
			return fmt.Errorf("gguf: unmap: %w", err)
		}
	}
	return nil
}

// Size returns the length of the underlying file in bytes.
func (f *File) Size() int64 { return int64(len(f.data)) }

// Get returns the value of a metadata key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return f.KVs[i].Value, true
}

// String returns a string metadata value.
func (f *File) String(key string) (string, bool) {
	return lookup(f, key, Value.String)
}

// Uint returns an integer metadata value of any type that is not negative.
func (f *File) Uint(key string) (uint64, bool) {
	return lookup(f, key, Value.Uint)
}

// Int returns an integer metadata value of any type that fits in int64.
func (f *File) Int(key string) (int64, bool) {
	return lookup(f, key, Value.Int)
}

// Float returns an f32 or f64 metadata value.
func (f *File) Float(key string) (float64, bool) {
	return lookup(f, key, Value.Float)
}

// Bool returns a bool metadata value.
func (f *File) Bool(key string) (bool, bool) {
	return lookup(f, key, Value.Bool)
}

// Strings returns a string array metadata value.
func (f *File) Strings(key string) ([]string, bool) {
	return lookup(f, key, Value.Strings)
}

// Float32s returns a float array metadata value.
func (f *File) Float32s(key string) ([]float32, bool) {
	return lookup(f, key, Value.Float32s)
}

// Int32s returns an integer array metadata value as int32s.
func (f *File) Int32s(key string) ([]int32, bool) {
	return lookup(f, key, Value.Int32s)
}

// Architecture returns general.architecture, or "" when it is missing.
func (f *File) Architecture() string {
	s, _ := f.String(KeyArchitecture)
	return s
}

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.tensorIndex[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// TensorData returns the bytes of a tensor as a slice of the mapped file
// (no copy; do not write to it). t must describe a tensor inside f; its
// bounds are checked again so that an edited TensorInfo cannot reach
// outside the data section.
func (f *File) TensorData(t *TensorInfo) ([]byte, error) {
	if f.closed {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, ErrClosed)
	}
	size, err := t.Bytes()
	if err != nil {
		return nil, fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
	}
	if f.DataOffset > uint64(len(f.data)) {
		if size == 0 {
			return []byte{}, nil
		}
		return nil, fmt.Errorf("gguf: tensor %q: file has no data section", t.Name)
	}
	dataLen := uint64(len(f.data)) - f.DataOffset
	if t.Offset > dataLen || size > dataLen-t.Offset {
		return nil, fmt.Errorf("gguf: tensor %q: data [%d, %d) outside the %d-byte data section", t.Name, t.Offset, satAdd(t.Offset, size), dataLen)
	}
	start := f.DataOffset + t.Offset
	return f.data[start : start+size : start+size], nil
}

// lookup applies an accessor to key's value; a missing key is (zero, false)
// whatever the accessor makes of an empty Value.
func lookup[T any](f *File, key string, get func(Value) (T, bool)) (T, bool) {
	v, ok := f.Get(key)
	if !ok {
		var zero T
		return zero, false
	}
	return get(v)
}
