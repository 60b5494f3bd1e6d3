package backend

import (
	"errors"
	"fmt"
	"time"
)

// Tensor is a backend-owned 2-D tensor: a weight (quantized or float,
// resident from upload until Free) or an F32 activation (a reusable buffer,
// possibly a strided view of a larger one). A row is one token for
// activations and one output feature for weights; Cols is the inner
// (reduction) dimension of a weight.
type Tensor interface {
	DType() DType
	Rows() int
	Cols() int
}

// Weight is host data to upload once. Data is in GGUF layout: Rows rows of
// RowBytes(Type, Cols) bytes each. Row formats (W8, FP8, Ternary, Binary)
// carry one F32 scale per row in RowScales.
type Weight struct {
	Name      string
	Type      DType
	Rows      int
	Cols      int
	Data      []byte
	RowScales []float32
	// ActScale, when > 0, is a static (calibrated) activation scale for
	// the input of this weight: activations are quantized with it instead
	// of their own range. Row formats (W8, FP8, Ternary, Binary) use it.
	ActScale float32
	// OutlierCols, on a row format, lists the input columns (strictly
	// increasing, in [0, Cols)) that are multiplied in 16-bit float
	// instead of int8, LLM.int8()'s decomposition: their codes in Data are
	// those of a zero weight, the row scales come from the other columns,
	// the activations of these channels are left out of the int8
	// quantization, and OutlierW holds their weights as F16 bits, Rows x
	// len(OutlierCols), row-major (docs/formats.md). Empty: no split.
	OutlierCols []int32
	OutlierW    []uint16
}

// Validate checks that the data length agrees with type and shape.
func (w *Weight) Validate() error {
	if w.Rows <= 0 || w.Cols <= 0 {
		return fmt.Errorf("weight %s: shape %dx%d", w.Name, w.Rows, w.Cols)
	}
	rb, err := RowBytes(w.Type, w.Cols)
	if err != nil {
		return fmt.Errorf("weight %s: %w", w.Name, err)
	}
	if want := rb * w.Rows; len(w.Data) != want {
		return fmt.Errorf("weight %s: %v %dx%d needs %d bytes, have %d", w.Name, w.Type, w.Rows, w.Cols, want, len(w.Data))
	}
	if w.Type >= W8 && len(w.RowScales) != w.Rows {
		return fmt.Errorf("weight %s: %v needs %d row scales, have %d", w.Name, w.Type, w.Rows, len(w.RowScales))
	}
	return w.validateOutliers()
}

// validateOutliers checks the shape of the outlier columns; the values
// (finite F16, zero codes) are the row-format code's to check.
func (w *Weight) validateOutliers() error {
	k := len(w.OutlierCols)
	if k == 0 && len(w.OutlierW) == 0 {
		return nil
	}
	if w.Type < W8 {
		return fmt.Errorf("weight %s: outlier columns apply to row formats (W8, FP8_E4M3, TERNARY, BINARY), not %v", w.Name, w.Type)
	}
	if k > w.Cols {
		return fmt.Errorf("weight %s: %d outlier columns for rows of %d", w.Name, k, w.Cols)
	}
	if len(w.OutlierW) != k*w.Rows {
		return fmt.Errorf("weight %s: %d outlier columns of %d rows need %d F16 weights, have %d", w.Name, k, w.Rows, k*w.Rows, len(w.OutlierW))
	}
	prev := int32(-1)
	for i, c := range w.OutlierCols {
		if c <= prev || int(c) >= w.Cols {
			return fmt.Errorf("weight %s: outlier column %d is %d: want strictly increasing columns in [0, %d)", w.Name, i, c, w.Cols)
		}
		prev = c
	}
	return nil
}

// KVConfig sizes a KV cache: for every layer, for every sequence slot,
// Ctx positions of KVHeads*HeadDim keys and as many values.
type KVConfig struct {
	Layers  int
	Seqs    int
	Ctx     int
	KVHeads int
	HeadDim int
	Type    DType // F32 or F16 (F16 is llama.cpp's default, and ours)
}

