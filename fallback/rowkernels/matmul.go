// Package rowkernels runs qinfer's row formats (W8, FP8 E4M3, Ternary,
// Binary: codes with one F32 scale per weight row, docs/formats.md) on the
// CPU against per-token int8 activations.
//
// Every output is an exact integer sum scaled once, in the order of
// quant.RowScaleDot, so all paths give the reference's bits:
//   - W8: int8 x int8 with int32 sums, AVX512-VNNI (VPDPBUSD on 64 bytes),
//     AVX2 (VPMADDUBSW) or pure Go, 4 weight rows by up to 4 tokens per
//     kernel call so that each weight load serves several tokens;
//   - Ternary and Binary: each group of 4 rows is unpacked to int8 (-1, 0,
//     +1) on the fly and goes through the same int8 kernels;
//   - FP8: each value is an integer number of units of 2^-9 (at most
//     229376), split into three int8 digits (base 256); the three digit
//     planes of a row group go through the same int8 kernels and the sums
//     combine exactly in int64. Pure Go sums the units in int64 directly.
//
// Work is split over groups of 4 output rows on a kernels.Pool.
//
// A weight may carry LLM.int8()-style outlier columns (outliers.go): its
// activations are then quantized without those channels
// (QuantizeActsSplit), and after the int8 products a second parallel pass
// adds a float side product for them to each output, in the order of
// quant.RowSplitDot, again bit for bit (AVX2 or pure Go).
package rowkernels

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"
	"unsafe"

	"qinfer/fallback/kernels"
	"qinfer/host/backend"
	"qinfer/host/quant"
)

// Features lists the SIMD extensions the kernels use now.
func Features() []string { return features() }

// Matrix is a row-format weight the kernels can multiply. It keeps the
// caller's data (usually mmap'd GGUF bytes) without copying.
type Matrix struct {
	typ              backend.DType
	rows, cols, rowB int
	data             []byte
	scales           []float32
	actScale         float32
	out              outliers

	// 128 times the sum of each W8 row's codes: the VNNI kernels multiply
	// q+128, so this is what they add too much. wsum64 covers the columns
	// the 64-byte row kernels take, wsumAll whole rows (the 16-token
	// kernel). Computed on first use.
	sumsOnce sync.Once
	wsum64   []int32
	wsumAll  []int32
}

// NewMatrix checks w (a row format, Validate, rows no longer than
// quant.MaxRowCols, codes quant.CheckRowData accepts: no ternary 3, no FP8
// NaN; outlier columns quant.CheckOutliers accepts) and wraps it.
func NewMatrix(w *backend.Weight) (*Matrix, error) {
	if !quant.IsRowFormat(w.Type) {
		return nil, fmt.Errorf("rowkernels: weight %s: %v is not a row format", w.Name, w.Type)
	}
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("rowkernels: %w", err)
	}
	if w.Cols > quant.MaxRowCols {
		return nil, fmt.Errorf("rowkernels: weight %s: rows of %d elements, at most %d supported", w.Name, w.Cols, quant.MaxRowCols)
	}
	if w.ActScale != 0 {
		if err := quant.CheckActScale(w.ActScale); err != nil {
			return nil, fmt.Errorf("rowkernels: weight %s: %w", w.Name, err)
		}
	}
	if err := quant.CheckRowData(w.Type, w.Data, w.Rows, w.Cols); err != nil {
		return nil, fmt.Errorf("rowkernels: weight %s: %w", w.Name, err)
	}
	out, err := newOutliers(w)
	if err != nil {
		return nil, err
	}
	rb, _ := backend.RowBytes(w.Type, w.Cols)
	return &Matrix{typ: w.Type, rows: w.Rows, cols: w.Cols, rowB: rb, data: w.Data, scales: w.RowScales, actScale: w.ActScale, out: out}, nil
}

// ActScale is the static activation scale, 0 for dynamic quantization.
func (m *Matrix) ActScale() float32 { return m.actScale }

