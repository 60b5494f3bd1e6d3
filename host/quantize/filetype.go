package quantize

import (
	"fmt"
	"strings"

	"qinfer/host/backend"
)

// FileType is what `--type` names: one of llama.cpp's file types (a
// default tensor type plus llama-quantize's per-tensor rules) or one of
// qinfer's row formats.
type FileType struct {
	// Name is the canonical name, as llama-quantize prints it for
	// llama.cpp types ("Q4_K_M") and as backend.DType prints it for row
	// formats ("W8", "FP8_E4M3", "TERNARY", "BINARY").
	Name string
	// Default is the type most tensors get.
	Default backend.DType
	// LlamaFType is general.file_type (llama.cpp's llama_ftype), or -1
	// for qinfer's row formats, which llama.cpp cannot read.
	LlamaFType int
	mix        kMix
}

// kMix names llama.cpp's K-quant mixes, whose rules raise some tensors
// (attn_v, ffn_down) above the default type.
type kMix int

const (
	mixNone kMix = iota
	mixS         // Q4_K_S, Q5_K_S
	mixM         // Q4_K_M, Q5_K_M
)

// llama.cpp's llama_ftype values (llama.h).
const (
	ftypeAllF32 = 0
	ftypeF16    = 1
	ftypeQ4_0   = 2
	ftypeQ4_1   = 3
	ftypeQ8_0   = 7
	ftypeQ5_0   = 8
	ftypeQ5_1   = 9
	ftypeQ4_K_S = 14
	ftypeQ4_K_M = 15
	ftypeQ5_K_S = 16
	ftypeQ5_K_M = 17
	ftypeQ6_K   = 18
	ftypeBF16   = 32
)

// fileTypes lists the supported types. llama.cpp's Q2_K and Q3_K mixes are
// missing on purpose: their fallback for rows that are not a multiple of
// 256 is IQ4_NL, which qinfer cannot write, so the result could not match
// llama-quantize's.
var fileTypes = []FileType{
	{Name: "F32", Default: backend.F32, LlamaFType: ftypeAllF32},
	{Name: "F16", Default: backend.F16, LlamaFType: ftypeF16},
	{Name: "BF16", Default: backend.BF16, LlamaFType: ftypeBF16},
	{Name: "Q8_0", Default: backend.Q8_0, LlamaFType: ftypeQ8_0},
	{Name: "Q4_0", Default: backend.Q4_0, LlamaFType: ftypeQ4_0},
	{Name: "Q4_1", Default: backend.Q4_1, LlamaFType: ftypeQ4_1},
	{Name: "Q5_0", Default: backend.Q5_0, LlamaFType: ftypeQ5_0},
	{Name: "Q5_1", Default: backend.Q5_1, LlamaFType: ftypeQ5_1},
	{Name: "Q4_K_S", Default: backend.Q4_K, LlamaFType: ftypeQ4_K_S, mix: mixS},
	{Name: "Q4_K_M", Default: backend.Q4_K, LlamaFType: ftypeQ4_K_M, mix: mixM},
	{Name: "Q5_K_S", Default: backend.Q5_K, LlamaFType: ftypeQ5_K_S, mix: mixS},
	{Name: "Q5_K_M", Default: backend.Q5_K, LlamaFType: ftypeQ5_K_M, mix: mixM},
	{Name: "Q6_K", Default: backend.Q6_K, LlamaFType: ftypeQ6_K},
	{Name: "W8", Default: backend.W8, LlamaFType: -1},
	{Name: "FP8_E4M3", Default: backend.FP8, LlamaFType: -1},
	{Name: "TERNARY", Default: backend.Ternary, LlamaFType: -1},
	{Name: "BINARY", Default: backend.Binary, LlamaFType: -1},
}

// typeAliases are the other names llama-quantize (and common usage)
// accept for the same file types.
var typeAliases = map[string]string{
	"Q4_K": "Q4_K_M", // llama-quantize: "Q4_K: alias for Q4_K_M"
	"Q5_K": "Q5_K_M",
	"FP8":  "FP8_E4M3",
	"FP32": "F32",
	"FP16": "F16",
}

// tensorAliases are the other names of tensor types.
var tensorAliases = map[string]string{"FP8": "FP8_E4M3", "FP32": "F32", "FP16": "F16"}

// ParseFileType maps a --type name (case-insensitive) to its FileType.
func ParseFileType(name string) (FileType, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if a, ok := typeAliases[n]; ok {
		n = a
	}
	for _, ft := range fileTypes {
		if ft.Name == n {
			return ft, nil
		}
	}
	return FileType{}, fmt.Errorf("unknown quantization type %q (known: %s)", name, strings.Join(FileTypeNames(), ", "))
}

// FileTypeNames lists the canonical --type names.
func FileTypeNames() []string {
	names := make([]string, len(fileTypes))
	for i, ft := range fileTypes {
		names[i] = ft.Name
	}
	return names
}

// quantized reports whether llama.cpp counts t as quantized
// (ggml_is_quantized): only then does llama-quantize apply its per-tensor
// rules.
func quantized(t backend.DType) bool {
	tr, err := backend.TraitsOf(t)
	return err == nil && tr.Quantized
}

// blockSize is the number of elements per block of t (1 for unknown types,
// which no caller passes).
func blockSize(t backend.DType) int {
	tr, err := backend.TraitsOf(t)
	if err != nil {
		return 1
	}
	return tr.BlockSize
}

// parseTensorType maps a --keep or --ladder type name to a tensor type:
// any GGUF type qinfer can quantize to, or a row format.
func parseTensorType(name string) (backend.DType, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if a, ok := tensorAliases[n]; ok {
		n = a
	}
	t, err := backend.ParseDType(n)
	if err != nil {
		return 0, fmt.Errorf("unknown tensor type %q (known: %s)", name, strings.Join(tensorTypeNames(), ", "))
	}
	if !writable(t) {
		return 0, fmt.Errorf("tensor type %v cannot be written by qinfer quantize (known: %s)", t, strings.Join(tensorTypeNames(), ", "))
	}
	return t, nil
}

// writableTypes are the tensor types the pipeline can produce.
var writableTypes = []backend.DType{
	backend.F32, backend.F16, backend.BF16,
	backend.Q8_0, backend.Q4_0, backend.Q4_1, backend.Q5_0, backend.Q5_1,
	backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K,
	backend.W8, backend.FP8, backend.Ternary, backend.Binary,
}

func writable(t backend.DType) bool {
	for _, w := range writableTypes {
		if w == t {
			return true
		}
	}
	return false
}

func tensorTypeNames() []string {
	out := make([]string, len(writableTypes))
	for i, t := range writableTypes {
		out[i] = t.String()
	}
	return out
}
