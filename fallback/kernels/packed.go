package kernels

import (
	"fmt"

	"qinfer/host/backend"
)

// Packed is a weight matrix prepared once for MatMulPacked. Q8_0 and Q4_0
// weights are repacked into the panel layout (see panel.go), which makes
// matrix-vector products cheaper in instructions than on the GGUF layout
// at the same memory traffic, and saves MatMul's per-call packing of
// multi-token products. Other types, and Q8_0 where its GGUF-layout
// kernels are preferred (preferGGUF), keep the caller's GGUF bytes, which
// must then stay unchanged while the Packed is used.
type Packed struct {
	wt         backend.DType
	rows, cols int
	raw        []byte // GGUF layout, when there are no panels
	q, s       []byte // panel layout
}

// preferGGUF, when set (by the architectures that have such kernels),
// reports whether wt should be multiplied on the GGUF layout rather than
// on panels, for every batch size, with the current feature switches.
var preferGGUF func(wt backend.DType) bool

// Type, Rows and Cols describe the packed matrix.
func (pw *Packed) Type() backend.DType { return pw.wt }
func (pw *Packed) Rows() int           { return pw.rows }
func (pw *Packed) Cols() int           { return pw.cols }

// Prepare returns the weight matrix w (rows rows of backend.RowBytes(wt,
// cols) bytes, GGUF layout) prepared for MatMulPacked. Whether Q8_0 is
// repacked depends on the feature switches at the time of the call (with
// AVX2 alone its GGUF-layout kernels need fewer instructions per product,
// and a repacked copy would only cost memory); the panel layout itself
// does not depend on them, and a Packed multiplies correctly, with the
// same results, under any switches.
func Prepare(wt backend.DType, w []byte, rows, cols int) (*Packed, error) {
	if rows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("kernels: prepare %v: shape %dx%d", wt, rows, cols)
	}
	wrb, err := backend.RowBytes(wt, cols)
	if err != nil {
		return nil, fmt.Errorf("kernels: prepare weights: %w", err)
	}
	if len(w) < rows*wrb {
		return nil, fmt.Errorf("kernels: prepare %v %dx%d: weights need %d bytes, have %d", wt, rows, cols, rows*wrb, len(w))
	}
	pw := &Packed{wt: wt, rows: rows, cols: cols}
	qb := panelQBytes(wt)
	if qb == 0 || (preferGGUF != nil && preferGGUF(wt)) {
		pw.raw = w[: rows*wrb : rows*wrb]
		return pw, nil
	}
	nb := cols / qk
	panels := (rows + panelRows - 1) / panelRows
	pw.q = align64(make([]byte, panels*nb*qb+panelLine))[:panels*nb*qb]
	pw.s = make([]byte, panels*nb*panelS)

	f := packFuncs(wt)
	pad := make([]byte, panelRows*wrb)
	for p := 0; p < panels; p++ {
		r, nr := p*panelRows, min(panelRows, rows-p*panelRows)
		src := w[r*wrb:]
		if nr < panelRows {
			copy(pad, src[:nr*wrb])
			src = pad
		}
		f.pack(src, wrb, nb, pw.q[p*nb*qb:(p+1)*nb*qb], pw.s[p*nb*panelS:(p+1)*nb*panelS])
	}
	return pw, nil
}

// packFuncs returns the fastest panel implementation of wt the feature
// switches allow (all pack the same bytes).
func packFuncs(wt backend.DType) *panelFuncs {
	if f := simdPanelFuncs(wt); f != nil {
		return f
	}
	return genericPanelFuncs[wt]
}

// MatMulPacked is MatMul on a Prepared matrix: dst[t*ldd + r] = dot(weight
// row r, activation row t), with xq quantized by QuantizeActs for
// pw.Type().
func MatMulPacked(p *Pool, pw *Packed, xq []byte, ntok int, dst []float32, ldd int) error {
	if pw == nil {
		return fmt.Errorf("kernels: matmul: nil packed weights")
	}
	if pw.q == nil {
		return MatMul(p, pw.wt, pw.raw, pw.rows, pw.cols, xq, ntok, dst, ldd)
	}
	return matmul(p, pw.wt, nil, pw, pw.rows, pw.cols, xq, ntok, dst, ldd)
}
