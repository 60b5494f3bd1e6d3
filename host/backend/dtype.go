// Package backend defines the interface every compute backend (CPU, CUDA,
// later OpenGL) implements, and the tensor types they share. It holds no
// implementation: host/model is written against it, and host/engine picks
// the implementation.
package backend

import "fmt"

// DType is a tensor element type. Values below 1000 are ggml's own type
// numbers (so a GGUF tensor's type field converts directly); qinfer's own
// formats, which GGUF lacks, start at 1000 and are stored in GGUF as
// ordinary tensors plus `qinfer.` metadata (docs/formats.md).
type DType uint32

// ggml type numbers, as written in GGUF tensor infos.
const (
	F32  DType = 0
	F16  DType = 1
	Q4_0 DType = 2
	Q4_1 DType = 3
	Q5_0 DType = 6
	Q5_1 DType = 7
	Q8_0 DType = 8
	Q8_1 DType = 9
	Q2_K DType = 10
	Q3_K DType = 11
	Q4_K DType = 12
	Q5_K DType = 13
	Q6_K DType = 14
	Q8_K DType = 15
	I8   DType = 24
	I16  DType = 25
	I32  DType = 26
	I64  DType = 27
	F64  DType = 28
	BF16 DType = 30
)

// qinfer's own weight formats (per-output-row scales).
const (
	W8      DType = 1000 // int8 per row, symmetric, F32 scale per row
	FP8     DType = 1001 // FP8 E4M3 per row, F32 scale per row
	Ternary DType = 1002 // {-1,0,+1} per row, F32 scale per row (BitNet b1.58)
	Binary  DType = 1003 // sign per row, F32 scale per row
)

// Traits describes how a type packs elements into blocks.
type Traits struct {
	Name      string
	BlockSize int // elements per block
	TypeSize  int // bytes per block
	Quantized bool
}

var traits = map[DType]Traits{
	F32:  {"F32", 1, 4, false},
	F16:  {"F16", 1, 2, false},
	BF16: {"BF16", 1, 2, false},
	F64:  {"F64", 1, 8, false},
	I8:   {"I8", 1, 1, false},
	I16:  {"I16", 1, 2, false},
	I32:  {"I32", 1, 4, false},
	I64:  {"I64", 1, 8, false},
	Q4_0: {"Q4_0", 32, 18, true},
	Q4_1: {"Q4_1", 32, 20, true},
	Q5_0: {"Q5_0", 32, 22, true},
	Q5_1: {"Q5_1", 32, 24, true},
	Q8_0: {"Q8_0", 32, 34, true},
	Q8_1: {"Q8_1", 32, 36, true},
	Q2_K: {"Q2_K", 256, 84, true},
	Q3_K: {"Q3_K", 256, 110, true},
	Q4_K: {"Q4_K", 256, 144, true},
	Q5_K: {"Q5_K", 256, 176, true},
	Q6_K: {"Q6_K", 256, 210, true},
	Q8_K: {"Q8_K", 256, 292, true},
	// qinfer row formats: a row is the elements followed by nothing; the
	// per-row F32 scales live in a separate array (see RowBytes).
	W8:      {"W8", 1, 1, true},
	FP8:     {"FP8_E4M3", 1, 1, true},
	Ternary: {"TERNARY", 4, 1, true}, // 2 bits per weight
	Binary:  {"BINARY", 8, 1, true},  // 1 bit per weight
}

// TraitsOf returns the block traits of t, or an error naming t.
func TraitsOf(t DType) (Traits, error) {
	tr, ok := traits[t]
	if !ok {
		return Traits{}, fmt.Errorf("unknown tensor type %d", uint32(t))
	}
	return tr, nil
}

func (t DType) String() string {
	if tr, ok := traits[t]; ok {
		return tr.Name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// Known reports whether t is a type qinfer can store.
func (t DType) Known() bool { _, ok := traits[t]; return ok }

// RowBytes returns the bytes one row of cols elements occupies, or an
// error when cols is not a whole number of blocks.
func RowBytes(t DType, cols int) (int, error) {
	tr, err := TraitsOf(t)
	if err != nil {
		return 0, err
	}
	if cols <= 0 || cols%tr.BlockSize != 0 {
		return 0, fmt.Errorf("%v: row of %d elements is not a multiple of the block size %d", t, cols, tr.BlockSize)
	}
	return cols / tr.BlockSize * tr.TypeSize, nil
}

// ParseDType maps a type name (case-insensitive, as printed by String) to
// its DType.
func ParseDType(name string) (DType, error) {
	for t, tr := range traits {
		if equalFold(tr.Name, name) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown tensor type %q", name)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