// KVCache is a backend-owned key/value cache.
type KVCache interface {
	Config() KVConfig
}

// Batch holds one step's per-token inputs in backend memory, so that a
// captured step (a CUDA graph) reads them instead of freezing them as
// arguments. Token i of the batch has id IDs[i], sits at position Pos[i] of
// sequence Seq[i]; Outputs lists the batch rows whose logits are wanted.
type Batch interface {
	Cap() int
	Len() int
	OutputLen() int
}

// BatchInput is the host side of a Batch.
type BatchInput struct {
	IDs     []int32
	Pos     []int32
	Seq     []int32
	Outputs []int32
}

// CheckShape is what every backend's SetBatch checks, whatever the model:
// 1..capacity tokens, as many positions and sequence ids, no negative
// id, position or sequence, and output rows inside the batch. Validate
// checks the model's bounds on top.
func (b *BatchInput) CheckShape(capacity int) error {
	n := len(b.IDs)
	if n == 0 {
		return errors.New("no tokens")
	}
	if n > capacity {
		return fmt.Errorf("%d tokens exceed capacity %d", n, capacity)
	}
	if len(b.Pos) != n || len(b.Seq) != n {
		return fmt.Errorf("%d ids, %d positions, %d sequence ids", n, len(b.Pos), len(b.Seq))
	}
	if len(b.Outputs) > n {
		return fmt.Errorf("%d output rows for %d tokens", len(b.Outputs), n)
	}
	for i := 0; i < n; i++ {
		switch {
		case b.IDs[i] < 0:
			return fmt.Errorf("token %d has negative id %d", i, b.IDs[i])
		case b.Pos[i] < 0:
			return fmt.Errorf("token %d has negative position %d", i, b.Pos[i])
		case b.Seq[i] < 0:
			return fmt.Errorf("token %d has negative sequence id %d", i, b.Seq[i])
		}
	}
	for i, o := range b.Outputs {
		if o < 0 || int(o) >= n {
			return fmt.Errorf("output %d is row %d, outside batch of %d", i, o, n)
		}
	}
	return nil
}

// Validate checks lengths and ranges against a KV configuration and a
// vocabulary size.
func (b *BatchInput) Validate(kv KVConfig, vocab int) error {
	n := len(b.IDs)
	if n == 0 {
		return fmt.Errorf("batch: no tokens")
	}
	if len(b.Pos) != n || len(b.Seq) != n {
		return fmt.Errorf("batch: %d ids, %d positions, %d sequence ids", n, len(b.Pos), len(b.Seq))
	}
	for i := 0; i < n; i++ {
		if b.IDs[i] < 0 || int(b.IDs[i]) >= vocab {
			return fmt.Errorf("batch: token %d id %d outside vocabulary of %d", i, b.IDs[i], vocab)
		}
		if b.Pos[i] < 0 || int(b.Pos[i]) >= kv.Ctx {
			return fmt.Errorf("batch: token %d position %d outside context of %d", i, b.Pos[i], kv.Ctx)
		}
		if b.Seq[i] < 0 || int(b.Seq[i]) >= kv.Seqs {
			return fmt.Errorf("batch: token %d sequence %d outside %d slots", i, b.Seq[i], kv.Seqs)
		}
	}
	for _, o := range b.Outputs {
		if o < 0 || int(o) >= n {
			return fmt.Errorf("batch: output row %d outside batch of %d", o, n)
		}
	}
	return nil
}

// RoPE parameters. Neox selects the rotation of pairs (i, i+d/2) used by
// GPT-NeoX/Qwen2; otherwise adjacent pairs (2i, 2i+1) as in llama.cpp's
// LLaMA path.
type RoPE struct {
	HeadDim  int
	Heads    int
	FreqBase float32
	// FreqScale multiplies positions (linear scaling: 1/factor).
	FreqScale float32
	Neox      bool
}

