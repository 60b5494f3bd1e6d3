package rowkernels

import (
	"fmt"
	"math"
	"unsafe"

	"qinfer/fallback/kernels"
	"qinfer/host/quant"
)

// Acts holds activations quantized per token to int8 for the row formats:
// ntok rows of cols codes with one scale each (docs/formats.md). Its
// buffers are reused by the next QuantizeActs, so a backend keeps one.
type Acts struct {
	ntok, cols int
	q          []int8
	// u is q XOR 0x80 (q+128 as unsigned), what VPDPBUSD takes; filled
	// only for the VNNI kernels.
	u      []int8
	hasU   bool
	scales []float32
	// tiles holds the unsigned codes in the 16-token tile layout of
	// gemmTok16VNNI: per tile of 16 tokens, per group of 4 columns, the 4
	// bytes of each token (64 bytes); tokens past ntok are zero. tileXS
	// is the scales padded to whole tiles. Built on first use.
	tiles    []int8
	tileXS   []float32
	hasTiles bool

	// ocols are the outlier channels the codes were quantized without
	// (QuantizeActsSplit): their codes are 0, and xo holds their
	// unquantized values, ntok x len(ocols), for the float side product.
	ocols []int32
	xo    []float32

	// What the pool's workers run. The functions are bound to this Acts
	// once and read their arguments from it, so that a steady loop of
	// QuantizeActs and MatMul calls allocates nothing.
	bound                         *Acts
	quantFn, tileFn, mmFn, sideFn func(lo, hi int)
	qx                            []float32
	qstride                       int
	qstatic                       float32
	qunsigned                     bool
	job                           job
	scratch                       scratchSet
}

// bind creates the worker functions on first use (and again if the Acts
// was copied, so that they never refer to another Acts).
func (a *Acts) bind() {
	if a.bound == a {
		return
	}
	a.bound = a
	a.quantFn = a.quantRange
	a.tileFn = a.tileRange
	a.mmFn = a.job.run
	a.sideFn = a.job.sideRange
}

// Tokens is the number of quantized rows.
func (a *Acts) Tokens() int { return a.ntok }

// Cols is the row length.
func (a *Acts) Cols() int { return a.cols }

// Row returns token t's codes (shared with a; do not keep across calls).
func (a *Acts) Row(t int) []int8 { return a.q[t*a.cols : (t+1)*a.cols] }

// Scale returns token t's scale.
func (a *Acts) Scale(t int) float32 { return a.scales[t] }

func (a *Acts) resize(ntok, cols int) {
	n := ntok * cols
	if cap(a.q) < n {
		a.q = make([]int8, n)
	}
	if cap(a.scales) < ntok {
		a.scales = make([]float32, ntok)
	}
	a.q, a.scales = a.q[:n], a.scales[:ntok]
	a.ntok, a.cols, a.hasU, a.hasTiles = ntok, cols, false, false
}

// ensureTiles builds the 16-token tiles (cols must be a multiple of 4).
func (a *Acts) ensureTiles(p *kernels.Pool) {
	if a.hasTiles {
		return
	}
	ntiles := (a.ntok + 15) / 16
	ng := a.cols / 4
	n := ntiles * ng * 64
	if cap(a.tiles) < n {
		a.tiles = make([]int8, n)
	}
	if cap(a.tileXS) < 16*ntiles {
		a.tileXS = make([]float32, 16*ntiles)
	}
	a.tiles, a.tileXS = a.tiles[:n], a.tileXS[:16*ntiles]
	clear(a.tileXS[copy(a.tileXS, a.scales):])
	a.bind()
	p.For(ntiles, 1, a.tileFn)
	a.hasTiles = true
}

// tileRange builds tiles lo..hi-1 (see ensureTiles).
func (a *Acts) tileRange(lo, hi int) {
	ng := a.cols / 4
	for i := lo; i < hi; i++ {
		dst := unsafe.Slice((*uint32)(unsafe.Pointer(&a.tiles[i*ng*64])), ng*16)
		for t := 0; t < 16; t++ {
			tok := 16*i + t
			if tok >= a.ntok {
				for g := 0; g < ng; g++ {
					dst[16*g+t] = 0
				}
				continue
			}
			src := unsafe.Slice((*uint32)(unsafe.Pointer(&a.q[tok*a.cols])), ng)
			for g, v := range src {
				dst[16*g+t] = v ^ 0x80808080
			}
		}
	}
}

func (a *Acts) growU() {
	if cap(a.u) < len(a.q) {
		a.u = make([]int8, len(a.q))
	}
	a.u = a.u[:len(a.q)]
}

