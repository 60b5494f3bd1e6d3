package kernels

import "fmt"

// Param is the kind of a kernel parameter. Every parameter travels in an
// 8-byte slot: pointers and Int as 64-bit values, Float in the slot's
// first 4 bytes (see cuda's argument marshalling).
type Param byte

const (
	Ptr   Param = 'P' // a device pointer (.param .u64)
	Int   Param = 'I' // a long long (.param .u64)
	Float Param = 'F' // a float (.param .f32)
)

// Kernel is one entry point of a module.
type Kernel struct {
	Module  string
	Name    string
	Threads int     // threads per block, the kernel's __launch_bounds__
	Params  []Param // in order
}

func (k *Kernel) String() string { return k.Module + "." + k.Name }

var all []*Kernel

// def declares a kernel; sig spells its parameters, one letter per Param.
func def(module, name string, threads int, sig string) *Kernel {
	k := &Kernel{Module: module, Name: name, Threads: threads}
	for _, c := range sig {
		switch Param(c) {
		case Ptr, Int, Float:
			k.Params = append(k.Params, Param(c))
		default:
			panic(fmt.Sprintf("kernels: %s: bad parameter letter %q", name, c))
		}
	}
	all = append(all, k)
	return k
}

// All returns every kernel the backend may launch.
func All() []*Kernel { return append([]*Kernel(nil), all...) }

// Activation quantization (quantize.cu).
var (
	QuantQ8_0 = def("quantize", "qi_quant_q8_0", 256, "PIIIPP")
	QuantQ8_K = def("quantize", "qi_quant_q8_k", 256, "PIIPPP")
	// QuantW8: (x, ldx, cols, kpad, act_scale, omask, ocols, nout, xo,
	// ldxo, xq, xd); omask, ocols and xo 0 and nout 0 for a weight
	// without outlier columns.
	QuantW8    = def("quantize", "qi_quant_w8", 256, "PIIIFPPIPIPP")
	ConvertF16 = def("quantize", "qi_convert_f16", 256, "PIIIP")
	ConvertF32 = def("quantize", "qi_convert_f32", 256, "PIIIP")
)

// GEMVTokens are the token counts the GEMV kernels are compiled for; a
// batch of n tokens uses the smallest that holds it.
var GEMVTokens = []int{1, 2, 4, 8}

// GEMV kernels (gemv.cu), indexed like GEMVTokens.
var (
	GemvQ8_0 = gemv("q8_0", "PPPPPIIIII")
	GemvQ4_0 = gemv("q4_0", "PPPPPIIIII")
	GemvQ4_K = gemv("q4_k", "PPPPPPPIIII")
	GemvQ5_K = gemv("q5_k", "PPPPPPPPIIII")
	GemvQ6_K = gemv("q6_k", "PPPPPPPPIIII")
	GemvW8   = gemv("w8", "PPPPPIIIII")
	GemvF16  = gemv("f16", "PPPIIII")
	GemvF32  = gemv("f32", "PPPIIII")

	// One and four weight rows per warp (the others use two), for the
	// benchmark that tunes the default.
	GemvQ8_0R1 = def("gemv", "qi_gemv_q8_0_t1_r1", 256, "PPPPPIIIII")
	GemvQ8_0R4 = def("gemv", "qi_gemv_q8_0_t1_r4", 256, "PPPPPIIIII")
)

// GemvRows is the number of weight rows a GEMV block covers (8 warps of
// two rows; the R1 and R4 variants cover 8 and 32).
const GemvRows = 16

func gemv(format, sig string) []*Kernel { return gemvIn("gemv", format, sig) }

func gemvIn(module, format, sig string) []*Kernel {
	ks := make([]*Kernel, len(GEMVTokens))
	for i, n := range GEMVTokens {
		ks[i] = def(module, fmt.Sprintf("qi_gemv_%s_t%d", format, n), 256, sig)
	}
	return ks
}

// GEMM kernels (gemm.cu). The block-scaled ones share one parameter list:
// (wq, wqh, wsc, wsb, xq, xd, xbs, y, ldy, rows, cols, kpad, ntok).
var (
	GemmQ8_0 = def("gemm", "qi_gemm_q8_0", 256, "PPPPPPPPIIIII")
	GemmQ4_0 = def("gemm", "qi_gemm_q4_0", 256, "PPPPPPPPIIIII")
	GemmQ4_K = def("gemm", "qi_gemm_q4_k", 256, "PPPPPPPPIIIII")
	GemmQ5_K = def("gemm", "qi_gemm_q5_k", 256, "PPPPPPPPIIIII")
	GemmQ6_K = def("gemm", "qi_gemm_q6_k", 256, "PPPPPPPPIIIII")
	GemmW8   = def("gemm", "qi_gemm_w8", 256, "PPPPPIIIII")
	// GemmW8M64 covers 64 rows per block, for when 128-row blocks would
	// leave multiprocessors idle.
	GemmW8M64 = def("gemm", "qi_gemm_w8_m64", 256, "PPPPPIIIII")
	GemmF16   = def("gemm", "qi_gemm_f16", 256, "PPPIIII")
	GemmF32   = def("gemm", "qi_gemm_f32", 256, "PPPIIII")
)

// GEMM tile sizes (rows x tokens) of the kernels above.
const (
	GemmBlockRows     = 128 // block-scaled formats, W8, TERNARY, BINARY
	GemmW8SmallRows   = 64  // GemmW8M64, GemmTernaryM64, GemmBinaryM64
	GemmBlockTokens   = 64  // block-scaled formats
	GemmW8BlockTokens = 128 // W8, TERNARY, BINARY
	GemmFloatTile     = 64  // F16, F32: 64 x 64
	GemmK             = 64  // k per stage: kpad must be a multiple
)

