package quantize

import (
	"fmt"
	"strings"

	"qinfer/host/backend"
)

// recorder is a backend.Backend that passes every call through and, on
// the way, records the input of each MatMul into the statistics of the
// weight's input. host/model fuses projections that share an input into
// one weight named "a+b+c", so one set of statistics serves every name in
// it. Weight tensors are map keys, so the wrapped backend's tensors must
// be comparable (pointers, as the CPU backend's are).
type recorder struct {
	backend.Backend
	byTensor map[backend.Tensor]*actStats
	byName   map[string]*actStats
	buf      []float32
	// skip lists, by weight name, input channels to leave out of the
	// statistics (a split's outlier columns; see actStats.skip).
	skip map[string][]int32
}

func newRecorder(be backend.Backend) *recorder {
	return &recorder{Backend: be, byTensor: map[backend.Tensor]*actStats{}, byName: map[string]*actStats{}}
}

func (r *recorder) Upload(w *backend.Weight) (backend.Tensor, error) {
	t, err := r.Backend.Upload(w)
	if err != nil {
		return nil, err
	}
	s := newActStats(w.Cols)
	r.byTensor[t] = s
	names := strings.Split(w.Name, "+")
	for _, n := range names {
		r.byName[n] = s
	}
	// Fused parts share their input, so they share its outlier channels.
	for _, n := range names {
		if cols := r.skip[n]; len(cols) > 0 {
			s.skipChannels(cols)
			break
		}
	}
	return t, nil
}

func (r *recorder) MatMul(dst, w, x backend.Tensor) error {
	if s, ok := r.byTensor[w]; ok {
		n := x.Rows() * x.Cols()
		if cap(r.buf) < n {
			r.buf = make([]float32, n)
		}
		r.buf = r.buf[:n]
		if err := r.Backend.Read(x, r.buf); err != nil {
			return fmt.Errorf("calibration: read matmul input: %w", err)
		}
		if err := s.add(r.buf, x.Rows(), x.Cols()); err != nil {
			return fmt.Errorf("calibration: %w", err)
		}
	}
	return r.Backend.MatMul(dst, w, x)
}
