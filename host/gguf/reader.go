package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"

	"qinfer/host/backend"
)

// Format constants.
const (
	Magic            = "GGUF"
	DefaultAlignment = 32
	// MaxAlignment bounds general.alignment: llama.cpp only asks for a
	// power of two, but a huge one would make every tensor mostly padding.
	MaxAlignment = 1 << 30
	// KeyAlignment is the metadata key that sets the data alignment.
	KeyAlignment = "general.alignment"
	// KeyArchitecture names the model architecture.
	KeyArchitecture = "general.architecture"

	// maxNesting bounds array-of-array depth: each level costs only 12
	// bytes of file, and unbounded recursion would exhaust the stack.
	maxNesting = 16

	// Smallest encodings, used to bound counts by the bytes left before
	// allocating anything for them: a KV is a non-empty key (8-byte
	// length + 1), a type (4) and at least a 1-byte value; a tensor info
	// is a name length (8), n_dims (4), type (4) and offset (8).
	minKVBytes     = 8 + 1 + 4 + 1
	minTensorBytes = 8 + 4 + 4 + 8
	minArrayBytes  = 4 + 8

	// maxPrealloc caps capacity reserved from a count in the file.
	maxPrealloc = 1024
)

// FormatError reports malformed or unsupported GGUF content.
type FormatError struct {
	Path string // the file, when it came from Open
	// Offset is the byte offset in the file where the problem was found,
	// or -1 when the problem is not at one place (a bad key's value).
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string {
	s := "gguf: "
	if e.Path != "" {
		s += e.Path + ": "
	}
	if e.Offset >= 0 {
		s += fmt.Sprintf("at byte %d: ", e.Offset)
	}
	return s + e.Msg
}

// decoder reads little-endian fields from a byte slice, failing with a
// FormatError (never a panic) when the data runs out.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) errf(format string, args ...any) error {
	return &FormatError{Offset: int64(d.off), Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) left() int { return len(d.b) - d.off }

func (d *decoder) take(n uint64, what string) ([]byte, error) {
	if n > uint64(d.left()) {
		return nil, d.errf("truncated: %s needs %d bytes, %d left", what, n, d.left())
	}
	p := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return p, nil
}

func (d *decoder) u32(what string) (uint32, error) {
	p, err := d.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p), nil
}