// ensureU fills the unsigned copy the VNNI kernels read, when the
// activations were quantized while those kernels were off.
func (a *Acts) ensureU() {
	if !a.hasU {
		a.growU()
		flip(a.q, a.u)
		a.hasU = true
	}
}

// flip writes q+128 as unsigned bytes (q XOR 0x80).
func flip(q, u []int8) {
	for i, v := range q {
		u[i] = v ^ -128
	}
}

// QuantizeActs quantizes ntok activation rows of cols floats (row t at
// x[t*stride:]) into a, per token: with the token's own range (dynamic)
// when static is 0, otherwise with the fixed scale static. The codes and
// scales are bit-identical to quant.QuantizeTokenInt8 and
// quant.QuantizeTokenInt8Static. Tokens are split over p.
func QuantizeActs(p *kernels.Pool, x []float32, stride, ntok, cols int, static float32, a *Acts) error {
	return QuantizeActsSplit(p, x, stride, ntok, cols, static, nil, a)
}

// QuantizeActsSplit is QuantizeActs for a weight with outlier columns
// ocols (Matrix.OutlierCols; none: QuantizeActs): the dynamic scale comes
// from the other channels, the codes of the outlier channels are 0, and
// their values are kept for MatMul's float side product. Codes and scales
// are bit-identical to quant.QuantizeTokenInt8Split and
// quant.QuantizeTokenInt8StaticSplit. ocols is referenced until the next
// call.
func QuantizeActsSplit(p *kernels.Pool, x []float32, stride, ntok, cols int, static float32, ocols []int32, a *Acts) error {
	if p == nil || a == nil {
		return fmt.Errorf("rowkernels: quantize activations: nil pool or destination")
	}
	if ntok <= 0 || cols <= 0 || stride < cols {
		return fmt.Errorf("rowkernels: quantize activations: %d tokens of %d with stride %d", ntok, cols, stride)
	}
	if need := (ntok-1)*stride + cols; len(x) < need {
		return fmt.Errorf("rowkernels: quantize activations: %d tokens of %d with stride %d need %d floats, have %d", ntok, cols, stride, need, len(x))
	}
	if static != 0 {
		if err := quant.CheckActScale(static); err != nil {
			return fmt.Errorf("rowkernels: quantize activations: %w", err)
		}
	}
	if err := quant.CheckOutlierCols(ocols, cols); err != nil {
		return fmt.Errorf("rowkernels: quantize activations: %w", err)
	}
	a.resize(ntok, cols)
	a.ocols = ocols
	if k := len(ocols); k > 0 {
		if cap(a.xo) < ntok*k {
			a.xo = make([]float32, ntok*k)
		}
		a.xo = a.xo[:ntok*k]
	}
	_, unsigned := simdBlock()
	if unsigned {
		a.growU()
	}
	a.bind()
	a.qx, a.qstride, a.qstatic, a.qunsigned = x, stride, static, unsigned
	grain := max(1, 16384/cols)
	p.For(ntok, grain, a.quantFn)
	a.qx = nil // not kept past the call
	a.hasU = unsigned
	return nil
}

// quantRange quantizes tokens lo..hi-1 with the arguments QuantizeActsSplit
// stored in a.
func (a *Acts) quantRange(lo, hi int) {
	cols, k := a.cols, len(a.ocols)
	for t := lo; t < hi; t++ {
		x := a.qx[t*a.qstride : t*a.qstride+cols]
		q := a.q[t*cols : (t+1)*cols]
		if k == 0 {
			a.scales[t] = quantTokenSplit(x, a.qstatic, nil, q)
		} else {
			a.scales[t] = quantTokenSplit(x, a.qstatic, a.ocols, q)
			xo := a.xo[t*k : (t+1)*k]
			for j, c := range a.ocols {
				xo[j] = x[c]
			}
		}
		if a.qunsigned {
			flip(q, a.u[t*cols:(t+1)*cols])
		}
	}
}

// absMax is max|x| as the reference computes it: NaN if any element is.
func absMax(x []float32) float32 {
	bits, done := absMaxBits(x)
	m := math.Float32frombits(bits)
	for _, v := range x[done:] {
		m = max(m, float32(math.Abs(float64(v))))
	}
	return m
}

// quantTail is the reference rounding (quant.QuantizeTokenInt8) for the
// elements the SIMD kernel leaves.
func quantTail(x []float32, id float32, q []int8) {
	for i, v := range x {
		p := v * id
		if !(p > -127) {
			p = -127
		}
		if !(p < 127) {
			p = 127
		}
		q[i] = int8(math.RoundToEven(float64(p)))
	}
}
