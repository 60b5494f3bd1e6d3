package cuda

import (
	"encoding/binary"
	"fmt"
	"math"

	"qinfer/host/backend"
	"qinfer/host/quant"
	"qinfer/kernels"
)

// Hooks for the external tests and benchmarks (package cuda_test).

// QuantizedForTest runs MatMul's activation quantization for weight w on
// x and returns what it wrote, in the CPU's format: ntok rows of
// quant.QuantizeActivations bytes for Q8_0 and Q8_K (the padding past
// cols must be zero, checked here), or for the row formats (W8, FP8,
// TERNARY, BINARY) the int8 rows followed by the per-token scales.
func (b *Backend) QuantizedForTest(w, x backend.Tensor) ([]byte, error) {
	wt, err := asWeight("test", "weight", w)
	if err != nil {
		return nil, err
	}
	xa, err := asActivation("test", "input", x)
	if err != nil {
		return nil, err
	}
	if err := b.enter("test"); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	var out []byte
	err = b.do(func() error {
		if err := b.stage(wt, xa); err != nil {
			return err
		}
		if err := b.syncLocked(); err != nil {
			return err
		}
		ntok := xa.rows
		qb, db, sb := actLayout(wt, ntok)
		raw := make([]byte, align256(qb)+align256(db)+align256(sb))
		if err := b.drv.MemcpyDtoH(ptrOf(&raw[0]), b.act.ptr, int64(len(raw))); err != nil {
			return err
		}
		q, d, s := raw[:qb], raw[align256(qb):align256(qb)+db], raw[align256(qb)+align256(db):][:sb]
		kpad, cols := wt.lay.kpad, wt.cols
		switch wt.typ {
		case backend.Q8_0, backend.Q4_0:
			for t := 0; t < ntok; t++ {
				for blk := 0; blk < kpad/32; blk++ {
					dv := math.Float32frombits(binary.LittleEndian.Uint32(d[4*(t*kpad/32+blk):]))
					qs := q[t*kpad+32*blk : t*kpad+32*blk+32]
					if blk >= cols/32 {
						if dv != 0 || !allZero(qs) {
							return fmt.Errorf("token %d: padding block %d is not zero", t, blk)
						}
						continue
					}
					h := quant.FP32ToFP16(dv) // exact: dv is a half
					out = append(out, byte(h), byte(h>>8))
					out = append(out, qs...)
				}
			}
		case backend.Q4_K, backend.Q5_K, backend.Q6_K:
			for t := 0; t < ntok; t++ {
				for sbk := 0; sbk < cols/256; sbk++ {
					out = append(out, d[4*(t*cols/256+sbk):][:4]...)
					out = append(out, q[t*cols+256*sbk:][:256]...)
					out = append(out, s[2*(t*cols/16+16*sbk):][:32]...)
				}
			}
		case backend.W8, backend.FP8, backend.Ternary, backend.Binary:
			for t := 0; t < ntok; t++ {
				if !allZero(q[t*kpad+cols : (t+1)*kpad]) {
					return fmt.Errorf("token %d: padding is not zero", t)
				}
				out = append(out, q[t*kpad:t*kpad+cols]...)
			}
			out = append(out, d[:4*ntok]...)
		default:
			return fmt.Errorf("no quantized activations for %v", wt.typ)
		}
		return nil
	})
	return out, err
}

func allZero(b []byte) bool {
	for _, v := range b {
		if v != 0 {
			return false
		}
	}
	return true
}

// stage quantizes x for w into the activation scratch (device thread).
func (b *Backend) stage(w *weight, x *activation) error {
	return b.matmulStage(w, x)
}

// StageForTest quantizes x for w into the activation scratch, as MatMul
// does before its product.
func (b *Backend) StageForTest(w, x backend.Tensor) error {
	wt, err := asWeight("test", "weight", w)
	if err != nil {
		return err
	}
	xa, err := asActivation("test", "input", x)
	if err != nil {
		return err
	}
	return b.run("stage", func() error { return nil }, func() (int64, int64, error) {
		return 0, 0, b.stage(wt, xa)
	})
}

// ProductForTest enqueues only the product of MatMul, reading the
// activations StageForTest left (for ntok tokens), with kernel k when not
// nil (a GEMV variant of w's type, or a row-format GEMM tile of it).
func (b *Backend) ProductForTest(dst, w backend.Tensor, ntok int, k *kernels.Kernel) error {
	wt, err := asWeight("test", "weight", w)
	if err != nil {
		return err
	}
	d, err := asActivation("test", "destination", dst)
	if err != nil {
		return err
	}
	return b.run("product", func() error { return nil }, func() (int64, int64, error) {
		xq, xd, xbs := b.actParts(wt, ntok)
		if k == nil {
			return 0, 0, b.product(d, wt, ntok, xq, xd, xbs)
		}
		for _, ks := range rowGemm {
			if k == ks[0] || k == ks[1] {
				return 0, 0, b.gemmRows(d, wt, ntok, xq, xd, k)
			}
		}
		b.gemvArgs(d, wt, ntok, xq, xd, xbs)
		rows := kernels.GemvRows
		switch k {
		case kernels.GemvQ8_0R1:
			rows = 8
		case kernels.GemvQ8_0R4:
			rows = 32
		}
		return 0, 0, b.launch(k, Dim3{X: cdiv(wt.rows, rows), Y: 1, Z: 1})
	})
}

// StatusForTest poisons the status word as a kernel would, to check that
// Synchronize reports and clears it.
func (b *Backend) StatusForTest(s [4]int32) error {
	if err := b.enter("test"); err != nil {
		return err
	}
	defer b.mu.Unlock()
	return b.do(func() error { return b.drv.MemcpyHtoDAsync(b.status, ptrOf(&s[0]), 16, b.stream) })
}

// DequantRowsForTest dequantizes rows row0..row0+n of weight w as Read
// does for a chunk of rows that starts past row 0 (only weights of more
// than 65535 rows have one).
func (b *Backend) DequantRowsForTest(w backend.Tensor, row0, n int) ([]float32, error) {
	wt, err := asWeight("test", "weight", w)
	if err != nil {
		return nil, err
	}
	if row0 < 0 || n <= 0 || row0+n > wt.rows {
		return nil, fmt.Errorf("rows %d..%d of %v", row0, row0+n, wt)
	}
	if err := b.enter("test"); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	out := make([]float32, n*wt.cols)
	err = b.do(func() error {
		tmp, err := b.alloc("test rows", 4*int64(len(out)))
		if err != nil {
			return err
		}
		defer func() { _ = b.free(tmp) }()
		if err := b.dequant(wt, 0, row0, n, tmp, wt.cols); err != nil {
			return err
		}
		if err := b.syncLocked(); err != nil {
			return err
		}
		return b.drv.MemcpyDtoH(ptrOf(&out[0]), tmp, 4*int64(len(out)))
	})
	return out, err
}
