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

// rowQuantize quantizes a tensor to row format t, rows split among
// threads.
func rowQuantize(p *tensorPlan, t backend.DType, src []byte, threads int) (data []byte, scales []float32, err error) {
	x, err := floats(p, src)
	if err != nil {
		return nil, nil, err
	}
	rb, err := backend.RowBytes(t, p.cols)
	if err != nil {
		return nil, nil, fmt.Errorf("quantize: tensor %s: %w", p.name(), err)
	}
	data = make([]byte, rb*p.rows)
	scales = make([]float32, p.rows)
	err = parallelRows(p.rows, threads, func(r0, r1 int) error {
		d, s, err := quant.QuantizeRows(t, x[r0*p.cols:r1*p.cols], r1-r0, p.cols)
		if err != nil {
			return err
		}
		copy(data[r0*rb:], d)
		copy(scales[r0:], s)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("quantize: tensor %s to %v: %w", p.name(), t, err)
	}
	return data, scales, nil
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
