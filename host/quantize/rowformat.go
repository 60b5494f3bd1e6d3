package quantize

import (
	"fmt"

	"qinfer/host/backend"
	"qinfer/host/qformat"
	"qinfer/host/quant"
)

// tensorTypeKey prefixes the key naming a tensor's row format
// (docs/formats.md, host/qformat).
const tensorTypeKey = qformat.TypeKeyPrefix

// usesActScale reports whether weights of type t quantize their input per
// token to int8 and so can take a static activation scale: the row
// formats do; GGUF block types quantize activations per block.
func usesActScale(t backend.DType) bool { return quant.IsRowFormat(t) }

// rowQuantize quantizes a tensor to row format t, with its split columns
// when it has some, rows split among threads.
func rowQuantize(p *tensorPlan, t backend.DType, src []byte, threads int) (*encoded, error) {
	x, err := floats(p, src)
	if err != nil {
		return nil, err
	}
	rb, err := backend.RowBytes(t, p.cols)
	if err != nil {
		return nil, fmt.Errorf("quantize: tensor %s: %w", p.name(), err)
	}
	split := p.splitAs(t)
	k := len(split)
	c := &encoded{data: make([]byte, rb*p.rows), scales: make([]float32, p.rows), split: split}
	if k > 0 {
		c.ow = make([]uint16, k*p.rows)
	}
	err = parallelRows(p.rows, threads, func(r0, r1 int) error {
		d, s, ow, err := quant.QuantizeRowsSplit(t, x[r0*p.cols:r1*p.cols], r1-r0, p.cols, split)
		if err != nil {
			return err
		}
		copy(c.data[r0*rb:], d)
		copy(c.scales[r0:], s)
		copy(c.ow[r0*k:], ow)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("quantize: tensor %s to %v: %w", p.name(), t, err)
	}
	return c, nil
}

// bytesAs is the size tensor p takes as type t: tensorBytes, plus its
// split columns for a row format.
func (p *tensorPlan) bytesAs(t backend.DType) (int64, error) {
	n, err := tensorBytes(t, p.rows, p.cols)
	if err != nil {
		return 0, err
	}
	return n + splitBytes(p.rows, len(p.splitAs(t))), nil
}

// tensorBytes is the size a tensor of the given shape takes as type t,
// row scales included.
func tensorBytes(t backend.DType, rows, cols int) (int64, error) {
	rb, err := backend.RowBytes(t, cols)
	if err != nil {
		return 0, err
	}
	n := int64(rb) * int64(rows)
	if quant.IsRowFormat(t) {
		n += 4 * int64(rows)
	}
	return n, nil
}
