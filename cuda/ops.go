package cuda

import (
	"fmt"

	"qinfer/host/backend"
	"qinfer/kernels"
)

// run executes one op: check validates the arguments (with the backend
// locked), body enqueues the kernels on the device thread and returns the
// bytes and arithmetic operations for the profile. An error while a graph
// is being captured also fails the capture, so that EndCapture never
// returns a graph with an op missing.
func (b *Backend) run(op string, check func() error, body func() (bytes, ops int64, err error)) error {
	if err := b.enter(op); err != nil {
		return err
	}
	defer b.mu.Unlock()
	err := check()
	if err == nil {
		err = b.do(func() error {
			start, err := b.opStart()
			if err != nil {
				return err
			}
			bytes, ops, err := body()
			if err != nil {
				return err
			}
			return b.opEnd(start, op, bytes, ops)
		})
	}
	if err != nil && b.capturing && b.captureErr == nil {
		b.captureErr = err
	}
	return err
}

// MatMul computes dst[t][n] = sum_k w[n][k] * x[t][k]. The activations are
// first quantized on the device to the weight type's activation format,
// exactly as the CPU backend does (Q8_0 blocks for Q8_0/Q4_0, Q8_K for
// K-quants, per-token int8 for the row formats W8, FP8, TERNARY and
// BINARY, with the weight's static scale if it has one, F16 for F16), then
// multiplied: by the GEMV kernels for up to 8 tokens (decode), by the GEMM
// kernels beyond. A row-format weight split into outlier columns
// (LLM.int8()) has those channels left out of the int8 activations and
// their float products added afterwards (upload_outliers.go).
func (b *Backend) MatMul(dst, w, x backend.Tensor) error {
	const op = "matmul"
	var d, xa *activation
	var wt *weight
	return b.run(op, func() error {
		var err error
		if d, err = asActivation(op, "destination", dst); err != nil {
			return err
		}
		if wt, err = asWeight(op, "weight", w); err != nil {
			return err
		}
		if xa, err = asActivation(op, "input", x); err != nil {
			return err
		}
		if xa.cols != wt.cols || d.rows != xa.rows || d.cols != wt.rows {
			return fmt.Errorf("matmul: %v times input %s into destination %s: want input Nx%d and destination Nx%d",
				wt, shape(xa), shape(d), wt.cols, wt.rows)
		}
		if xa.rows > maxGridYZ {
			return fmt.Errorf("matmul: %d tokens exceed %d per call", xa.rows, maxGridYZ)
		}
		return checkDisjoint(op, d, xa)
	}, func() (int64, int64, error) {
		if err := b.matmul(d, wt, xa); err != nil {
			return 0, 0, fmt.Errorf("matmul %v: %w", wt, err)
		}
		ntok := int64(xa.rows)
		return wt.lay.size + 4*ntok*int64(wt.cols+wt.rows), 2 * int64(wt.rows) * int64(wt.cols) * ntok, nil
	})
}

// actLayout returns the byte sizes of the quantized activations' parts
// (quants, scales, sums) for ntok tokens of weight w.
func actLayout(w *weight, ntok int) (q, d, bs int64) {
	n, kpad, cols := int64(ntok), int64(w.lay.kpad), int64(w.cols)
	switch w.typ {
	case backend.Q8_0, backend.Q4_0:
		return n * kpad, 4 * n * kpad / 32, 0
	case backend.Q4_K, backend.Q5_K, backend.Q6_K:
		return n * cols, 4 * n * cols / 256, 2 * n * cols / 16
	case backend.W8, backend.FP8, backend.Ternary, backend.Binary:
		// The third part holds a split weight's outlier values.
		return n * kpad, 4 * n, 4 * int64(w.lay.split.k) * int64(splitTokenStride(ntok))
	case backend.F16:
		return 2 * n * kpad, 0, 0
	}
	return 4 * n * kpad, 0, 0
}

