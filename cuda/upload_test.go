package cuda

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

// layoutCases are shapes of every uploadable type, with columns that need
// padding where the type pads.
var layoutCases = []struct {
	typ  backend.DType
	cols int
}{
	{backend.F32, 37}, {backend.F16, 70}, {backend.Q8_0, 96}, {backend.Q8_0, 128}, {backend.Q4_0, 160},
	{backend.Q4_K, 512}, {backend.Q5_K, 256}, {backend.Q6_K, 512}, {backend.W8, 100},
	{backend.FP8, 100}, {backend.FP8, 128}, {backend.Ternary, 36}, {backend.Ternary, 200},
	{backend.Binary, 8}, {backend.Binary, 136}, {backend.Binary, 256},
}

// randomGGUF returns rows of GGUF data for typ: quantized normal values
// for the block formats and FP8, TERNARY, BINARY (with their row scales),
// random bits for F16 (finite) and F32, random int8 and row scales for W8.
func randomGGUF(t *testing.T, rng *rand.Rand, typ backend.DType, rows, cols int) ([]byte, []float32) {
	t.Helper()
	rb, err := backend.RowBytes(typ, cols)
	require.NoError(t, err)
	data := make([]byte, rows*rb)
	switch typ {
	case backend.W8:
		rng.Read(data)
		scales := make([]float32, rows)
		for i := range scales {
			scales[i] = rng.Float32()
		}
		return data, scales
	case backend.F16:
		for i := 0; i < len(data); i += 2 {
			binary.LittleEndian.PutUint16(data[i:], quant.FP32ToFP16(float32(rng.NormFloat64())))
		}
		return data, nil
	case backend.FP8, backend.Ternary, backend.Binary:
		x := make([]float32, rows*cols)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		data, scales, err := quant.QuantizeRows(typ, x, rows, cols)
		require.NoError(t, err)
		return data, scales
	}
	x := make([]float32, cols)
	for r := 0; r < rows; r++ {
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		require.NoError(t, quant.Quantize(typ, x, data[r*rb:(r+1)*rb]))
	}
	return data, nil
}

// repackAll repacks a whole weight, chunk rows at a time, into one
// buffer laid out as on the device.
func repackAll(l *layout, data []byte, scales []float32, chunk int) []byte {
	rb, _ := backend.RowBytes(l.typ, l.cols)
	out := make([]byte, l.size)
	for r0 := 0; r0 < l.rows; r0 += chunk {
		n := min(chunk, l.rows-r0)
		c := l.newChunk(r0, n)
		for r := r0; r < r0+n; r++ {
			var s float32
			if scales != nil {
				s = scales[r]
			}
			c.repackRow(r, data[r*rb:(r+1)*rb], s)
		}
		for i, p := range l.parts {
			copy(out[p.off+int64(r0)*int64(p.rowBytes):], c.bufs[i])
		}
	}
	return out
}

func TestLayoutAlignment(t *testing.T) {
	for _, c := range layoutCases {
		l, err := newLayout(c.typ, 7, c.cols)
		require.NoError(t, err)
		var end int64
		for _, p := range l.parts {
			assert.Zero(t, p.off%256, "%v part %s offset", c.typ, p.name)
			assert.GreaterOrEqual(t, p.off, end, "%v part %s overlaps the previous", c.typ, p.name)
			end = p.off + int64(p.rowBytes)*7
		}
		assert.LessOrEqual(t, end, l.size)
		// The quant arrays are read 16 bytes at a time, row by row.
		assert.Zero(t, l.parts[0].rowBytes%16, "%v row bytes of %s", c.typ, l.parts[0].name)
		assert.GreaterOrEqual(t, l.kpad, c.cols)
		switch c.typ {
		case backend.Q8_0, backend.Q4_0, backend.W8, backend.FP8, backend.Ternary:
			assert.Zero(t, l.kpad%64, "%v: the GEMM runs whole 64-element stages", c.typ)
		case backend.Binary:
			assert.Zero(t, l.kpad%128, "BINARY rows are whole 16-byte words")
		case backend.Q4_K, backend.Q5_K, backend.Q6_K:
			assert.Equal(t, c.cols, l.kpad)
		}
	}
}

