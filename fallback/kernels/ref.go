package kernels

import (
	"qinfer/host/backend"
	"qinfer/host/quant"
)

// refDot is the reference dot product, used for weight types without a
// kernel here.
func refDot(wt backend.DType, n int, w, x []byte) (float32, error) {
	return quant.VecDot(wt, n, w, x)
}
