package cuda

import (
	"encoding/binary"
	"fmt"
	"math"

	"qinfer/host/backend"
)

// The device layout of weights (DESIGN.md decision 7). GGUF's blocks put
// a 2-byte scale before the quants, so a Q8_0 block's quants are only
// 2-byte aligned; at upload each weight is split into parts, one array per
// kind of field, each [rows][part row bytes], 256-byte aligned in one
// allocation, in the order the kernels read them. Rows of the formats with
// 32-element blocks (and F16, F32, W8) are zero-padded to kpad elements,
// so that the matrix kernels work on whole 64-element stages.
//
// Within a 32-element group, packed 4-bit values use Q4_0's nibble order:
// byte b holds element b in its low nibble and element b+16 in its high
// nibble, so a 4-byte word w of the group's 16 bytes unpacks into the
// elements 4w..4w+3 (low nibbles) and 16+4w.. (high nibbles), the same
// words of int8 activations the dp4a and mma fragments pair them with.
//
//	F32   w float [kpad]                   (kpad = cols rounded up to 4)
//	F16   w half [kpad]                    (kpad = cols rounded up to 8)
//	Q8_0  qs int8 [kpad], d half [kpad/32] (kpad = cols rounded up to 64)
//	Q4_0  qs [kpad/2] (16 bytes per block, GGUF's order), d half [kpad/32]
//	Q4_K  qs [cols/2] (nibble groups), sm u16 [cols/32] (scale | min<<8),
//	      dm u32 [cols/256] (d | dmin<<16, fp16 bits)
//	Q5_K  qs, qh u32 [cols/32], sm, dm; bit 8b+j of qh is the fifth bit
//	      of element 4j+b of the group, bit 8b+4+j that of element 16+4j+b
//	Q6_K  ql [cols/2] (low 4 bits, nibble groups), qh [cols/4] (8 bytes per
//	      group: a word for elements 0..15, one for 16..31; bits 2j..2j+1
//	      of byte b are the high bits of element 4j+b of that half),
//	      sc u16 [cols/32] (the int8 scales of the group's 16-element
//	      halves), d half [cols/256]
//	W8    qs int8 [kpad] (kpad = cols rounded up to 64), scale float [1]
//	FP8_E4M3  qs [kpad]: the E4M3 bytes (kpad = cols rounded up to 64,
//	          padding code 0 = +0), scale float [1]
//	TERNARY   qs [kpad/4] (kpad = cols rounded up to 64): per 16 elements
//	          a little-endian word whose bits 8b+2i..8b+2i+1 hold code+1
//	          of element 4i+b (padding: value 0, stored as 1), scale float [1]
//	BINARY    qs [kpad/8] (kpad = cols rounded up to 128): per 32 elements
//	          a word whose bit 8b+i is set when element 4i+b is +1
//	          (padding: -1, against zero activations), scale float [1]
//
// The TERNARY and BINARY words put the codes of elements 4i..4i+3 at the
// same bit offset in the word's four bytes, so one shift and mask yields
// them as the bytes of an int8 word in element order, which dp4a and the
// mma fragments multiply with the activations' word of the same elements
// (kernels/rowfmt.cu). BINARY rows are 128-element multiples so that a
// row is whole 16-byte loads. The row formats' activations are per-token
// int8 (qi_quant_w8), padded with zeros to the weight's kpad.
//
// A row-format weight split into k outlier columns (LLM.int8(),
// docs/formats.md) has three more arrays after the parts
// (upload_outliers.go, kernels/outliers.cu):
//
//	ocols  int32 [k]        the outlier columns, increasing
//	omask  u32 [kpad/32]    bit c%32 of word c/32 set for each column c
//	ow     half [k][ldo]    the F16 weights, transposed: column j's rows
//	                        together (ldo = rows rounded up to 64, zeros
//	                        past rows), so that the block of 64 rows
//	                        qi_outlier_add stages is whole 16-byte copies
type layout struct {
	typ   backend.DType
	rows  int
	cols  int
	kpad  int
	parts []part
	size  int64
	split split
}