func (m *Matrix) w8Sums() (prefix64, all []int32) {
	m.sumsOnce.Do(func() {
		n := m.cols &^ 63
		m.wsum64 = make([]int32, m.rows)
		m.wsumAll = make([]int32, m.rows)
		for r := range m.wsum64 {
			row := m.data[r*m.rowB : r*m.rowB+m.cols]
			var s, t int32
			for _, b := range row[:n] {
				s += int32(int8(b))
			}
			for _, b := range row[n:] {
				t += int32(int8(b))
			}
			m.wsum64[r], m.wsumAll[r] = 128*s, 128*(s+t)
		}
	})
	return m.wsum64, m.wsumAll
}

// tok16Min is the fewest tokens for which the 16-token tiles beat the
// 4-row kernels (a tile is padded to 16 tokens).
const tok16Min = 8

// MatMul sets dst[t*ldd + r] = dot(weight row r, token t) for every row
// of m and every token of a (quantized with QuantizeActsSplit, with
// m.ActScale() and m.OutlierCols()). Calls with the same a must not run
// concurrently.
func MatMul(p *kernels.Pool, m *Matrix, a *Acts, dst []float32, ldd int) error {
	if p == nil || m == nil || a == nil {
		return fmt.Errorf("rowkernels: matmul: nil pool, matrix or activations")
	}
	if a.cols != m.cols || a.ntok <= 0 {
		return fmt.Errorf("rowkernels: matmul %v %dx%d: %d activation rows of %d", m.typ, m.rows, m.cols, a.ntok, a.cols)
	}
	if ldd < m.rows {
		return fmt.Errorf("rowkernels: matmul %v %dx%d: output stride %d below %d rows", m.typ, m.rows, m.cols, ldd, m.rows)
	}
	if need := (a.ntok-1)*ldd + m.rows; len(dst) < need {
		return fmt.Errorf("rowkernels: matmul %v %dx%d: %d output rows need %d floats, have %d", m.typ, m.rows, m.cols, a.ntok, need, len(dst))
	}
	if !sameCols(a.ocols, m.out.cols) {
		return fmt.Errorf("rowkernels: matmul %v %dx%d: activations quantized without the weight's %d outlier columns (%d given)", m.typ, m.rows, m.cols, len(m.out.cols), len(a.ocols))
	}
	a.bind()
	a.scratch.ensure(p.Threads() + 1)
	j := &a.job
	*j = job{m: m, a: a, dst: dst, ldd: ldd}
	groupRows := 4
	switch {
	case m.typ == backend.FP8:
		// With SIMD, FP8 rows run as three int8 digit planes through the
		// 4-row kernels; in pure Go one int64 pass is faster.
		if j.block, j.unsigned = simdBlock(); j.block > 0 {
			j.fp8Planes = true
			if j.unsigned {
				a.ensureU()
			}
		}
	case useTok16() && a.ntok >= tok16Min && m.cols%4 == 0 && 15*int64(ldd) < 1<<31:
		j.tok16, groupRows = true, 16
		a.ensureTiles(p)
		if m.typ == backend.W8 {
			_, j.wsum = m.w8Sums()
		}
	default:
		j.block, j.unsigned = simdBlock()
		if j.unsigned {
			a.ensureU()
			if m.typ == backend.W8 {
				j.wsum, _ = m.w8Sums()
			}
		}
	}
	groups := (m.rows + groupRows - 1) / groupRows
	// A chunk should hold at least ~256K multiply-adds so that waking
	// workers stays small next to it.
	grain := max(1, (1<<18)/(groupRows*m.cols*a.ntok))
	p.For(groups, grain, a.mmFn)
	if k := len(m.out.cols); k > 0 {
		// The float side product of a split weight, once every int8 part
		// is in dst.
		p.For(m.outlierBlocks(), max(1, (1<<16)/(8*k*a.ntok)), a.sideFn)
	}
	*j = job{} // drop the references to the caller's buffers
	return nil
}

