//go:build !amd64 || purego

package vecmath

// useAVX2 is always false here; the tests set it on amd64 only.
var useAVX2 = false

func expSum(y, x []float32, sub float32) float64 { return expSumGeneric(y, x, sub) }
func silu(y, x []float32)                        { siluGeneric(y, x) }
func siluMul(y, x, u []float32)                  { siluMulGeneric(y, x, u) }
func roundF16(y, x []float32)                    { roundF16Generic(y, x) }
func toF16(h []uint16, x []float32)              { toF16Generic(h, x) }

func dotsF16(dst []float32, k []uint16, kstride int, q []float32, scale float32, tiny bool) {
	dotsF16Generic(dst, k, kstride, q, scale, tiny)
}

func axpyLanesF16(acc []float32, lanes int, v []uint16, vstride int, p []float32, hd int) {
	axpyLanesF16Generic(acc, lanes, v, vstride, p, hd)
}

func reduceLanes(out, acc []float32, lanes int) { reduceLanesGeneric(out, acc, lanes) }

func rotatePairs(x, cache []float32) {
	hd := len(cache)
	for h := 0; h+hd <= len(x); h += hd {
		rotatePairsGeneric(x[h:h+hd], cache)
	}
}

func rotateHalves(x, cos, sin []float32) {
	half := len(cos)
	for h := 0; h+2*half <= len(x); h += 2 * half {
		rotateHalvesGeneric(x[h:h+2*half], cos, sin)
	}
}
