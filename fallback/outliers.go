package fallback

import "qinfer/host/quant"

// outlierRow overwrites the outlier columns of row r of a split
// row-format weight, dequantized into dst (w.cols values) from its codes,
// with their F16 weights: the codes there are those of a zero weight.
// Rows of other weights are left alone.
func outlierRow(w *weightTensor, r int, dst []float32) {
	if w.rowm == nil {
		return
	}
	ocols := w.rowm.OutlierCols()
	k := len(ocols)
	for j, c := range ocols {
		dst[c] = quant.FP16ToFP32(w.outlierW[r*k+j])
	}
}