func TestLayoutErrors(t *testing.T) {
	_, err := newLayout(backend.Q2_K, 4, 256)
	assert.ErrorContains(t, err, "Q2_K weights are not supported by the CUDA backend")
	assert.ErrorContains(t, err, "Q6_K")
	_, err = newLayout(backend.Q8_0, 4, 33)
	assert.Error(t, err)
	_, err = newLayout(backend.Q8_0, 0, 32)
	assert.Error(t, err)
}

// Readers of the device layout, written from its description with the
// kernels' index arithmetic (element e of row r sits in 32-element group
// g = e/32 at position p = e%32), independent of the repack code.

func u16(b []byte, i int) uint16 { return binary.LittleEndian.Uint16(b[2*i:]) }
func u32(b []byte, i int) uint32 { return binary.LittleEndian.Uint32(b[4*i:]) }

// nibbleAt is a 4-bit value in a group of 16 bytes in Q4_0 nibble order.
func nibbleAt(grp []byte, p int) uint8 { return grp[p%16] >> (4 * (p / 16)) & 15 }

type devWeight struct {
	l   *layout
	buf []byte
}

func (d devWeight) part(i, r int) []byte {
	p := d.l.parts[i]
	return d.buf[p.off+int64(r)*int64(p.rowBytes):][:p.rowBytes]
}

// q4 returns the low 4 bits of element e of row r (Q4_K, Q5_K, Q6_K).
func (d devWeight) q4(r, e int) uint8 { return nibbleAt(d.part(0, r)[16*(e/32):], e%32) }

// hi5 returns Q5_K's fifth bit of element e of row r.
func (d devWeight) hi5(r, e int) uint8 {
	w := u32(d.part(1, r), e/32)
	p := e % 32
	pp := p % 16
	return uint8(w>>(8*(pp%4)+4*(p/16)+pp/4)) & 1
}

// hi6 returns Q6_K's two high bits of element e of row r.
func (d devWeight) hi6(r, e int) uint8 {
	grp := d.part(1, r)[8*(e/32):]
	p := e % 32
	pp := p % 16
	return grp[4*(p/16)+pp%4] >> (2 * (pp / 4)) & 3
}

// ternaryCode returns the stored code (value+1) of element k of row r:
// element 4i+b of a 16-element word sits at bits 8b+2i.
func (d devWeight) ternaryCode(r, k int) uint8 {
	w, e := u32(d.part(0, r), k/16), k%16
	return uint8(w>>(8*(e%4)+2*(e/4))) & 3
}

// binaryBit returns the bit of element k of row r: element 4i+b of a
// 32-element word is bit 8b+i.
func (d devWeight) binaryBit(r, k int) uint8 {
	w, e := u32(d.part(0, r), k/32), k%32
	return uint8(w>>(8*(e%4)+e/4)) & 1
}

