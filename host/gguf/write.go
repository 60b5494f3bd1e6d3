package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// alignment returns the data alignment, checking general.alignment the
// way llama.cpp does (a u32 power of two).
func (b *Builder) alignment() (uint64, error) {
	v, ok := b.Get(KeyAlignment)
	if !ok {
		return DefaultAlignment, nil
	}
	if v.Type != TypeUint32 {
		return 0, fmt.Errorf("gguf: %s must be a u32, is %v", KeyAlignment, v.Type)
	}
	a, _ := v.Uint()
	if a == 0 || a&(a-1) != 0 || a > MaxAlignment {
		return 0, fmt.Errorf("gguf: %s is %d, want a power of two up to %d", KeyAlignment, a, MaxAlignment)
	}
	return a, nil
}

// validate checks everything that can fail before a byte is written, so
// that a bad builder never leaves a partial file.
func (b *Builder) validate() error {
	if _, err := b.alignment(); err != nil {
		return err
	}
	for _, kv := range b.kvs {
		if kv.Key == "" {
			return errors.New("gguf: empty metadata key")
		}
		if err := checkValue(kv.Value, 0); err != nil {
			return fmt.Errorf("gguf: key %q: %w", kv.Key, err)
		}
	}
	for _, t := range b.tensors {
		if t.from != nil && t.from.closed {
			return fmt.Errorf("gguf: tensor %q: source %w", t.info.Name, ErrClosed)
		}
	}
	return nil
}

func checkValue(v Value, depth int) error {
	if v.Type != TypeArray {
		if !v.Type.Valid() {
			return fmt.Errorf("invalid value type %d", uint32(v.Type))
		}
		return nil
	}
	if depth >= maxNesting {
		return fmt.Errorf("arrays nested more than %d deep", maxNesting)
	}
	if !v.ElemType.Valid() {
		return fmt.Errorf("array of invalid value type %d", uint32(v.ElemType))
	}
	if sz := v.ElemType.size(); sz > 0 && len(v.raw)%sz != 0 {
		return fmt.Errorf("%v array holds %d bytes", v.ElemType, len(v.raw))
	}
	for i, e := range v.arrs {
		if e.Type != TypeArray {
			return fmt.Errorf("element %d of a nested array is a %v", i, e.Type)
		}
		if err := checkValue(e, depth+1); err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
	}
	return nil
}

// WriteTo writes the file to w. Nothing is written when the builder is
// invalid; an error after that comes from w or from a closed source file.
func (b *Builder) WriteTo(w io.Writer) (int64, error) {
	if err := b.validate(); err != nil {
		return 0, err
	}
	infos, err := b.Tensors()
	if err != nil {
		return 0, err
	}
	align, _ := b.alignment()

	// The header (metadata and tensor infos, at most a few MB even for
	// large vocabularies) is assembled in memory and written at once;
	// tensor data goes straight from its source to w.
	e := &encoder{}
	e.bytes([]byte(Magic))
	e.u32(b.version)
	e.u64(uint64(len(b.tensors)))
	e.u64(uint64(len(b.kvs)))
	for _, kv := range b.kvs {
		e.str(kv.Key)
		e.u32(uint32(kv.Value.Type))
		e.value(kv.Value)
	}
	for _, t := range infos {
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(t.Offset)
	}
	if len(b.tensors) > 0 || b.padEmpty {
		e.pad(align)
	}

	cw := &countWriter{w: w}
	if _, err := cw.Write(e.buf); err != nil {
		return cw.n, err
	}
	for _, t := range b.tensors {
		data := t.data
		if t.from != nil {
			if data, err = t.from.TensorData(&t.src); err != nil {
				return cw.n, err
			}
		}
		if _, err := cw.Write(data); err != nil {
			return cw.n, err
		}
		pad := alignUp(uint64(len(data)), align) - uint64(len(data))
		for pad > 0 {
			k := min(pad, uint64(len(zeros)))
			if _, err := cw.Write(zeros[:k]); err != nil {
				return cw.n, err
			}
			pad -= k
		}
	}
	return cw.n, nil
}

// WriteFile writes the file atomically: into a temporary file in the same
// folder, synced, then renamed over path, so that path never holds a
// partial file.
func (b *Builder) WriteFile(path string) (err error) {
	if err := b.validate(); err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
			err = fmt.Errorf("gguf: write %s: %w", path, err)
		}
	}()
	if _, err = b.WriteTo(tmp); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename itself durable; not every platform can sync a
	// folder, so failure here is not an error.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// encoder appends little-endian fields to an in-memory header.
type encoder struct {
	buf []byte
}

func (e *encoder) bytes(p []byte) { e.buf = append(e.buf, p...) }
func (e *encoder) u32(x uint32)   { e.buf = binary.LittleEndian.AppendUint32(e.buf, x) }
func (e *encoder) u64(x uint64)   { e.buf = binary.LittleEndian.AppendUint64(e.buf, x) }

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

var zeros [4096]byte

func (e *encoder) pad(align uint64) {
	for n := alignUp(uint64(len(e.buf)), align) - uint64(len(e.buf)); n > 0; {
		k := min(n, uint64(len(zeros)))
		e.buf = append(e.buf, zeros[:k]...)
		n -= k
	}
}

// value writes a value's payload (its type tag is written by the caller).
func (e *encoder) value(v Value) {
	switch v.Type {
	case TypeString:
		e.str(v.str)
	case TypeArray:
		e.u32(uint32(v.ElemType))
		e.u64(uint64(v.Len()))
		switch v.ElemType {
		case TypeString:
			for _, s := range v.strs {
				e.str(s)
			}
		case TypeArray:
			for _, a := range v.arrs {
				e.value(a)
			}
		default:
			e.bytes(v.raw)
		}
	default:
		var tmp [8]byte
		storeLE(tmp[:v.Type.size()], v.bits)
		e.bytes(tmp[:v.Type.size()])
	}
}