// job is one MatMul call.
type job struct {
	m        *Matrix
	a        *Acts
	dst      []float32
	ldd      int
	block    int  // columns per SIMD step of the 4-row kernels, 0 for pure Go
	unsigned bool // the 4-row kernel reads a.u and needs wsum correction
	tok16    bool // 16 rows by 16-token tiles (gemmTok16VNNI)
	// fp8Planes runs FP8 rows as their three int8 digit planes (see
	// fp8Digits) through the int8 kernels.
	fp8Planes bool
	wsum      []int32
}

// scratch holds the int8 rows of one group (unpacked Ternary/Binary rows,
// or W8 rows of an incomplete group padded with zero rows) and FP8 units.
// Kept in the Acts (scratchSet) so that a MatMul allocates nothing in
// steady state.
type scratch struct {
	w8    []int8
	units []int32
}

func (j *job) run(lo, hi int) {
	si := j.a.scratch.get()
	defer j.a.scratch.put(si)
	sc := &j.a.scratch.slots[si]
	cols := j.m.cols
	if j.m.typ == backend.FP8 && !j.fp8Planes {
		if cap(sc.units) < 4*cols {
			sc.units = make([]int32, 4*cols)
		}
		for g := lo; g < hi; g++ {
			j.fp8Group(g, sc.units[:4*cols])
		}
		return
	}
	n, planes, prefix := 4, 1, cols&^max(j.block-1, 0)
	if j.tok16 {
		n, prefix = 16, cols
	}
	if j.fp8Planes {
		planes = 3
	}
	if cap(sc.w8) < planes*n*cols {
		sc.w8 = make([]int8, planes*n*cols)
	}
	buf := sc.w8[:planes*n*cols]
	var wsum [3][16]int32
	for g := lo; g < hi; g++ {
		r0 := n * g
		nr := min(n, j.m.rows-r0)
		var w []int8
		stride := cols
		switch {
		case j.fp8Planes:
			w = buf
			j.unpackFP8(r0, nr, buf, &wsum, prefix)
		case j.m.typ == backend.W8 && nr == n:
			w = unsafe.Slice((*int8)(unsafe.Pointer(&j.m.data[r0*j.m.rowB])), (n-1)*j.m.rowB+cols)
			stride = j.m.rowB
			clear(wsum[0][:])
			if j.wsum != nil {
				copy(wsum[0][:], j.wsum[r0:r0+n])
			}
		default:
			w = buf
			j.unpack(r0, nr, n, buf, wsum[0][:n], prefix)
		}
		if j.tok16 {
			j.tok16Group(r0, nr, w, stride, &wsum[0])
		} else {
			j.int8Group(r0, nr, w, stride, planes, &wsum)
		}
	}
}

// fp8Digits splits every FP8 code's integer units u (quant.FP8Units) into
// three int8 digits, u = d0 + 256*d1 + 65536*d2, so that an FP8 row times
// int8 activations is three int8 dots, each exact in int32, combined in
// int64. |u| <= 229376 needs only |d2| <= 4.
var fp8Digits = func() (t [256][3]int8) {
	for c, u := range quant.FP8Units {
		d0 := int8(u)
		u1 := (u - int32(d0)) >> 8
		d1 := int8(u1)
		t[c] = [3]int8{d0, d1, int8((u1 - int32(d1)) >> 8)}
	}
	return t
}()

// unpackFP8 writes the digit planes of rows r0..r0+nr into buf: plane p
// row i at buf[(p*4+i)*cols:], missing rows zero, and each plane row's
// VNNI correction over the first prefix columns.
func (j *job) unpackFP8(r0, nr int, buf []int8, wsum *[3][16]int32, prefix int) {
	m := j.m
	cols := m.cols
	for i := 0; i < 4; i++ {
		planes := [3][]int8{
			buf[i*cols : (i+1)*cols],
			buf[(4+i)*cols : (5+i)*cols],
			buf[(8+i)*cols : (9+i)*cols],
		}
		wsum[0][i], wsum[1][i], wsum[2][i] = 0, 0, 0
		if i >= nr {
			for _, p := range planes {
				clear(p)
			}
			continue
		}
		src := m.data[(r0+i)*m.rowB : (r0+i)*m.rowB+cols]
		d0, d1, d2 := planes[0][:len(src)], planes[1][:len(src)], planes[2][:len(src)]
		n := 0
		if j.unsigned {
			n = prefix
		}
		var s0, s1, s2 int32
		for k, c := range src[:n] {
			v := fp8DigitWord[c]
			d0[k], d1[k], d2[k] = int8(v), int8(v>>8), int8(v>>16)
			s0 += int32(int8(v))
			s1 += int32(int8(v >> 8))
			s2 += int32(int8(v >> 16))
		}
		for k, c := range src[n:] {
			v := fp8DigitWord[c]
			d0[n+k], d1[n+k], d2[n+k] = int8(v), int8(v>>8), int8(v>>16)
		}
		wsum[0][i], wsum[1][i], wsum[2][i] = 128*s0, 128*s1, 128*s2
	}
}