// ggufRow rebuilds GGUF row r from the device layout.
func (d devWeight) ggufRow(t *testing.T, r int) []byte {
	l := d.l
	rb, err := backend.RowBytes(l.typ, l.cols)
	require.NoError(t, err)
	out := make([]byte, rb)
	switch l.typ {
	case backend.F32, backend.F16:
		copy(out, d.part(0, r))
	case backend.W8, backend.FP8:
		copy(out, d.part(0, r)[:l.cols])
	case backend.Ternary:
		for k := 0; k < l.cols; k++ {
			out[k/4] |= d.ternaryCode(r, k) << (2 * (k % 4))
		}
	case backend.Binary:
		for k := 0; k < l.cols; k++ {
			out[k/8] |= d.binaryBit(r, k) << (k % 8)
		}
	case backend.Q8_0:
		for b := 0; b < l.cols/32; b++ {
			binary.LittleEndian.PutUint16(out[34*b:], u16(d.part(1, r), b))
			copy(out[34*b+2:], d.part(0, r)[32*b:32*b+32])
		}
	case backend.Q4_0:
		for b := 0; b < l.cols/32; b++ {
			binary.LittleEndian.PutUint16(out[18*b:], u16(d.part(1, r), b))
			copy(out[18*b+2:], d.part(0, r)[16*b:16*b+16])
		}
	case backend.Q4_K, backend.Q5_K:
		size, qs := 144, 16
		smPart, dmPart := 1, 2
		if l.typ == backend.Q5_K {
			size, qs, smPart, dmPart = 176, 48, 2, 3
		}
		for s := 0; s < l.cols/256; s++ {
			blk := out[size*s : size*(s+1)]
			binary.LittleEndian.PutUint32(blk, u32(d.part(dmPart, r), s))
			var sc, m [8]uint8
			for j := 0; j < 8; j++ {
				v := u16(d.part(smPart, r), 8*s+j)
				sc[j], m[j] = uint8(v), uint8(v>>8)
			}
			packSM(blk[4:16], sc, m)
			for e := 0; e < 256; e++ {
				c, l2 := e/64, e%64
				blk[qs+32*c+l2%32] |= d.q4(r, 256*s+e) << (4 * (l2 / 32))
				if l.typ == backend.Q5_K {
					blk[16+e%32] |= d.hi5(r, 256*s+e) << (e / 32)
				}
			}
		}
	case backend.Q6_K:
		for s := 0; s < l.cols/256; s++ {
			blk := out[210*s : 210*(s+1)]
			for e := 0; e < 256; e++ {
				h, rr := e/128, e%128
				l2, k := rr%32, rr/32
				blk[64*h+32*(k%2)+l2] |= d.q4(r, 256*s+e) << (4 * (k / 2))
				blk[128+32*h+l2] |= d.hi6(r, 256*s+e) << (2 * k)
			}
			for j := 0; j < 8; j++ {
				v := u16(d.part(2, r), 8*s+j)
				blk[192+2*j], blk[193+2*j] = uint8(v), uint8(v>>8)
			}
			binary.LittleEndian.PutUint16(blk[208:], u16(d.part(3, r), s))
		}
	}
	return out
}

// packSM packs 6-bit scales and mins as ggml's K-quants do (the inverse
// of get_scale_min_k4).
func packSM(q []byte, sc, m [8]uint8) {
	for j := 0; j < 4; j++ {
		q[j] = sc[j]&63 | (sc[j+4]>>4)<<6
		q[j+4] = m[j]&63 | (m[j+4]>>4)<<6
		q[j+8] = sc[j+4]&15 | (m[j+4]&15)<<4
	}
}

// dequantRow decodes row r from the device layout with the float
// operations of the dequantization kernels (ops.cu).
func (d devWeight) dequantRow(r int, scales []float32) []float32 {
	l := d.l
	out := make([]float32, l.cols)
	h := quant.FP16ToFP32
	for e := range out {
		g := e / 32
		switch l.typ {
		case backend.F32:
			out[e] = math.Float32frombits(u32(d.part(0, r), e))
		case backend.F16:
			out[e] = h(u16(d.part(0, r), e))
		case backend.W8:
			out[e] = float32(int8(d.part(0, r)[e])) * scales[r]
		case backend.FP8:
			out[e] = scales[r] * (float32(quant.FP8Units[d.part(0, r)[e]]) / 512)
		case backend.Ternary:
			out[e] = scales[r] * float32(int(d.ternaryCode(r, e))-1)
		case backend.Binary:
			out[e] = scales[r] * float32(2*int(d.binaryBit(r, e))-1)
		case backend.Q8_0:
			out[e] = float32(int8(d.part(0, r)[e])) * h(u16(d.part(1, r), g))
		case backend.Q4_0:
			out[e] = float32(int(nibbleAt(d.part(0, r)[16*g:], e%32))-8) * h(u16(d.part(1, r), g))
		case backend.Q4_K, backend.Q5_K:
			smPart, dmPart := 1, 2
			q := int(d.q4(r, e))
			if l.typ == backend.Q5_K {
				smPart, dmPart = 2, 3
				q |= int(d.hi5(r, e)) << 4
			}
			sm, dm := u16(d.part(smPart, r), g), u32(d.part(dmPart, r), e/256)
			d1 := h(uint16(dm)) * float32(uint8(sm))
			m1 := h(uint16(dm>>16)) * float32(sm>>8)
			out[e] = float32(d1*float32(q)) - m1
		case backend.Q6_K:
			q := int(d.q4(r, e)) | int(d.hi6(r, e))<<4
			sc := int8(u16(d.part(2, r), g) >> (8 * (e % 32 / 16)))
			dd := h(u16(d.part(3, r), e/256))
			out[e] = float32(dd*float32(sc)) * float32(q-32)
		}
	}
	return out
}

