package quantize

import (
	"fmt"
	"math"
)

// histBins is the resolution of the activation magnitude histograms: the
// percentile and MSE observers are exact to one bin, 1/8192 of the range.
const histBins = 8192

// int8Max is the largest int8 code symmetric activation quantization uses.
const int8Max = 127

// actStats accumulates what the observers need about the input of one
// linear layer over the calibration run: the largest magnitude, a
// histogram of magnitudes, and the largest magnitude per input channel
// (for LLM.int8()-style outlier detection).
type actStats struct {
	count   float64
	absMax  float32
	hi      float64 // the histogram covers magnitudes [0, hi]
	hist    []float64
	chanMax []float32
	// skip marks input channels left out of the histogram, count and
	// absMax (chanMax still sees them): the outlier columns a split takes
	// out of int8 quantization, whose static scale must not see them.
	skip  []bool
	nskip int
}

func newActStats(cols int) *actStats {
	return &actStats{hist: make([]float64, histBins), chanMax: make([]float32, cols)}
}

// add records rows of cols activations (row-major).
func (s *actStats) add(x []float32, rows, cols int) error {
	if cols != len(s.chanMax) || len(x) < rows*cols {
		return fmt.Errorf("activation statistics: %d rows of %d values for a layer with %d inputs", rows, cols, len(s.chanMax))
	}
	var m float32
	for r := 0; r < rows; r++ {
		for c, v := range x[r*cols : (r+1)*cols] {
			a := float32(math.Abs(float64(v)))
			if !(a <= math.MaxFloat32) {
				return fmt.Errorf("activation statistics: non-finite activation %v", v)
			}
			if s.skip == nil || !s.skip[c] {
				m = max(m, a)
			}
			s.chanMax[c] = max(s.chanMax[c], a)
		}
	}
	s.absMax = max(s.absMax, m)
	n := float64(rows * (cols - s.nskip))
	if m == 0 {
		s.hist[0] += n
		s.count += n
		return nil
	}
	if s.hi == 0 {
		s.hi = float64(m)
	}
	// Grow the range by doubling, merging bin pairs, so that earlier
	// counts stay exact to the (coarser) new bins.
	for float64(m) > s.hi {
		for i := 0; i < histBins/2; i++ {
			s.hist[i] = s.hist[2*i] + s.hist[2*i+1]
		}
		clear(s.hist[histBins/2:])
		s.hi *= 2
	}
	scale := histBins / s.hi
	for i, v := range x[:rows*cols] {
		if s.skip != nil && s.skip[i%cols] {
			continue
		}
		b := int(math.Abs(float64(v)) * scale)
		s.hist[min(b, histBins-1)]++
	}
	s.count += n
	return nil
}

// skipChannels leaves the given input channels out of the statistics
// from now on (they must not have been recorded yet).
func (s *actStats) skipChannels(cols []int32) {
	if len(cols) == 0 {
		return
	}
	s.skip = make([]bool, len(s.chanMax))
	for _, c := range cols {
		s.skip[c] = true
	}
	s.nskip = len(cols)
}

// outliers counts the input channels whose magnitude exceeded threshold.
func (s *actStats) outliers(threshold float64) int {
	if threshold <= 0 {
		return 0
	}
	n := 0
	for _, m := range s.chanMax {
		if float64(m) > threshold {
			n++
		}
	}
	return n
}

// clip returns the magnitude the observer maps to the int8 code 127; the
// activation scale is clip/127. It is 0 when every activation was 0.
func (s *actStats) clip(o Observer, percentile float64) float64 {
	if s.absMax == 0 || s.count == 0 {
		return 0
	}
	var c float64
	switch o {
	case Percentile:
		c = s.percentile(percentile)
	case MSE:
		c = s.mseClip()
	default:
		c = float64(s.absMax)
	}
	// A percentile or MSE clip inside the first bin (almost every value
	// zero) would be pure histogram noise; the range is the safer answer.
	if c <= 0 {
		c = float64(s.absMax)
	}
	return min(c, float64(s.absMax))
}

// percentile returns the p-th percentile (0 < p <= 100) of the observed
// magnitudes, interpolating linearly inside the bin where the cumulative
// count reaches p% of all values.
func (s *actStats) percentile(p float64) float64 {
	target := p / 100 * s.count
	w := s.hi / histBins
	var cum float64
	for b, h := range s.hist {
		if h > 0 && cum+h >= target {
			return (float64(b) + (target-cum)/h) * w
		}
		cum += h
	}
	return float64(s.absMax)
}

// mseClip returns the clipping magnitude c (a bin edge) that minimises the
// expected squared error of symmetric int8 quantization with scale c/127:
// values below c are rounded, with the uniform rounding error
// (c/127)^2/12 each; values above are clipped to c, with error
// (|x|-c)^2, |x| taken at the bin centre. Suffix sums make it O(bins).
func (s *actStats) mseClip() float64 {
	w := s.hi / histBins
	// Suffix sums over bins b >= i of h, h*x and h*x^2 (x the bin centre).
	var sh, shx, shx2 float64
	suf := make([][3]float64, histBins+1)
	for b := histBins - 1; b >= 0; b-- {
		h := s.hist[b]
		x := (float64(b) + 0.5) * w
		sh += h
		shx += h * x
		shx2 += h * x * x
		suf[b] = [3]float64{sh, shx, shx2}
	}
	best, bestCost := float64(s.absMax), math.Inf(1)
	for e := 1; e <= histBins; e++ {
		c := float64(e) * w
		below := s.count - suf[e][0]
		d := c / int8Max
		cost := below*d*d/12 + suf[e][2] - 2*c*suf[e][1] + c*c*suf[e][0]
		if cost < bestCost {
			best, bestCost = c, cost
		}
	}
	return best
}

// observerLabel names an observer for metadata and reports.
func observerLabel(c CalibOptions) string {
	if c.Observer == Percentile {
		return fmt.Sprintf("percentile(%g)", c.Percentile)
	}
	return c.Observer.String()
}
