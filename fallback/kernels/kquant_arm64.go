//go:build !purego

package kernels

// K-quant rows against one Q8_K activation row (kquant_arm64.s), in the
// AVX2 kernels' float order: each sets dst[r] = dot(row r, x) for rows
// rows of nb super-blocks, wstride bytes apart. The SDOT versions need
// FEAT_DotProd.

//go:noescape
func gemvQ4KSDOT(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)

//go:noescape
func gemvQ4KASIMD(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)

//go:noescape
func gemvQ5KSDOT(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)

//go:noescape
func gemvQ5KASIMD(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)

//go:noescape
func gemvQ6KSDOT(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)

//go:noescape
func gemvQ6KASIMD(w *byte, wstride int, rows int, x *byte, nb int, dst *float32)

var (
	q4KGEMV = [2]kernel{rowsGEMV(gemvQ4KASIMD, qkK), rowsGEMV(gemvQ4KSDOT, qkK)}
	q5KGEMV = [2]kernel{rowsGEMV(gemvQ5KASIMD, qkK), rowsGEMV(gemvQ5KSDOT, qkK)}
	q6KGEMV = [2]kernel{rowsGEMV(gemvQ6KASIMD, qkK), rowsGEMV(gemvQ6KSDOT, qkK)}
)
