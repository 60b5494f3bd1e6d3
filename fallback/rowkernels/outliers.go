package rowkernels

import (
	"fmt"
	"slices"
	"sync/atomic"

	"qinfer/host/backend"
	"qinfer/host/quant"
)

// LLM.int8()-style outlier columns (host/quant outliers.go): a split
// weight's int8 part runs through the kernels unchanged, since the
// activation codes of the outlier channels are 0 and so are their
// products whatever the weight codes; the float part, the outlier
// channels' values times F16 weights, is added to each output afterwards
// in quant.OutlierDot's order, group by group on the same workers.

// outliers is a Matrix's split: the columns and their weights widened to
// float32 (exact) in blocks of 8 rows, [rows/8][k][8] (missing rows
// zero), so that one vector load serves 8 rows.
type outliers struct {
	cols []int32
	w    []float32
}

func newOutliers(w *backend.Weight) (outliers, error) {
	k := len(w.OutlierCols)
	if k == 0 {
		return outliers{}, nil
	}
	if err := quant.CheckOutliers(w.Type, w.Data, w.Rows, w.Cols, w.OutlierCols, w.OutlierW); err != nil {
		return outliers{}, fmt.Errorf("rowkernels: weight %s: %w", w.Name, err)
	}
	o := outliers{cols: slices.Clone(w.OutlierCols), w: make([]float32, (w.Rows+7)/8*8*k)}
	for r := 0; r < w.Rows; r++ {
		blk := o.w[r/8*8*k:]
		for j, h := range w.OutlierW[r*k : (r+1)*k] {
			blk[8*j+r%8] = quant.FP16ToFP32(h)
		}
	}
	return o, nil
}

// OutlierCols returns the weight's outlier columns (nil: no split), the
// columns QuantizeActsSplit must leave out. The slice is the Matrix's:
// do not modify it.
func (m *Matrix) OutlierCols() []int32 { return m.out.cols }

// quantTokenSplit quantizes one token and returns its scale, with the
// outlier channels ocols (none for an unsplit weight) left out of the
// range and their codes zeroed: quant.QuantizeTokenInt8Split and
// quant.QuantizeTokenInt8StaticSplit. The codes of the other channels do
// not depend on the outlier channels once the inverse scale is known, so
// the whole row is quantized by the same kernels and the outlier codes
// cleared afterwards.
func quantTokenSplit(x []float32, static float32, ocols []int32, q []int8) float32 {
	var id, scale float32
	if static != 0 {
		id, scale = 1/static, static
	} else {
		amax := absMaxSplit(x, ocols)
		var ok bool
		id, ok = quant.TokenInvScale(amax)
		if !ok {
			clear(q)
			return 0
		}
		scale = amax / 127
	}
	done := quantPrefix(x, id, q)
	quantTail(x[done:], id, q[done:])
	for _, c := range ocols {
		q[c] = 0
	}
	return scale
}

// absMaxSplit is max|x| over the runs between the outlier channels, each
// run by the SIMD kernel; max keeps a NaN, as the reference does.
func absMaxSplit(x []float32, ocols []int32) float32 {
	var m float32
	lo := 0
	for _, c := range ocols {
		m = max(m, absMax(x[lo:c]))
		lo = int(c) + 1
	}
	return max(m, absMax(x[lo:]))
}

// sameCols reports whether the activations were quantized for the
// weight's outlier columns.
func sameCols(a, b []int32) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0] || slices.Equal(a, b))
}

// outlierBlocks is the number of 8-row blocks of the side product.
func (m *Matrix) outlierBlocks() int { return (m.rows + 7) / 8 }

// sideRange adds the float side product to the 8-row blocks lo..hi-1 of
// every token: dst[t][r] = dst[t][r] + sum_j x[t][c_j] * w[r][j], the sum
// in quant.OutlierDot's order, then one float32 addition. A block with
// fewer than 8 rows left adds through a buffer, so that nothing past the
// last row is written.
func (j *job) sideRange(lo, hi int) {
	o, a := &j.m.out, j.a
	k := len(o.cols)
	var part [4 * 8]float32
	for b := lo; b < hi; b++ {
		w := o.w[b*8*k : (b+1)*8*k]
		r0 := 8 * b
		n := min(8, j.m.rows-r0)
		for t := 0; t < a.ntok; {
			nt := min(4, a.ntok-t)
			if nt == 3 {
				nt = 2
			}
			x := a.xo[t*k : (t+nt)*k]
			if n == 8 {
				outlierDot(w, k, x, nt, j.dst[t*j.ldd+r0:], j.ldd)
			} else {
				clear(part[:])
				outlierDot(w, k, x, nt, part[:], 8)
				for tt := 0; tt < nt; tt++ {
					d := j.dst[(t+tt)*j.ldd+r0 : (t+tt)*j.ldd+r0+n]
					for r := range d {
						// part holds 0 + sum = sum exactly.
						d[r] = float32(d[r]) + part[8*tt+r]
					}
				}
			}
			t += nt
		}
	}
}

// outlierDotGo is the pure-Go outlierDot: for nt tokens (rows k apart in
// x) and the 8 rows of a block w ([k][8]), dst[t*ldd+r] += the sum over j
// of x[t][j] * w[j][r] in quant.OutlierDot's order. The conversions keep
// the compiler from fusing a multiply and an add.
func outlierDotGo(w []float32, k int, x []float32, nt int, dst []float32, ldd int) {
	for t := 0; t < nt; t++ {
		var s [8]float32
		for j, xv := range x[t*k : (t+1)*k] {
			wj := (*[8]float32)(w[8*j : 8*j+8])
			for r := range s {
				s[r] += float32(xv * wj[r])
			}
		}
		d := (*[8]float32)(dst[t*ldd : t*ldd+8])
		for r := range d {
			d[r] = float32(d[r]) + s[r]
		}
	}
}

// scratchSet hands each concurrently running part of a MatMul its own
// scratch without allocating: at most one slot per pool thread is taken
// at a time, so a free one always exists.
type scratchSet struct {
	slots []scratch
	busy  []atomic.Bool
}

// ensure makes room for n concurrent users. It must not run while a
// MatMul is using the set.
func (s *scratchSet) ensure(n int) {
	if len(s.slots) < n {
		s.slots = make([]scratch, n)
		s.busy = make([]atomic.Bool, n)
	}
}

func (s *scratchSet) get() int {
	for {
		for i := range s.busy {
			if s.busy[i].CompareAndSwap(false, true) {
				return i
			}
		}
	}
}

func (s *scratchSet) put(i int) { s.busy[i].Store(false) }
