package gguf

import (
	"fmt"
	"math"
	"math/bits"

	"qinfer/host/backend"
)

// MaxDims is the most dimensions a GGUF tensor may have (GGML_MAX_DIMS).
const MaxDims = 4

// MaxTensorName is llama.cpp's limit on tensor name length in bytes
// (GGML_MAX_NAME minus its terminating NUL); the writer enforces it so
// that llama.cpp can read what we write.
const MaxTensorName = 63

// TensorInfo describes one tensor of a GGUF file.
type TensorInfo struct {
	Name string
	// Dims is ggml's ne: Dims[0] is the row length (the contiguous
	// dimension), Dims[1] the number of rows, and so on.
	Dims   []uint64
	Type   backend.DType
	Offset uint64 // relative to the start of the data section
}

// Elements returns the number of elements (1 for a tensor without
// dimensions, as in ggml). It saturates at MaxUint64 on overflow, which
// parsed and built tensors never reach.
func (t *TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 {
			return math.MaxUint64
		}
		n = lo
	}
	return n
}

// Rows returns the number of rows: the product of all dimensions but the
// first.
func (t *TensorInfo) Rows() uint64 {
	if len(t.Dims) == 0 {
		return 1
	}
	rest := TensorInfo{Dims: t.Dims[1:]}
	return rest.Elements()
}

// Bytes returns the size of the tensor's data.
func (t *TensorInfo) Bytes() (uint64, error) {
	return tensorBytes(t.Type, t.Dims)
}

// String describes the tensor for logs and errors.
func (t *TensorInfo) String() string {
	return fmt.Sprintf("%s %v %v @%d", t.Name, t.Type, t.Dims, t.Offset)
}

// tensorBytes computes the data size of a tensor of type typ and shape
// dims, rejecting types llama.cpp does not store in GGUF, rows that are
// not whole blocks, and sizes that overflow.
func tensorBytes(typ backend.DType, dims []uint64) (uint64, error) {
	if err := checkType(typ); err != nil {
		return 0, err
	}
	if len(dims) > MaxDims {
		return 0, fmt.Errorf("%d dimensions, at most %d allowed", len(dims), MaxDims)
	}
	// Every dimension and every partial product must fit in an int64:
	// ggml stores ne as int64.
	n := uint64(1)
	for i, d := range dims {
		if d > math.MaxInt64 {
			return 0, fmt.Errorf("dimension %d is %d, larger than int64", i, d)
		}
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("shape %v has more than 2^63 elements", dims)
		}
		n = lo
	}
	if n == 0 {
		return 0, nil
	}
	cols := uint64(1)
	if len(dims) > 0 {
		cols = dims[0]
	}
	if cols > math.MaxInt {
		return 0, fmt.Errorf("row of %d elements is too long", cols)
	}
	rowBytes, err := backend.RowBytes(typ, int(cols))
	if err != nil {
		return 0, err
	}
	hi, size := bits.Mul64(uint64(rowBytes), n/cols)
	if hi != 0 || size > math.MaxInt64 {
		return 0, fmt.Errorf("shape %v of %v is more than 2^63 bytes", dims, typ)
	}
	return size, nil
}

// checkType accepts the ggml tensor types qinfer knows. qinfer's own
// formats (>= 1000) are not GGUF types: they are stored as ordinary
// tensors plus qinfer.* metadata, so a file that names them is one
// llama.cpp could not read.
func checkType(typ backend.DType) error {
	if typ >= 1000 {
		return fmt.Errorf("tensor type %v (%d) is a qinfer format, not a GGUF type; store it as ordinary tensors with qinfer.* metadata", typ, uint32(typ))
	}
	if !typ.Known() {
		if name, ok := ggmlTypeNames[uint32(typ)]; ok {
			return fmt.Errorf("tensor type %s (%d) is not supported", name, uint32(typ))
		}
		return fmt.Errorf("unknown tensor type %d", uint32(typ))
	}
	return nil
}

// ggmlTypeNames names the ggml types qinfer does not support, so that an
// error says "IQ2_XXS" rather than a bare number.
var ggmlTypeNames = map[uint32]string{
	4: "Q4_2 (removed from ggml)", 5: "Q4_3 (removed from ggml)",
	16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL",
	21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 29: "IQ1_M",
	31: "Q4_0_4_4 (removed from ggml)", 32: "Q4_0_4_8 (removed from ggml)",
	33: "Q4_0_8_8 (removed from ggml)", 34: "TQ1_0", 35: "TQ2_0",
	36: "IQ4_NL_4_4 (removed from ggml)", 37: "IQ4_NL_4_8 (removed from ggml)",
	38: "IQ4_NL_8_8 (removed from ggml)", 39: "MXFP4",
}