// fp8DigitWord is fp8Digits packed as bytes 0, 1, 2 of a word.
var fp8DigitWord = func() (t [256]uint32) {
	for c, d := range fp8Digits {
		t[c] = uint32(uint8(d[0])) | uint32(uint8(d[1]))<<8 | uint32(uint8(d[2]))<<16
	}
	return
}()

// unpack writes rows r0..r0+nr of the matrix as int8 codes into buf (n
// rows of cols, missing rows zero) and, for the VNNI kernels, 128 times
// each row's code sum over the first prefix columns.
func (j *job) unpack(r0, nr, n int, buf []int8, wsum []int32, prefix int) {
	m := j.m
	cols := m.cols
	for i := 0; i < n; i++ {
		row := buf[i*cols : (i+1)*cols]
		wsum[i] = 0
		if i >= nr {
			clear(row)
			continue
		}
		src := m.data[(r0+i)*m.rowB : (r0+i+1)*m.rowB]
		var s int32
		switch m.typ {
		case backend.W8:
			copy(row, unsafe.Slice((*int8)(unsafe.Pointer(&src[0])), cols))
			for _, v := range row[:prefix] {
				s += int32(v)
			}
		case backend.Ternary:
			unpackTernary(src, row)
			// prefix is a whole number of bytes (cols, or a multiple of 64).
			for _, b := range src[:prefix/4] {
				s += int32(ternarySum[b])
			}
		default:
			unpackBinary(src, row)
			for _, b := range src[:prefix/8] {
				s += int32(2*bits.OnesCount8(b) - 8)
			}
		}
		if j.unsigned || j.tok16 {
			wsum[i] = 128 * s
		}
	}
}

// tok16Group computes rows r0..r0+nr (int8 codes in w, rows stride bytes
// apart) for all tokens, one 16-token tile at a time.
func (j *job) tok16Group(r0, nr int, w []int8, stride int, wsum *[16]int32) {
	a := j.a
	var ws [16]float32
	copy(ws[:], j.m.scales[r0:r0+nr])
	ng := j.m.cols / 4
	for i := 0; i*16 < a.ntok; i++ {
		tile := a.tiles[i*ng*64 : (i+1)*ng*64]
		tok16(&w[0], stride, tile, ng, wsum, &ws, a.tileXS[16*i:16*i+16], j.dst[16*i*j.ldd+r0:], j.ldd, nr, min(16, a.ntok-16*i))
	}
}

// ternaryLUT and binaryLUT expand one packed byte to its 4 or 8 codes, in
// memory order when stored as a native-endian word.
var ternaryLUT, binaryLUT = func() (t [256]uint32, b [256]uint64) {
	for v := 0; v < 256; v++ {
		var tc [4]byte
		for k := range tc {
			// Code 3 never reaches here (NewMatrix rejects it).
			tc[k] = byte(int8(v>>(2*k)&3) - 1)
		}
		var bc [8]byte
		for k := range bc {
			bc[k] = 0xff // -1
			if v>>k&1 == 1 {
				bc[k] = 1
			}
		}
		t[v], b[v] = binary.NativeEndian.Uint32(tc[:]), binary.NativeEndian.Uint64(bc[:])
	}
	return
}()