// actParts returns the device addresses of the parts of the quantized
// activations in the scratch.
func (b *Backend) actParts(w *weight, ntok int) (xq, xd, xbs DevicePtr) {
	qb, db, _ := actLayout(w, ntok)
	xq = b.act.ptr
	xd = xq + DevicePtr(align256(qb))
	xbs = xd + DevicePtr(align256(db))
	return xq, xd, xbs
}

// matmul enqueues the activation quantization and the product, then for
// a weight split into outlier columns the float part (device thread).
func (b *Backend) matmul(d *activation, w *weight, x *activation) error {
	if err := b.matmulStage(w, x); err != nil {
		return err
	}
	xq, xd, xbs := b.actParts(w, x.rows)
	if err := b.product(d, w, x.rows, xq, xd, xbs); err != nil {
		return err
	}
	return b.outlierAdd(d, w, x.rows, xbs)
}

// matmulStage quantizes x for w into the activation scratch.
func (b *Backend) matmulStage(w *weight, x *activation) error {
	ntok, lay := x.rows, w.lay
	qb, db, sb := actLayout(w, ntok)
	if _, err := b.ensure(&b.act, "matmul activations", align256(qb)+align256(db)+align256(sb)); err != nil {
		return err
	}
	xq, xd, xbs := b.actParts(w, ntok)
	a := b.args.reset()
	var qk *kernels.Kernel
	var grid Dim3
	switch w.typ {
	case backend.Q8_0, backend.Q4_0:
		qk, grid = kernels.QuantQ8_0, Dim3{X: cdiv(lay.kpad, 256), Y: uint32(ntok), Z: 1}
		a.ptr(x.ptr()).i64(x.ld).i64(w.cols).i64(lay.kpad).ptr(xq).ptr(xd)
	case backend.Q4_K, backend.Q5_K, backend.Q6_K:
		qk, grid = kernels.QuantQ8_K, Dim3{X: cdiv(w.cols, 2048), Y: uint32(ntok), Z: 1}
		a.ptr(x.ptr()).i64(x.ld).i64(w.cols).ptr(xq).ptr(xd).ptr(xbs)
	case backend.W8, backend.FP8, backend.Ternary, backend.Binary:
		qk, grid = kernels.QuantW8, Dim3{X: uint32(ntok), Y: 1, Z: 1}
		a.ptr(x.ptr()).i64(x.ld).i64(w.cols).i64(lay.kpad).f32(w.actScale)
		w.splitQuantArgs(a, xbs, ntok)
		a.ptr(xq).ptr(xd)
	case backend.F16:
		qk, grid = kernels.ConvertF16, Dim3{X: cdiv(lay.kpad, 256), Y: uint32(ntok), Z: 1}
		a.ptr(x.ptr()).i64(x.ld).i64(w.cols).i64(lay.kpad).ptr(xq)
	default:
		qk, grid = kernels.ConvertF32, Dim3{X: cdiv(lay.kpad, 256), Y: uint32(ntok), Z: 1}
		a.ptr(x.ptr()).i64(x.ld).i64(w.cols).i64(lay.kpad).ptr(xq)
	}
	return b.launch(qk, grid)
}

// product enqueues the GEMV (up to 8 tokens) or GEMM of w with the staged
// activations.
func (b *Backend) product(d *activation, w *weight, ntok int, xq, xd, xbs DevicePtr) error {
	if ntok <= kernels.GEMVTokens[len(kernels.GEMVTokens)-1] {
		return b.gemv(d, w, ntok, xq, xd, xbs, gemvIndex(ntok))
	}
	return b.gemm(d, w, ntok, xq, xd, xbs)
}

// gemvIndex picks the GEMV variant with the fewest tokens >= n.
func gemvIndex(n int) int {
	for i, t := range kernels.GEMVTokens {
		if n <= t {
			return i
		}
	}
	return len(kernels.GEMVTokens) - 1
}

