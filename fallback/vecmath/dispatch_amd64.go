//go:build amd64 && !purego

package vecmath

import "golang.org/x/sys/cpu"

// useAVX2 switches the assembly kernels, which need AVX2, FMA and F16C
// (present together on every AVX2 CPU in practice but reported
// separately). Tests turn it off to run the same vectors in pure Go.
var useAVX2 = hasAVX2

var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

func expSum(y, x []float32, sub float32) float64 {
	if useAVX2 && len(x) > 0 {
		return expSumAVX2(&y[0], &x[0], len(x), sub)
	}
	return expSumGeneric(y, x, sub)
}

func silu(y, x []float32) {
	if useAVX2 && len(x) > 0 {
		siluAVX2(&y[0], &x[0], len(x))
		return
	}
	siluGeneric(y, x)
}

func siluMul(y, x, u []float32) {
	if useAVX2 && len(x) > 0 {
		siluMulAVX2(&y[0], &x[0], &u[0], len(x))
		return
	}
	siluMulGeneric(y, x, u)
}

func roundF16(y, x []float32) {
	if useAVX2 && len(x) > 0 {
		roundF16AVX2(&y[0], &x[0], len(x))
		return
	}
	roundF16Generic(y, x)
}

func toF16(h []uint16, x []float32) {
	if useAVX2 && len(x) > 0 {
		toF16AVX2(&h[0], &x[0], len(x))
		return
	}
	toF16Generic(h, x)
}

func dotsF16(dst []float32, k []uint16, kstride int, q []float32, scale float32, tiny bool) {
	hd := len(q)
	switch {
	case useAVX2 && tiny:
		dotsTinyF16AVX2(&dst[0], &k[0], 2*kstride, len(dst), &q[0], hd, scale)
	case useAVX2 && hd%32 == 0:
		dotsVecF16AVX2(&dst[0], &k[0], 2*kstride, len(dst), &q[0], hd, scale)
	default:
		dotsF16Generic(dst, k, kstride, q, scale, tiny)
	}
}

func axpyLanesF16(acc []float32, lanes int, v []uint16, vstride int, p []float32, hd int) {
	if useAVX2 && hd%8 == 0 {
		axpyLanesF16AVX2(&acc[0], lanes, &v[0], 2*vstride, len(p), &p[0], hd)
		return
	}
	axpyLanesF16Generic(acc, lanes, v, vstride, p, hd)
}

func reduceLanes(out, acc []float32, lanes int) {
	hd := len(out)
	switch {
	case useAVX2 && hd%8 == 0 && lanes == 8:
		reduceLanes8AVX2(&out[0], &acc[0], hd)
	case useAVX2 && hd%8 == 0:
		reduceLanes32AVX2(&out[0], &acc[0], hd)
	default:
		reduceLanesGeneric(out, acc, lanes)
	}
}

func rotatePairs(x, cache []float32) {
	hd := len(cache)
	if useAVX2 && hd%8 == 0 {
		ropePairsAVX2(&x[0], &cache[0], hd, len(x)/hd)
		return
	}
	for h := 0; h+hd <= len(x); h += hd {
		rotatePairsGeneric(x[h:h+hd], cache)
	}
}

func rotateHalves(x, cos, sin []float32) {
	half := len(cos)
	if useAVX2 && half%8 == 0 {
		ropeHalvesAVX2(&x[0], &cos[0], &sin[0], half, len(x)/(2*half))
		return
	}
	for h := 0; h+2*half <= len(x); h += 2 * half {
		rotateHalvesGeneric(x[h:h+2*half], cos, sin)
	}
}