// part is one array of a layout: rows of rowBytes at byte offset off.
type part struct {
	name     string
	rowBytes int
	off      int64
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// GPUTypes are the weight types the GPU backend uploads.
var GPUTypes = []backend.DType{backend.F32, backend.F16, backend.Q8_0, backend.Q4_0, backend.Q4_K, backend.Q5_K, backend.Q6_K,
	backend.W8, backend.FP8, backend.Ternary, backend.Binary}

// newLayout plans the device arrays of a rows x cols weight of type t.
func newLayout(t backend.DType, rows, cols int) (*layout, error) {
	if rows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("shape %dx%d", rows, cols)
	}
	if _, err := backend.RowBytes(t, cols); err != nil {
		return nil, err
	}
	l := &layout{typ: t, rows: rows, cols: cols}
	type p struct {
		name     string
		rowBytes int
	}
	var ps []p
	switch t {
	case backend.F32:
		l.kpad = roundUp(cols, 4)
		ps = []p{{"w", 4 * l.kpad}}
	case backend.F16:
		l.kpad = roundUp(cols, 8)
		ps = []p{{"w", 2 * l.kpad}}
	case backend.Q8_0:
		l.kpad = roundUp(cols, 64)
		ps = []p{{"qs", l.kpad}, {"d", l.kpad / 16}}
	case backend.Q4_0:
		l.kpad = roundUp(cols, 64)
		ps = []p{{"qs", l.kpad / 2}, {"d", l.kpad / 16}}
	case backend.Q4_K:
		l.kpad = cols
		ps = []p{{"qs", cols / 2}, {"sm", cols / 16}, {"dm", cols / 64}}
	case backend.Q5_K:
		l.kpad = cols
		ps = []p{{"qs", cols / 2}, {"qh", cols / 8}, {"sm", cols / 16}, {"dm", cols / 64}}
	case backend.Q6_K:
		l.kpad = cols
		ps = []p{{"ql", cols / 2}, {"qh", cols / 4}, {"sc", cols / 16}, {"d", cols / 128}}
	case backend.W8, backend.FP8:
		l.kpad = roundUp(cols, 64)
		ps = []p{{"qs", l.kpad}, {"scale", 4}}
	case backend.Ternary:
		l.kpad = roundUp(cols, 64)
		ps = []p{{"qs", l.kpad / 4}, {"scale", 4}}
	case backend.Binary:
		l.kpad = roundUp(cols, 128)
		ps = []p{{"qs", l.kpad / 8}, {"scale", 4}}
	default:
		return nil, fmt.Errorf("%v weights are not supported by the CUDA backend (supported: %v)", t, GPUTypes)
	}
	var off int64
	for _, x := range ps {
		l.parts = append(l.parts, part{name: x.name, rowBytes: x.rowBytes, off: off})
		off = align256(off + int64(x.rowBytes)*int64(rows))
	}
	l.size = off
	return l, nil
}

// chunk is host staging for rows [r0, r0+n) of every part of a layout,
// one buffer per part, which upload copies to the part's rows.
type chunk struct {
	l    *layout
	r0   int
	n    int
	bufs [][]byte // one per part: n rows
}

func (l *layout) newChunk(r0, n int) *chunk {
	c := &chunk{l: l, r0: r0, n: n, bufs: make([][]byte, len(l.parts))}
	for i, p := range l.parts {
		c.bufs[i] = make([]byte, n*p.rowBytes)
	}
	return c
}

// row returns the bytes of row r (absolute) of a part.
func (c *chunk) row(part, r int) []byte {
	rb := c.l.parts[part].rowBytes
	return c.bufs[part][(r-c.r0)*rb : (r-c.r0+1)*rb]
}

// repackRow writes GGUF row src (row r of the weight) into the chunk.
// scale is the row's scale for the row formats.
func (c *chunk) repackRow(r int, src []byte, scale float32) {
	l := c.l
	switch l.typ {
	case backend.F32, backend.F16:
		copy(c.row(0, r), src)
	case backend.Q8_0:
		qs, d := c.row(0, r), c.row(1, r)
		for b := 0; b < l.cols/32; b++ {
			blk := src[34*b : 34*b+34]
			copy(d[2*b:], blk[:2])
			copy(qs[32*b:], blk[2:34])
		}
	case backend.Q4_0:
		qs, d := c.row(0, r), c.row(1, r)
		for b := 0; b < l.cols/32; b++ {
			blk := src[18*b : 18*b+18]
			copy(d[2*b:], blk[:2])
			copy(qs[16*b:], blk[2:18])
		}
	case backend.Q4_K, backend.Q5_K:
		c.repackK4(r, src)
	case backend.Q6_K:
		c.repackQ6K(r, src)
	case backend.W8, backend.FP8:
		copy(c.row(0, r), src[:l.cols])
		binary.LittleEndian.PutUint32(c.row(1, r), math.Float32bits(scale))
	case backend.Ternary:
		repackTernary(c.row(0, r), src, l.cols)
		binary.LittleEndian.PutUint32(c.row(1, r), math.Float32bits(scale))
	case backend.Binary:
		repackBinary(c.row(0, r), src, l.cols)
		binary.LittleEndian.PutUint32(c.row(1, r), math.Float32bits(scale))
	}
}

