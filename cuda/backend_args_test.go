package cuda

import (
	"encoding/binary"
	"math"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/kernels"
)

// TestArgsMarshalling checks the 8-byte slots as the driver reads them: a
// parameter of size n is the first n bytes at params[i].
func TestArgsMarshalling(t *testing.T) {
	var a args
	a.reset().ptr(0x7f00_0000_1000).i64(-3).f32(-1.5).i64(1 << 40)
	require.NoError(t, a.check(&kernels.Kernel{Name: "k", Params: []kernels.Param{kernels.Ptr, kernels.Int, kernels.Float, kernels.Int}}))
	require.Equal(t, 4, a.n)
	read := func(i, n int) []byte { return unsafe.Slice((*byte)(a.params[i]), n) }
	assert.Equal(t, uint64(0x7f00_0000_1000), binary.LittleEndian.Uint64(read(0, 8)))
	assert.Equal(t, int64(-3), int64(binary.LittleEndian.Uint64(read(1, 8))))
	assert.Equal(t, float32(-1.5), math.Float32frombits(binary.LittleEndian.Uint32(read(2, 4))))
	assert.Equal(t, int64(1<<40), int64(binary.LittleEndian.Uint64(read(3, 8))))
	// Each parameter has its own slot.
	for i := 0; i < a.n; i++ {
		assert.Equal(t, unsafe.Pointer(&a.slots[i]), a.params[i])
	}

	// reset starts over.
	a.reset().f32(2)
	assert.Equal(t, 1, a.n)
	assert.Equal(t, float32(2), math.Float32frombits(uint32(a.slots[0])))
}

func TestArgsCheck(t *testing.T) {
	k := kernels.QuantQ8_0 // PIIIPP
	var a args
	a.reset().ptr(1).i64(2).i64(3).i64(4).ptr(5).ptr(6)
	assert.NoError(t, a.check(k))
	a.reset().ptr(1).i64(2).i64(3).i64(4).ptr(5)
	assert.ErrorContains(t, a.check(k), "qi_quant_q8_0: 5 arguments for 6 parameters")
	a.reset().ptr(1).i64(2).f32(3).i64(4).ptr(5).ptr(6)
	assert.ErrorContains(t, a.check(k), "argument 2 is F, the parameter is I")
	a.reset()
	for i := 0; i < maxArgs+1; i++ {
		a.i64(i)
	}
	assert.ErrorContains(t, a.check(k), "more than 16 kernel arguments")
}

// TestKernelsFitArgs: every kernel's parameters fit the marshalling.
func TestKernelsFitArgs(t *testing.T) {
	for _, k := range kernels.All() {
		assert.LessOrEqual(t, len(k.Params), maxArgs, k.Name)
	}
}

func TestCdiv(t *testing.T) {
	assert.Equal(t, uint32(1), cdiv(0, 16))
	assert.Equal(t, uint32(1), cdiv(16, 16))
	assert.Equal(t, uint32(2), cdiv(17, 16))
	assert.Equal(t, uint32(3), cdiv(33, 16))
}

func TestGemvIndex(t *testing.T) {
	for n, want := range map[int]int{1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 8: 3} {
		assert.Equal(t, want, gemvIndex(n), "%d tokens", n)
		assert.GreaterOrEqual(t, kernels.GEMVTokens[gemvIndex(n)], n)
	}
}

// TestBatchPacking checks the device image of a batch: a header with the
// token and output counts, then ids, positions, sequences and outputs,
// each capacity long.
func TestBatchPacking(t *testing.T) {
	bt := &batch{capacity: 5, host: make([]int32, batchHeader+4*5), buf: 0x1000}
	in := &backend.BatchInput{IDs: []int32{7, 8, 9}, Pos: []int32{0, 1, 2}, Seq: []int32{1, 1, 0}, Outputs: []int32{2}}
	require.NoError(t, checkBatchInput(bt.capacity, in))
	bt.host[0], bt.host[1] = 3, 1
	copy(bt.hostArr(0), in.IDs)
	copy(bt.hostArr(1), in.Pos)
	copy(bt.hostArr(2), in.Seq)
	copy(bt.hostArr(3), in.Outputs)
	want := make([]int32, batchHeader+20)
	want[0], want[1] = 3, 1
	copy(want[batchHeader:], []int32{7, 8, 9, 0, 0, 0, 1, 2, 0, 0, 1, 1, 0, 0, 0, 2, 0, 0, 0, 0})
	assert.Equal(t, want, bt.host)
	assert.Equal(t, DevicePtr(0x1000+4*batchHeader), bt.ids())
	assert.Equal(t, DevicePtr(0x1000+4*(batchHeader+5)), bt.pos())
	assert.Equal(t, DevicePtr(0x1000+4*(batchHeader+10)), bt.seq())
	assert.Equal(t, DevicePtr(0x1000+4*(batchHeader+15)), bt.outputs())
	assert.Equal(t, DevicePtr(0x1004), bt.noutPtr())
	assert.Zero(t, (4*batchHeader)%64, "arrays start 64-byte aligned")
}

// TestBatchInputErrors: SetBatch's shape checks are
// backend.BatchInput.CheckShape's (tested there), named as SetBatch's.
func TestBatchInputErrors(t *testing.T) {
	in := backend.BatchInput{IDs: []int32{1}, Pos: []int32{-2}, Seq: []int32{0}}
	assert.EqualError(t, checkBatchInput(5, &in), "set batch: token 0 has negative position -2")
}

func TestStatusError(t *testing.T) {
	assert.EqualError(t, statusError([4]int32{kernels.StatusTokenID, 3, 70000, 32000}), "cuda: embed: token 3 id 70000 outside the table of 32000 rows")
	assert.EqualError(t, statusError([4]int32{kernels.StatusPosition, 1, 300, 256}), "cuda: attention: token 1 position 300 outside context of 256")
	assert.EqualError(t, statusError([4]int32{kernels.StatusSequence, 0, 4, 2}), "cuda: attention: token 0 sequence 4 outside 2 sequence slots")
	assert.EqualError(t, statusError([4]int32{kernels.StatusOutputRow, 2, 9, 4}), "cuda: gather outputs: output 2 is row 9, outside batch of 4")
	assert.ErrorContains(t, statusError([4]int32{77, 1, 2, 3}), "kernel status 77")
}

func TestAttnMode(t *testing.T) {
	for _, c := range []struct {
		n, hd  int
		typ    backend.DType
		mode   int
		lanes8 bool
	}{
		{1, 64, backend.F16, kernels.KQVecF16, false},
		{2, 64, backend.F16, kernels.KQTinyF16, true},
		{2, 10, backend.F16, kernels.KQVecF16, false},
		{3, 12, backend.F16, kernels.KQVecF16, true},
		{1, 64, backend.F32, kernels.KQVecF32, false},
		{4, 64, backend.F32, kernels.KQVecF32, true},
	} {
		mode, lanes8 := attnMode(c.n, c.hd, c.typ)
		assert.Equal(t, c.mode, mode, "%+v", c)
		assert.Equal(t, c.lanes8, lanes8, "%+v", c)
	}
}