// Row-wise and elementwise ops, dequantization (ops.cu).
var (
	RMSNorm     = def("ops", "qi_rmsnorm", 256, "PIPIPIIF")
	RoPE        = def("ops", "qi_rope", 128, "PIPIIFFI")
	SiLUMul     = def("ops", "qi_silu_mul", 256, "PIPIPII")
	Add         = def("ops", "qi_add", 256, "PIPIPII")
	Softmax     = def("ops", "qi_softmax", 256, "PII")
	GatherRows  = def("ops", "qi_gather_rows", 256, "PIIPPPIIP")
	DequantF    = def("ops", "qi_dequant_float", 256, "PIPPIIIIP")
	DequantQ8_0 = def("ops", "qi_dequant_q8_0", 256, "PPPPIIIIP")
	DequantQ4_0 = def("ops", "qi_dequant_q4_0", 256, "PPPPIIIIP")
	DequantK4   = def("ops", "qi_dequant_k4", 256, "PPPPPPIIIP")
	DequantQ6_K = def("ops", "qi_dequant_q6_k", 256, "PPPPPPIIIP")
	DequantW8   = def("ops", "qi_dequant_w8", 256, "PPPPIIIIP")
)

// The packed row formats FP8 E4M3, TERNARY and BINARY (rowfmt.cu). All
// take W8's parameter lists: GEMV and GEMM (wq, ws, xq, xd, y, ldy, rows,
// cols, kpad, ntok), dequantization (wq, ws, ids, y, ldy, rows, cols,
// kpad, status); their activations are qi_quant_w8's.
var (
	GemvFP8     = gemvIn("rowfmt", "fp8", "PPPPPIIIII")
	GemvTernary = gemvIn("rowfmt", "ternary", "PPPPPIIIII")
	GemvBinary  = gemvIn("rowfmt", "binary", "PPPPPIIIII")

	GemmFP8     = def("rowfmt", "qi_gemm_fp8", 256, "PPPPPIIIII")
	GemmTernary = def("rowfmt", "qi_gemm_ternary", 256, "PPPPPIIIII")
	GemmBinary  = def("rowfmt", "qi_gemm_binary", 256, "PPPPPIIIII")
	// The M64 variants cover 64 rows per block, as GemmW8M64.
	GemmTernaryM64 = def("rowfmt", "qi_gemm_ternary_m64", 256, "PPPPPIIIII")
	GemmBinaryM64  = def("rowfmt", "qi_gemm_binary_m64", 256, "PPPPPIIIII")

	DequantFP8     = def("rowfmt", "qi_dequant_fp8", 256, "PPPPIIIIP")
	DequantTernary = def("rowfmt", "qi_dequant_ternary", 256, "PPPPIIIIP")
	DequantBinary  = def("rowfmt", "qi_dequant_binary", 256, "PPPPIIIIP")
)

// LLM.int8() outlier columns of split row-format weights (outliers.cu):
// the float part added after the int8 product, (xo, ldxo, ow, k, ldo, y,
// ldy, rows, ntok) with xo the outlier values QuantW8 copied, and the
// outlier columns of dequantized rows, (ids, ocols, ow, k, ldo, y, ldy,
// rows), after the format's dequantization.
var (
	OutlierAdd      = def("outliers", "qi_outlier_add", OutlierRows, "PIPIIPIII")
	DequantOutliers = def("outliers", "qi_dequant_outliers", 256, "PPPIIPII")
)

// OutlierAdd's grid: a block of OutlierRows threads covers OutlierRows
// rows x OutlierTokens tokens. The weights' row stride (ldo) is a
// multiple of OutlierRows and the outlier values' (ldxo) a multiple of
// OutlierTokens.
const (
	OutlierRows   = 64
	OutlierTokens = 8
)

// GEMM tiles of the FP8 kernel: its three digit planes take three times
// the shared memory of a W8 tile per row, so it covers 64 rows x 64
// tokens. TERNARY and BINARY use the W8 tiles (GemmBlockRows or
// GemmW8SmallRows x GemmW8BlockTokens).
const (
	GemmFP8Rows   = 64
	GemmFP8Tokens = 64
)

// Attention (attention.cu).
var (
	KVStore     = def("attention", "qi_kv_store", 256, "PIPIPPPPIIIIP")
	AttnScores  = def("attention", "qi_attn_scores", 128, "PIPPPPIIIIIIIF")
	AttnSoftmax = def("attention", "qi_attn_softmax", 256, "PPPIIII")
	AttnPV      = def("attention", "qi_attn_pv", 256, "PPPPPIIIIIIIII")
)

// Attention score modes (qi_attn_scores' mode), after the CPU's choice of
// dot product.
const (
	KQVecF16  = 0
	KQTinyF16 = 1
	KQVecF32  = 2
)

// AttnPositionsPerBlock is qi_attn_scores' block of positions.
const AttnPositionsPerBlock = 128

// MaxHeadDim is the largest head dimension the attention kernels hold in
// shared memory.
const MaxHeadDim = 256

// Status codes kernels record in the backend's status word (common.cuh).
const (
	StatusTokenID   = 1 // token, id, rows
	StatusPosition  = 2 // token, position, context
	StatusSequence  = 3 // token, sequence, slots
	StatusOutputRow = 4 // output index, row, tokens
)