func (d *decoder) u64(what string) (uint64, error) {
	p, err := d.take(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(p), nil
}

// str reads a length-prefixed string, copying it off the mapping.
func (d *decoder) str(what string) (string, error) {
	start := d.off
	n, err := d.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(d.left()) {
		d.off = start
		return "", d.errf("%s length %d exceeds the %d bytes left in the file", what, n, d.left()-8)
	}
	p, _ := d.take(n, what)
	return string(p), nil
}

// Parse decodes a GGUF file held in data. The File refers to data for
// tensor contents (TensorData slices it), so data must stay unchanged
// while the File is used; metadata is copied.
func Parse(data []byte) (*File, error) {
	d := &decoder{b: data}
	f := &File{data: data}
	if err := f.parseHeader(d); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) parseHeader(d *decoder) error {
	if len(d.b) < 4 {
		return d.errf("file is %d bytes, too short for the GGUF magic", len(d.b))
	}
	magic := string(d.b[:4])
	switch magic {
	case Magic:
	case "FUGG":
		return d.errf("big-endian GGUF files are not supported")
	default:
		return d.errf("not a GGUF file: magic %q, want %q", magic, Magic)
	}
	d.off = 4
	version, err := d.u32("version")
	if err != nil {
		return err
	}
	switch {
	case version == 0:
		return d.errf("invalid GGUF version 0")
	case version&0xFFFF == 0:
		// A small version read with the wrong byte order.
		return d.errf("GGUF version %#x looks byte-swapped: big-endian GGUF files are not supported", version)
	case version == 1:
		return d.errf("GGUF version 1 is not supported (only 2 and 3): convert the model again with a current llama.cpp")
	case version > 3:
		return d.errf("GGUF version %d is newer than the supported versions 2 and 3", version)
	}
	f.Version = version

	nTensors, err := d.u64("tensor count")
	if err != nil {
		return err
	}
	nKV, err := d.u64("metadata count")
	if err != nil {
		return err
	}
	left := uint64(d.left())
	if nKV > left/minKVBytes {
		return d.errf("metadata count %d is impossible: %d bytes hold at most %d key-value pairs", nKV, left, left/minKVBytes)
	}
	if nTensors > left/minTensorBytes || nKV*minKVBytes+nTensors*minTensorBytes > left {
		return d.errf("tensor count %d with %d key-value pairs is impossible in the %d bytes left", nTensors, nKV, left)
	}

	// Counts only bound what the bytes could hold; capacity beyond a
	// modest start grows with entries actually decoded, so a file that
	// lies about its counts cannot make us allocate for them.
	f.KVs = make([]KV, 0, min(nKV, maxPrealloc))
	f.kvIndex = make(map[string]int, min(nKV, maxPrealloc))
	for i := uint64(0); i < nKV; i++ {
		if err := f.parseKV(d, i); err != nil {
			return err
		}
	}
	if err := f.parseAlignment(); err != nil {
		return err
	}

	f.Tensors = make([]TensorInfo, 0, min(nTensors, maxPrealloc))
	f.tensorIndex = make(map[string]int, min(nTensors, maxPrealloc))
	for i := uint64(0); i < nTensors; i++ {
		if err := f.parseTensorInfo(d, i); err != nil {
			return err
		}
	}

	end := uint64(d.off)
	f.DataOffset = alignUp(end, f.Alignment)
	if f.DataOffset > uint64(len(d.b)) {
		if len(f.Tensors) > 0 {
			return d.errf("truncated: the data section starts at byte %d, past the end of the %d-byte file", f.DataOffset, len(d.b))
		}
		// Writers differ on files without tensors: gguf-py ends the file
		// after the tensor infos, ggml pads it. Remember which, so that a
		// rewrite is byte-identical.
		f.unpadded = true
	}
	return f.checkTensorData()
}

func (f *File) parseKV(d *decoder, i uint64) error {
	start := d.off
	key, err := d.str(fmt.Sprintf("key of metadata entry %d", i))
	if err != nil {
		return err
	}
	if key == "" {
		d.off = start
		return d.errf("metadata entry %d has an empty key", i)
	}
	if _, dup := f.kvIndex[key]; dup {
		d.off = start
		return d.errf("duplicate metadata key %q", key)
	}
	t, err := d.u32(fmt.Sprintf("type of %q", key))
	if err != nil {
		return err
	}
	v, err := d.value(ValueType(t), key, 0)
	if err != nil {
		return err
	}
	f.kvIndex[key] = len(f.KVs)
	f.KVs = append(f.KVs, KV{Key: key, Value: v})
	return nil
}

// value decodes a value of type t; key and depth are for errors and the
// nesting limit.
func (d *decoder) value(t ValueType, key string, depth int) (Value, error) {
	if t == TypeArray {
		return d.array(key, depth)
	}
	if t == TypeString {
		s, err := d.str(fmt.Sprintf("string value of %q", key))
		return Value{Type: TypeString, str: s}, err
	}
	sz := t.size()
	if sz == 0 {
		return Value{}, d.errf("key %q has unknown value type %d", key, uint32(t))
	}
	p, err := d.take(uint64(sz), fmt.Sprintf("%v value of %q", t, key))
	if err != nil {
		return Value{}, err
	}
	return Value{Type: t, bits: loadLE(p)}, nil
}

func (d *decoder) array(key string, depth int) (Value, error) {
	if depth >= maxNesting {
		return Value{}, d.errf("key %q: arrays nested more than %d deep", key, maxNesting)
	}
	et32, err := d.u32(fmt.Sprintf("array element type of %q", key))
	if err != nil {
		return Value{}, err
	}
	et := ValueType(et32)
	if !et.Valid() {
		return Value{}, d.errf("key %q: array of unknown value type %d", key, et32)
	}
	n, err := d.u64(fmt.Sprintf("array length of %q", key))
	if err != nil {
		return Value{}, err
	}
	minSize := uint64(et.size())
	switch et {
	case TypeString:
		minSize = 8
	case TypeArray:
		minSize = minArrayBytes
	}
	if left := uint64(d.left()); n > left/minSize {
		return Value{}, d.errf("key %q: array of %d %v elements cannot fit in the %d bytes left", key, n, et, left)
	}
	v := Value{Type: TypeArray, ElemType: et}
	switch et {
	case TypeString:
		v.strs, err = d.strArray(key, n)
	case TypeArray:
		v.arrs = make([]Value, 0, min(n, maxPrealloc))
		for i := uint64(0); i < n; i++ {
			var e Value
			if e, err = d.array(key, depth+1); err != nil {
				break
			}
			v.arrs = append(v.arrs, e)
		}
	default:
		var p []byte
		p, err = d.take(n*minSize, fmt.Sprintf("array %q", key))
		v.raw = append([]byte(nil), p...)
	}
	return v, err
}

// strArray decodes n strings with two allocations: one string holding
// the whole encoded region, which the elements share, and the slice.
func (d *decoder) strArray(key string, n uint64) ([]string, error) {
	start := d.off
	for i := uint64(0); i < n; i++ {
		l, err := d.u64(fmt.Sprintf("length of string %d of %q", i, key))
		if err != nil {
			return nil, err
		}
		if l > uint64(d.left()) {
			d.off -= 8
			return nil, d.errf("key %q: string %d length %d exceeds the %d bytes left", key, i, l, d.left()-8)
		}
		d.off += int(l)
	}
	enc := d.b[start:d.off]
	blob := string(enc)
	out := make([]string, n)
	off := 0
	for i := range out {
		l := int(binary.LittleEndian.Uint64(enc[off:]))
		out[i] = blob[off+8 : off+8+l]
		off += 8 + l
	}
	return out, nil
}

func (f *File) parseAlignment() error {
	f.Alignment = DefaultAlignment
	v, ok := f.Get(KeyAlignment)
	if !ok {
		return nil
	}
	// llama.cpp rejects any other type; so do we, so that what we read
	// and what we write agree.
	if v.Type != TypeUint32 {
		return &FormatError{Offset: -1, Msg: fmt.Sprintf("%s is a %v (%s), want a u32", KeyAlignment, v.Type, v.Summary(4))}
	}
	a, _ := v.Uint()
	if a == 0 || a&(a-1) != 0 || a > MaxAlignment {
		return &FormatError{Offset: -1, Msg: fmt.Sprintf("%s is %d, want a power of two up to %d", KeyAlignment, a, MaxAlignment)}
	}
	f.Alignment = a
	return nil
}

func (f *File) parseTensorInfo(d *decoder, i uint64) error {
	start := d.off
	name, err := d.str(fmt.Sprintf("name of tensor %d", i))
	if err != nil {
		return err
	}
	if _, dup := f.tensorIndex[name]; dup {
		d.off = start
		return d.errf("duplicate tensor name %q", name)
	}
	nDims, err := d.u32(fmt.Sprintf("dimension count of tensor %q", name))
	if err != nil {
		return err
	}
	if nDims > MaxDims {
		return d.errf("tensor %q has %d dimensions, at most %d allowed", name, nDims, MaxDims)
	}
	dims := make([]uint64, nDims)
	for j := range dims {
		if dims[j], err = d.u64(fmt.Sprintf("dimension %d of tensor %q", j, name)); err != nil {
			return err
		}
	}
	typ, err := d.u32(fmt.Sprintf("type of tensor %q", name))
	if err != nil {
		return err
	}
	ti := TensorInfo{Name: name, Dims: dims, Type: backend.DType(typ)}
	if _, err := ti.Bytes(); err != nil {
		return d.errf("tensor %q: %v", name, err)
	}
	if ti.Offset, err = d.u64(fmt.Sprintf("data offset of tensor %q", name)); err != nil {
		return err
	}
	if ti.Offset%f.Alignment != 0 {
		return d.errf("tensor %q: data offset %d is not a multiple of the alignment %d", name, ti.Offset, f.Alignment)
	}
	f.tensorIndex[name] = len(f.Tensors)
	f.Tensors = append(f.Tensors, ti)
	return nil
}

// checkTensorData verifies that every tensor lies inside the file and
// that no two overlap. Gaps are allowed: llama.cpp writes tensors
// back to back, but nothing in the format requires it.
func (f *File) checkTensorData() error {
	if len(f.Tensors) == 0 {
		return nil
	}
	dataLen := uint64(len(f.data)) - f.DataOffset
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return f.Tensors[order[a]].Offset < f.Tensors[order[b]].Offset })
	var prevEnd uint64
	prev := -1
	for _, i := range order {
		t := &f.Tensors[i]
		size, _ := t.Bytes() // checked in parseTensorInfo
		if t.Offset > dataLen || size > dataLen-t.Offset {
			return &FormatError{Offset: int64(f.DataOffset), Msg: fmt.Sprintf(
				"tensor %q: data [%d, %d) of the data section runs past its end at %d (file truncated?)",
				t.Name, t.Offset, satAdd(t.Offset, size), dataLen)}
		}
		if size == 0 {
			continue // an empty tensor overlaps nothing
		}
		if prev >= 0 && t.Offset < prevEnd {
			return &FormatError{Offset: int64(f.DataOffset), Msg: fmt.Sprintf(
				"tensor %q: data [%d, %d) overlaps tensor %q ending at %d",
				t.Name, t.Offset, t.Offset+size, f.Tensors[prev].Name, prevEnd)}
		}
		prev, prevEnd = i, t.Offset+size
	}
	return nil
}

func alignUp(x, a uint64) uint64 {
	if r := x % a; r != 0 {
		return satAdd(x, a-r)
	}
	return x
}

func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}