// TestRepackRecoversBlocks repacks random weights of every type (whole
// and in chunks of rows) and reads every GGUF block back through the
// kernels' address arithmetic; it also checks the padding is zero and the
// kernels' dequantization of the layout equals quant.Dequantize bit for
// bit.
func TestRepackRecoversBlocks(t *testing.T) {
	for _, c := range layoutCases {
		t.Run(fmt.Sprintf("%v_%d", c.typ, c.cols), func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(c.cols) + int64(c.typ)))
			const rows = 5
			data, scales := randomGGUF(t, rng, c.typ, rows, c.cols)
			l, err := newLayout(c.typ, rows, c.cols)
			require.NoError(t, err)
			whole := repackAll(l, data, scales, rows)
			assert.Equal(t, whole, repackAll(l, data, scales, 2), "chunked repack differs")
			d := devWeight{l: l, buf: whole}
			rb, _ := backend.RowBytes(c.typ, c.cols)
			for r := 0; r < rows; r++ {
				require.Equal(t, data[r*rb:(r+1)*rb], d.ggufRow(t, r), "row %d", r)
				// Padding up to kpad is zero in the quant array (a zero
				// weight for TERNARY, -1 against zero activations for BINARY).
				if l.kpad > c.cols {
					esz := l.parts[0].rowBytes / l.kpad
					switch c.typ {
					case backend.Ternary:
						for k := c.cols; k < l.kpad; k++ {
							assert.Equal(t, uint8(1), d.ternaryCode(r, k), "row %d padding element %d", r, k)
						}
					case backend.Binary:
						for k := c.cols; k < l.kpad; k++ {
							assert.Zero(t, d.binaryBit(r, k), "row %d padding element %d", r, k)
						}
					case backend.Q4_0:
						assert.Equal(t, make([]byte, (l.kpad-c.cols)/2), d.part(0, r)[c.cols/2:], "row %d padding", r)
						assert.Equal(t, make([]byte, 2*(l.kpad-c.cols)/32), d.part(1, r)[2*c.cols/32:], "row %d scale padding", r)
					default:
						assert.Equal(t, make([]byte, esz*(l.kpad-c.cols)), d.part(0, r)[esz*c.cols:], "row %d padding", r)
					}
				}
				if c.typ == backend.W8 {
					assert.Equal(t, scales[r], math.Float32frombits(u32(d.part(1, r), 0)))
					continue
				}
				want := make([]float32, c.cols)
				if quant.IsRowFormat(c.typ) {
					assert.Equal(t, scales[r], math.Float32frombits(u32(d.part(1, r), 0)))
					require.NoError(t, quant.DequantizeRow(c.typ, data[r*rb:(r+1)*rb], scales[r], want))
				} else {
					require.NoError(t, quant.Dequantize(c.typ, data[r*rb:(r+1)*rb], want))
				}
				got := d.dequantRow(r, scales)
				for e := range want {
					if math.Float32bits(want[e]) != math.Float32bits(got[e]) {
						t.Fatalf("row %d element %d: kernel arithmetic %v, quant.Dequantize %v", r, e, got[e], want[e])
					}
				}
			}
		})
	}
}