// repackTernary moves GGUF's TERNARY codes (element k in bits 2(k%4) of
// byte k/4) into the device words: element 4i+b of a 16-element group to
// bits 2i of the group's byte b. Padding elements get code 1 (zero).
func repackTernary(dst, src []byte, cols int) {
	clear(dst)
	for k := 0; k < 4*len(dst); k++ {
		c := byte(1)
		if k < cols {
			c = src[k/4] >> (2 * (k % 4)) & 3
		}
		e := k % 16
		dst[k/16*4+e%4] |= c << (2 * (e / 4))
	}
}

// repackBinary moves GGUF's BINARY bits (element k in bit k%8 of byte
// k/8) into the device words: element 4i+b of a 32-element group to bit i
// of the group's byte b. Padding elements are -1 (clear bits).
func repackBinary(dst, src []byte, cols int) {
	clear(dst)
	for k := 0; k < cols; k++ {
		e := k % 32
		dst[k/32*4+e%4] |= (src[k/8] >> (k % 8) & 1) << (e / 4)
	}
}

// scaleMinK4 is ggml's get_scale_min_k4: the 6-bit scale and min of
// sub-block j from a K-quant's 12 packed bytes.
func scaleMinK4(j int, q []byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xf | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// packNibbles writes the 32 4-bit values of a group in Q4_0 nibble order.
func packNibbles(dst []byte, q *[32]uint8) {
	for b := 0; b < 16; b++ {
		dst[b] = q[b]&15 | (q[b+16]&15)<<4
	}
}

// repackK4 handles Q4_K (144-byte super-blocks: d, dmin, scales[12],
// qs[128]) and Q5_K (176 bytes: d, dmin, scales[12], qh[32], qs[128]). In
// both, element 64c+l of a super-block is the low nibble of qs[32c+l] and
// element 64c+32+l the high nibble; Q5_K's fifth bit of element e is bit
// e/32 of qh[e%32].
func (c *chunk) repackK4(r int, src []byte) {
	q5 := c.l.typ == backend.Q5_K
	bs, qsOff := 144, 16
	qs, sm, dm := c.row(0, r), c.row(1, r), c.row(2, r)
	var qh []byte
	if q5 {
		bs, qsOff = 176, 48
		qh, sm, dm = c.row(1, r), c.row(2, r), c.row(3, r)
	}
	var q [32]uint8
	for s := 0; s < c.l.cols/256; s++ {
		blk := src[bs*s : bs*(s+1)]
		copy(dm[4*s:], blk[:4]) // d, dmin: fp16 bits, little-endian
		for j := 0; j < 8; j++ {
			g := 8*s + j
			sc, m := scaleMinK4(j, blk[4:16])
			sm[2*g], sm[2*g+1] = sc, m
			var hw uint32
			for e := 0; e < 32; e++ {
				el := 32*j + e // element within the super-block
				ch, l := el/64, el%64
				q[e] = blk[qsOff+32*ch+l%32] >> (4 * (l / 32)) & 15
				if q5 {
					hb := uint32(blk[16+el%32]>>(el/32)) & 1
					// bit 8b+w for element 4w+b (e < 16), 8b+4+w for 16+4w+b.
					ee := e % 16
					hw |= hb << (8*(ee%4) + 4*(e/16) + ee/4)
				}
			}
			packNibbles(qs[16*g:], &q)
			if q5 {
				binary.LittleEndian.PutUint32(qh[4*g:], hw)
			}
		}
	}
}

// repackQ6K handles Q6_K (210-byte super-blocks: ql[128], qh[64],
// scales int8[16], d). Element 128h+32k+l (k < 4) has low bits
// ql[64h+32(k%2)+l] >> 4(k/2) and high bits qh[32h+l] >> 2k.
func (c *chunk) repackQ6K(r int, src []byte) {
	ql, qh, sc, d := c.row(0, r), c.row(1, r), c.row(2, r), c.row(3, r)
	var lo [32]uint8
	for s := 0; s < c.l.cols/256; s++ {
		blk := src[210*s : 210*(s+1)]
		copy(d[2*s:], blk[208:210])
		for j := 0; j < 8; j++ {
			g := 8*s + j
			var h [2]uint32
			for e := 0; e < 32; e++ {
				el := 32*j + e
				hh, rr := el/128, el%128
				l, k := rr%32, rr/32
				lo[e] = blk[64*hh+32*(k%2)+l] >> (4 * (k / 2)) & 15
				hi := uint32(blk[128+32*hh+l]>>(2*k)) & 3
				ee := e % 16
				h[e/16] |= hi << (8*(ee%4) + 2*(ee/4))
			}
			packNibbles(ql[16*g:], &lo)
			binary.LittleEndian.PutUint32(qh[8*g:], h[0])
			binary.LittleEndian.PutUint32(qh[8*g+4:], h[1])
			sc[2*g], sc[2*g+1] = blk[192+2*j], blk[192+2*j+1]
		}
	}
}