// OpTiming is one op's accumulated time when profiling is on.
type OpTiming struct {
	Op    string
	Calls int
	Total time.Duration
	Bytes int64 // bytes read and written, for GB/s
	Ops   int64 // arithmetic operations (2 per multiply-add), for GOPS
}

// DeviceInfo describes what a backend runs on.
type DeviceInfo struct {
	Backend string // "cpu" or "cuda"
	Name    string
	Threads int     // CPU worker threads, 0 on GPU
	Memory  int64   // bytes of device memory, 0 for host memory
	PeakGBs float64 // measured or nominal peak bandwidth, 0 if unknown
}

// Backend is implemented by every compute backend. Every op may run
// asynchronously; Read and Synchronize wait for it. Activation arguments
// may be views; ops check shapes and return errors naming the op.
type Backend interface {
	Info() DeviceInfo

	// Memory.
	Upload(w *Weight) (Tensor, error)
	NewActivation(name string, rows, cols int) (Tensor, error)
	// View returns rows [row0,row0+rows) and columns [col0,col0+cols) of an
	// activation, sharing its memory.
	View(t Tensor, row0, rows, col0, cols int) (Tensor, error)
	NewKVCache(cfg KVConfig) (KVCache, error)
	NewBatch(capacity int) (Batch, error)
	SetBatch(b Batch, in *BatchInput) error
	Write(dst Tensor, src []float32) error
	Read(src Tensor, dst []float32) error
	Free(t any) error

	// Ops. dst may not alias an input unless the op says so.

	// MatMul: dst[t][n] = sum_k w[n][k] * x[t][k], x quantized as the
	// weight type requires (Q8_0 blocks for Q8_0/Q4_0/Q4_1/Q5_0/Q5_1, Q8_K
	// for K-quants, F16 for F16, per-token int8 for W8).
	MatMul(dst, w, x Tensor) error
	// Embed: dst[i] = dequantized row b.IDs[i] of table.
	Embed(dst, table Tensor, b Batch) error
	// RMSNorm: dst[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w. dst may be x.
	RMSNorm(dst, x, w Tensor, eps float32) error
	// ApplyRoPE rotates x in place: x[t] holds p.Heads heads of p.HeadDim,
	// at position b.Pos[t].
	ApplyRoPE(x Tensor, b Batch, p RoPE) error
	// Attention stores k[t], v[t] in the cache at (b.Seq[t], b.Pos[t]) of
	// layer, then dst[t] = softmax(q[t]·K^T * scale) V over positions
	// 0..b.Pos[t] of sequence b.Seq[t] (causal), per head, with grouped
	// query heads sharing KV heads.
	Attention(dst, q, k, v Tensor, cache KVCache, layer int, b Batch, scale float32) error
	// SiLUMul: dst = silu(gate) * up, elementwise. dst may be gate.
	SiLUMul(dst, gate, up Tensor) error
	// Add: dst = a + b; b may have one row, broadcast over a's rows. dst
	// may be a.
	Add(dst, a, b Tensor) error
	// Softmax over each row, in place.
	Softmax(x Tensor) error
	// GatherOutputs: dst[i] = src[b.Outputs[i]].
	GatherOutputs(dst, src Tensor, b Batch) error

	Synchronize() error
	// SetProfiling turns per-op timing on or off and clears the counters.
	SetProfiling(on bool)
	Profile() []OpTiming
	Close() error
}

// GraphCapturer is implemented by backends that can record a sequence of
// ops once and replay it (CUDA graphs). Inputs that change between replays
// must travel in a Batch.
type GraphCapturer interface {
	BeginCapture() error
	EndCapture() (Graph, error)
}

// Graph is a recorded op sequence.
type Graph interface {
	Launch() error
	Free() error
}

// CheckSameShape is a helper for implementations.
func CheckSameShape(op string, a, b Tensor) error {
	if a.Rows() != b.Rows() || a.Cols() != b.Cols() {
		return fmt.Errorf("%s: shape %dx%d does not match %dx%d", op, a.Rows(), a.Cols(), b.Rows(), b.Cols())
	}
	return nil
}