// TestCheckRowWeight: the upload refuses what the CPU backend refuses:
// codes no kernel handles, rows too long for exact int32 sums, static
// activation scales that are not finite with a finite inverse.
func TestCheckRowWeight(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	good := func(typ backend.DType, rows, cols int) *backend.Weight {
		data, scales := randomGGUF(t, rng, typ, rows, cols)
		return &backend.Weight{Name: "w", Type: typ, Rows: rows, Cols: cols, Data: data, RowScales: scales}
	}
	for _, typ := range quant.RowFormats {
		w := good(typ, 3, 64)
		require.NoError(t, checkRowWeight(w), "%v", typ)
		w.ActScale = 0.02
		require.NoError(t, checkRowWeight(w), "%v static", typ)
		for _, bad := range []float32{-0.5, float32(math.NaN()), float32(math.Inf(1)), 1e-45} {
			w.ActScale = bad
			assert.ErrorContains(t, checkRowWeight(w), "activation scale", "%v act scale %v", typ, bad)
		}
	}

	w := good(backend.FP8, 3, 64)
	w.Data[64+17] = 0xff // -NaN
	assert.ErrorContains(t, checkRowWeight(w), "FP8_E4M3 row 1 element 17 is NaN")
	w = good(backend.Ternary, 3, 64)
	w.Data[2*16+5] |= 3 << 4
	assert.ErrorContains(t, checkRowWeight(w), "TERNARY row 2 element 22 has the invalid code 3")

	// Split weights (LLM.int8() outlier columns) pass quant.CheckOutliers,
	// as on the CPU backend.
	for _, typ := range quant.RowFormats {
		vals := make([]float32, 4*64)
		for i := range vals {
			vals[i] = float32(rng.NormFloat64())
		}
		ocols := []int32{3, 40}
		data, scales, ow, err := quant.QuantizeRowsSplit(typ, vals, 4, 64, ocols)
		require.NoError(t, err)
		w = &backend.Weight{Name: "w", Type: typ, Rows: 4, Cols: 64, Data: data, RowScales: scales, OutlierCols: ocols, OutlierW: ow}
		require.NoError(t, w.Validate())
		require.NoError(t, checkRowWeight(w), "%v split", typ)
		w.OutlierW[5] = 0x7c00 // +Inf
		assert.ErrorContains(t, checkRowWeight(w), "outlier weight of row 2 column 40 is +Inf", "%v", typ)
	}
	w = good(backend.W8, 4, 64)
	w.OutlierCols, w.OutlierW = []int32{3, 40}, make([]uint16, 8)
	clear(w.Data)
	require.NoError(t, w.Validate())
	require.NoError(t, checkRowWeight(w))
	w.Data[3] = 5
	assert.ErrorContains(t, checkRowWeight(w), "W8 row 0: outlier column 3 has a non-zero code")
	w.Data[3], w.Data[64+40] = 0, 0x80
	assert.ErrorContains(t, checkRowWeight(w), "W8 row 1: outlier column 40 has a non-zero code")

	cols := quant.MaxRowCols + 8
	w = &backend.Weight{Name: "long", Type: backend.Binary, Rows: 1, Cols: cols, Data: make([]byte, cols/8), RowScales: []float32{1}}
	assert.ErrorContains(t, checkRowWeight(w), "rows of 131080 elements, at most 131072")
}

func TestOOMError(t *testing.T) {
	err := oomError("weight blk.0.ffn_up.weight (Q8_0 11008x4096)", 3<<29, 200<<20, 80<<30, ErrOutOfMemory)
	assert.EqualError(t, err, "allocate weight blk.0.ffn_up.weight (Q8_0 11008x4096): needs 1.5 GiB of device memory, 200.0 MiB free of 80.0 GiB: cuda: out of memory")
	assert.True(t, errors.Is(err, ErrOutOfMemory))

	// A driver error keeps its own code and message.
	drvErr := NewError("cuMemAlloc_v2", CodeOutOfMemory)
	err = oomError("KV cache", 5<<30, 1<<30, 8<<30, drvErr)
	assert.ErrorContains(t, err, "needs 5.0 GiB of device memory, 1.0 GiB free of 8.0 GiB")
	assert.ErrorContains(t, err, "cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY")
	assert.True(t, errors.Is(err, ErrOutOfMemory))

	// A failure that is not out of memory while memory is short still
	// matches ErrOutOfMemory, and unknown free memory is left out.
	err = oomError("x", 100, 10, 1000, errors.New("boom"))
	assert.True(t, errors.Is(err, ErrOutOfMemory))
	err = oomError("x", 100, -1, -1, errors.New("boom"))
	assert.EqualError(t, err, "allocate x: needs 100 B of device memory: boom")
	assert.False(t, errors.Is(err, ErrOutOfMemory))
}

func TestFmtBytes(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {5 << 20, "5.0 MiB"}, {80 << 30, "80.0 GiB"}, {3 << 40, "3.0 TiB"}} {
		assert.Equal(t, c.want, fmtBytes(c.n), "%d", c.n)
	}
}
