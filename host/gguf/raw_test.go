package gguf

import (
	"bytes"
	"encoding/binary"
	"math"
)

// raw builds GGUF bytes field by field for tests, independently of
// Builder, so that reader and writer are each checked against it.
type raw struct{ bytes.Buffer }

func (r *raw) u8(x uint8)   { r.WriteByte(x) }
func (r *raw) u16(x uint16) { _ = binary.Write(r, binary.LittleEndian, x) }
func (r *raw) u32(x uint32) { _ = binary.Write(r, binary.LittleEndian, x) }
func (r *raw) u64(x uint64) { _ = binary.Write(r, binary.LittleEndian, x) }
func (r *raw) f32(x float32) {
	r.u32(math.Float32bits(x))
}
func (r *raw) str(s string) { r.u64(uint64(len(s))); r.WriteString(s) }

// header writes magic, version and counts.
func (r *raw) header(version uint32, nTensors, nKV uint64) *raw {
	r.WriteString("GGUF")
	r.u32(version)
	r.u64(nTensors)
	r.u64(nKV)
	return r
}

func (r *raw) kvU32(key string, x uint32) { r.str(key); r.u32(uint32(TypeUint32)); r.u32(x) }
func (r *raw) kvStr(key, s string)        { r.str(key); r.u32(uint32(TypeString)); r.str(s) }

// tensor writes one tensor info.
func (r *raw) tensor(name string, typ uint32, offset uint64, dims ...uint64) {
	r.str(name)
	r.u32(uint32(len(dims)))
	for _, d := range dims {
		r.u64(d)
	}
	r.u32(typ)
	r.u64(offset)
}

// padTo appends zeros up to a multiple of a.
func (r *raw) padTo(a int) {
	for r.Len()%a != 0 {
		r.WriteByte(0)
	}
}