// gemvKernels lists each weight type's GEMV kernels.
var gemvKernels = map[backend.DType][]*kernels.Kernel{
	backend.Q8_0: kernels.GemvQ8_0, backend.Q4_0: kernels.GemvQ4_0, backend.Q4_K: kernels.GemvQ4_K,
	backend.Q5_K: kernels.GemvQ5_K, backend.Q6_K: kernels.GemvQ6_K, backend.W8: kernels.GemvW8,
	backend.FP8: kernels.GemvFP8, backend.Ternary: kernels.GemvTernary, backend.Binary: kernels.GemvBinary,
	backend.F16: kernels.GemvF16, backend.F32: kernels.GemvF32,
}

// gemvArgs marshals a GEMV launch of w's kernel k (device thread).
func (b *Backend) gemvArgs(d *activation, w *weight, ntok int, xq, xd, xbs DevicePtr) {
	a := b.args.reset()
	switch w.typ {
	case backend.Q8_0, backend.Q4_0:
		a.ptr(w.part(0)).ptr(w.part(1)).ptr(xq).ptr(xd)
		a.ptr(d.ptr()).i64(d.ld).i64(w.rows).i64(w.cols).i64(w.lay.kpad).i64(ntok)
	case backend.Q4_K:
		a.ptr(w.part(0)).ptr(w.part(1)).ptr(w.part(2)).ptr(xq).ptr(xd).ptr(xbs)
		a.ptr(d.ptr()).i64(d.ld).i64(w.rows).i64(w.cols).i64(ntok)
	case backend.Q5_K, backend.Q6_K:
		a.ptr(w.part(0)).ptr(w.part(1)).ptr(w.part(2)).ptr(w.part(3)).ptr(xq).ptr(xd).ptr(xbs)
		a.ptr(d.ptr()).i64(d.ld).i64(w.rows).i64(w.cols).i64(ntok)
	case backend.W8, backend.FP8, backend.Ternary, backend.Binary:
		a.ptr(w.part(0)).ptr(w.part(1)).ptr(xq).ptr(xd)
		a.ptr(d.ptr()).i64(d.ld).i64(w.rows).i64(w.cols).i64(w.lay.kpad).i64(ntok)
	default: // F16, F32
		a.ptr(w.part(0)).ptr(xq).ptr(d.ptr()).i64(d.ld).i64(w.rows).i64(w.lay.kpad).i64(ntok)
	}
}

func (b *Backend) gemv(d *activation, w *weight, ntok int, xq, xd, xbs DevicePtr, variant int) error {
	ks, ok := gemvKernels[w.typ]
	if !ok {
		return fmt.Errorf("no GEMV for %v", w.typ)
	}
	b.gemvArgs(d, w, ntok, xq, xd, xbs)
	return b.launch(ks[variant], Dim3{X: cdiv(w.rows, kernels.GemvRows), Y: 1, Z: 1})
}

var gemmKernels = map[backend.DType]*kernels.Kernel{
	backend.Q8_0: kernels.GemmQ8_0, backend.Q4_0: kernels.GemmQ4_0, backend.Q4_K: kernels.GemmQ4_K,
	backend.Q5_K: kernels.GemmQ5_K, backend.Q6_K: kernels.GemmQ6_K,
}