// ternarySum is the sum of the 4 codes of a packed ternary byte.
var ternarySum = func() (t [256]int8) {
	for v := range t {
		for k := 0; k < 4; k++ {
			t[v] += int8(v>>(2*k)&3) - 1
		}
	}
	return
}()

// unpackTernary and unpackBinary store whole table entries (4 or 8 codes)
// at once; dst holds exactly the row's codes, so the stores stay inside.

func unpackTernary(src []byte, dst []int8) {
	out := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(dst))), len(dst)/4)
	for i, b := range src[:len(out)] {
		out[i] = ternaryLUT[b]
	}
}

func unpackBinary(src []byte, dst []int8) {
	out := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(dst))), len(dst)/8)
	for i, b := range src[:len(out)] {
		out[i] = binaryLUT[b]
	}
}

// int8Group computes rows r0..r0+nr for all tokens from int8 codes: one
// plane (W8, Ternary, Binary) or FP8's three digit planes, plane p's 4
// rows at w[p*4*stride:], rows stride bytes apart; wsum[p][r] is the VNNI
// kernels' correction.
func (j *job) int8Group(r0, nr int, w []int8, stride, planes int, wsum *[3][16]int32) {
	a, cols := j.a, j.m.cols
	nsimd := 0
	if j.block > 0 {
		nsimd = cols &^ (j.block - 1)
	}
	x := a.q
	if j.unsigned {
		x = a.u
	}
	var out [3][16]int32
	tile := maxTile()
	for t := 0; t < a.ntok; {
		nt := tile
		for nt > a.ntok-t {
			nt /= 2
		}
		for p := 0; p < planes; p++ {
			if nsimd > 0 {
				dotTile(&w[p*4*stride], stride, &x[t*cols], cols, nt, nsimd/j.block, &out[p])
			} else {
				clear(out[p][:])
			}
		}
		for tt := 0; tt < nt; tt++ {
			xq := a.q[(t+tt)*cols : (t+tt+1)*cols]
			xs := a.scales[t+tt]
			drow := j.dst[(t+tt)*j.ldd+r0:]
			for r := 0; r < nr; r++ {
				var s [3]int32
				for p := 0; p < planes; p++ {
					s[p] = out[p][tt*4+r] - wsum[p][r]
					wr := w[p*4*stride+r*stride : p*4*stride+r*stride+cols]
					// The columns the SIMD kernel did not cover (all of them
					// in pure Go); int32 wraps as the kernel's sums do, and
					// the true total fits (quant.MaxRowCols).
					for k := nsimd; k < cols; k++ {
						s[p] += int32(wr[k]) * int32(xq[k])
					}
				}
				if planes == 1 {
					drow[r] = float32(s[0]) * (j.m.scales[r0+r] * xs)
				} else {
					isum := int64(s[0]) + 256*int64(s[1]) + 65536*int64(s[2])
					drow[r] = quant.RowScaleDot(backend.FP8, isum, j.m.scales[r0+r], xs)
				}
			}
		}
		t += nt
	}
}

// fp8Group computes rows 4g..4g+3 of an FP8 matrix: each row decoded once
// to integer units, then exact int64 sums with every token.
func (j *job) fp8Group(g int, units []int32) {
	m, a := j.m, j.a
	cols := m.cols
	r0 := 4 * g
	nr := min(4, m.rows-r0)
	for i := 0; i < nr; i++ {
		src := m.data[(r0+i)*m.rowB : (r0+i+1)*m.rowB]
		u := units[i*cols : (i+1)*cols]
		for k, c := range src {
			u[k] = quant.FP8Units[c]
		}
	}
	for t := 0; t < a.ntok; t++ {
		xq := a.q[t*cols : (t+1)*cols]
		xs := a.scales[t]
		drow := j.dst[t*j.ldd+r0:]
		for i := 0; i < nr; i++ {
			u := units[i*cols : (i+1)*cols]
			var s int64
			for k, v := range u {
				s += int64(v) * int64(xq[k])
			}
			drow[i] = quant.RowScaleDot(backend.FP8, s, m.scales[r0+i], xs)
		}
	}
}
