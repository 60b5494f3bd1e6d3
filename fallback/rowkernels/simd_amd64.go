//go:build amd64 && !purego

package rowkernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Feature switches. Tests turn them off to run the same vectors on the
// next path down (AVX512-VNNI, then AVX2, then pure Go).
var (
	useAVX2 = hasAVX2
	useVNNI = hasVNNI
)

var (
	hasAVX2 = cpu.X86.HasAVX2
	// The VNNI kernels use VPDPBUSD on ZMM registers (AVX512-VNNI), EVEX
	// forms of AVX512F/VL instructions, and BZHI (BMI2) for store masks.
	hasVNNI = hasAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VNNI && cpu.X86.HasBMI2
)

func features() []string {
	var f []string
	if useAVX2 {
		f = append(f, "AVX2")
	}
	if useAVX2 && useVNNI {
		f = append(f, "AVX512-VNNI")
	}
	return f
}

// simdBlock is the number of columns the active int8 kernels consume per
// step (0: pure Go), and whether they take unsigned (offset) activations.
func simdBlock() (block int, unsigned bool) {
	switch {
	case useAVX2 && useVNNI:
		return 64, true
	case useAVX2:
		return 32, false
	}
	return 0, false
}

// dotTile runs the kernel for 4 weight rows (wstride apart) and nt tokens
// (1, 2 or 4; xstride apart) over nblk steps of simdBlock columns, writing
// out[t*4+r]. x is the signed or the unsigned activation copy, as
// simdBlock says.
func dotTile(w *int8, wstride int, x *int8, xstride int, nt, nblk int, out *[16]int32) {
	if useVNNI {
		xu := (*uint8)(unsafe.Pointer(x))
		switch nt {
		case 4:
			dotVNNIx4x4(w, wstride, xu, xstride, nblk, &out[0])
		case 2:
			dotVNNIx4x2(w, wstride, xu, xstride, nblk, &out[0])
		default:
			dotVNNIx4x1(w, wstride, xu, xstride, nblk, &out[0])
		}
		return
	}
	if nt == 2 {
		dotAVX2x4x2(w, wstride, x, xstride, nblk, &out[0])
		return
	}
	dotAVX2x4x1(w, wstride, x, xstride, nblk, &out[0])
}

// useTok16 reports whether the 16-row by 16-token VNNI kernel is on.
func useTok16() bool { return useAVX2 && useVNNI }

// tok16 runs gemmTok16VNNI (see there).
func tok16(w *int8, wstride int, tile []int8, ng int, wsum *[16]int32, ws *[16]float32, xs []float32, dst []float32, ldd, rows, ntok int) {
	gemmTok16VNNI(w, wstride, (*uint8)(unsafe.Pointer(&tile[0])), ng, &wsum[0], &ws[0], &xs[0], &dst[0], ldd, rows, ntok)
}

// maxTile is the most tokens one dotTile call takes.
func maxTile() int {
	if useVNNI {
		return 4
	}
	return 2
}

// absMaxBits returns the bits of max|x| (see absMaxBitsAVX2) over the
// prefix the SIMD kernel covers, and its length.
func absMaxBits(x []float32) (bits uint32, done int) {
	if !useAVX2 || len(x) < 8 {
		return 0, 0
	}
	n := len(x) / 8
	return absMaxBitsAVX2(&x[0], n), 8 * n
}

// quantPrefix quantizes the prefix of x the SIMD kernel covers and returns
// its length.
func quantPrefix(x []float32, id float32, q []int8) int {
	if !useAVX2 || len(x) < 32 {
		return 0
	}
	n := len(x) / 32
	quantI8AVX2(&x[0], n, id, &q[0])
	return 32 * n
}

// outlierDot adds the float side product of one 8-row block to nt (1, 2
// or 4) tokens' rows of dst, ldd floats apart (see outlierDotGo).
func outlierDot(w []float32, k int, x []float32, nt int, dst []float32, ldd int) {
	_ = dst[(nt-1)*ldd+7] // the kernel writes 8 floats of each row
	if !useAVX2 {
		outlierDotGo(w, k, x, nt, dst, ldd)
		return
	}
	switch nt {
	case 4:
		outlierDotAVX2x4(&w[0], k, &x[0], 4*k, &dst[0], 4*ldd)
	case 2:
		outlierDotAVX2x2(&w[0], k, &x[0], 4*k, &dst[0], 4*ldd)
	default:
		outlierDotAVX2x1(&w[0], k, &x[0], 4*k, &dst[0], 4*ldd)
	}
}