func (b *Backend) gemm(d *activation, w *weight, ntok int, xq, xd, xbs DevicePtr) error {
	a := b.args.reset()
	rows := w.rows
	switch w.typ {
	case backend.W8, backend.FP8, backend.Ternary, backend.Binary:
		return b.gemmRows(d, w, ntok, xq, xd, b.rowGemmKernel(w.typ, rows, ntok))
	case backend.F16, backend.F32:
		k := kernels.GemmF32
		if w.typ == backend.F16 {
			k = kernels.GemmF16
		}
		a.ptr(w.part(0)).ptr(xq).ptr(d.ptr()).i64(d.ld).i64(rows).i64(w.lay.kpad).i64(ntok)
		return b.launch(k, Dim3{X: cdiv(rows, kernels.GemmFloatTile), Y: cdiv(ntok, kernels.GemmFloatTile), Z: 1})
	}
	k, ok := gemmKernels[w.typ]
	if !ok {
		return fmt.Errorf("no GEMM for %v", w.typ)
	}
	// (wq, wqh, wsc, wsb, xq, xd, xbs, y, ldy, rows, cols, kpad, ntok)
	var wq, wqh, wsc, wsb DevicePtr
	switch w.typ {
	case backend.Q8_0, backend.Q4_0:
		wq, wsc = w.part(0), w.part(1)
	case backend.Q4_K:
		wq, wsc, wsb = w.part(0), w.part(1), w.part(2)
	default: // Q5_K, Q6_K
		wq, wqh, wsc, wsb = w.part(0), w.part(1), w.part(2), w.part(3)
	}
	a.ptr(wq).ptr(wqh).ptr(wsc).ptr(wsb).ptr(xq).ptr(xd).ptr(xbs)
	a.ptr(d.ptr()).i64(d.ld).i64(rows).i64(w.cols).i64(w.lay.kpad).i64(ntok)
	return b.launch(k, Dim3{X: cdiv(rows, kernels.GemmBlockRows), Y: cdiv(ntok, kernels.GemmBlockTokens), Z: 1})
}

// rowGemm lists each row format's GEMM kernels: the 128-row tile and
// the 64-row one (the same for FP8, whose only tile has 64 rows).
var rowGemm = map[backend.DType][2]*kernels.Kernel{
	backend.W8:      {kernels.GemmW8, kernels.GemmW8M64},
	backend.Ternary: {kernels.GemmTernary, kernels.GemmTernaryM64},
	backend.Binary:  {kernels.GemmBinary, kernels.GemmBinaryM64},
	backend.FP8:     {kernels.GemmFP8, kernels.GemmFP8},
}

// rowGemmKernel picks a row format's GEMM tile: 128 rows per block, or 64
// when the 128-row grid would not give every multiprocessor two blocks.
func (b *Backend) rowGemmKernel(t backend.DType, rows, ntok int) *kernels.Kernel {
	ks := rowGemm[t]
	blocks := int(cdiv(rows, kernels.GemmBlockRows)) * int(cdiv(ntok, kernels.GemmW8BlockTokens))
	if blocks < 2*b.props.SMs {
		return ks[1]
	}
	return ks[0]
}

// rowGemmTile returns the rows and tokens a block of row-format GEMM
// kernel k covers.
func rowGemmTile(k *kernels.Kernel) (rows, tokens int) {
	switch k {
	case kernels.GemmFP8:
		return kernels.GemmFP8Rows, kernels.GemmFP8Tokens
	case kernels.GemmW8M64, kernels.GemmTernaryM64, kernels.GemmBinaryM64:
		return kernels.GemmW8SmallRows, kernels.GemmW8BlockTokens
	}
	return kernels.GemmBlockRows, kernels.GemmW8BlockTokens
}

// gemmRows launches row-format GEMM kernel k (one of rowGemm's), which
// all take W8's parameters.
func (b *Backend) gemmRows(d *activation, w *weight, ntok int, xq, xd DevicePtr, k *kernels.Kernel) error {
	rowsPerBlock, toksPerBlock := rowGemmTile(k)
	a := b.args.reset()
	a.ptr(w.part(0)).ptr(w.part(1)).ptr(xq).ptr(xd)
	a.ptr(d.ptr()).i64(d.ld).i64(w.rows).i64(w.cols).i64(w.lay.kpad).i64(ntok)
	return b.launch(k, Dim3{X: cdiv(w.rows, rowsPerBlock), Y: cdiv(ntok, toksPerBlock), Z: 1})
}
