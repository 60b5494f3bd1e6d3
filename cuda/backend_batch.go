package cuda

import (
	"errors"
	"fmt"

	"qinfer/host/backend"
)

// maxBatch bounds a batch's capacity (tokens per step); it is also the
// largest grid dimension the per-token kernels use.
const maxBatch = maxGridYZ

// batchHeader is the int32 count of the header before the arrays: n and
// the output count, padded so the arrays stay 64-byte aligned.
const batchHeader = 16

// batch holds one step's per-token inputs in device memory (DESIGN.md
// decision 8): kernels read ids, positions, sequences and output rows from
// it, so a captured graph replays with whatever SetBatch copied last. The
// device buffer is int32 [header][ids cap][pos cap][seq cap][outputs cap];
// host mirrors it for the checks ops make before enqueueing.
type batch struct {
	capacity int
	n        int
	nout     int
	buf      DevicePtr
	host     []int32
	freed    bool
}

func (bt *batch) Cap() int       { return bt.capacity }
func (bt *batch) Len() int       { return bt.n }
func (bt *batch) OutputLen() int { return bt.nout }

func (bt *batch) arr(i int) DevicePtr {
	return bt.buf + DevicePtr(4*(batchHeader+i*bt.capacity))
}

func (bt *batch) ids() DevicePtr     { return bt.arr(0) }
func (bt *batch) pos() DevicePtr     { return bt.arr(1) }
func (bt *batch) seq() DevicePtr     { return bt.arr(2) }
func (bt *batch) outputs() DevicePtr { return bt.arr(3) }
func (bt *batch) noutPtr() DevicePtr { return bt.buf + 4 }

func (bt *batch) hostArr(i int) []int32 {
	return bt.host[batchHeader+i*bt.capacity : batchHeader+(i+1)*bt.capacity]
}

func (b *Backend) NewBatch(capacity int) (backend.Batch, error) {
	if capacity <= 0 || capacity > maxBatch {
		return nil, fmt.Errorf("new batch: capacity %d outside [1, %d]", capacity, maxBatch)
	}
	if err := b.enter("new batch"); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	if err := b.noCapture("new batch"); err != nil {
		return nil, err
	}
	bt := &batch{capacity: capacity, host: make([]int32, batchHeader+4*capacity)}
	err := b.do(func() error {
		var err error
		if bt.buf, err = b.alloc("batch", 4*int64(len(bt.host))); err != nil {
			return err
		}
		return b.drv.MemsetD32Async(bt.buf, 0, int64(len(bt.host)), b.stream)
	})
	if err != nil {
		return nil, fmt.Errorf("new batch of %d: %w", capacity, err)
	}
	return bt, nil
}

// SetBatch checks what can be checked without a KV configuration or a
// vocabulary (as the CPU backend does; Embed and Attention check ids,
// positions and sequences against the table and the cache) and enqueues
// one copy of the batch to the device. On error the batch keeps its
// previous contents.
func (b *Backend) SetBatch(bt backend.Batch, in *backend.BatchInput) error {
	x, err := asBatch("set batch", bt)
	if err != nil {
		return err
	}
	if in == nil {
		return errors.New("set batch: nil input")
	}
	if err := checkBatchInput(x.capacity, in); err != nil {
		return err
	}
	if err := b.enter("set batch"); err != nil {
		return err
	}
	defer b.mu.Unlock()
	// During capture the copy would be recorded from pageable host
	// memory; a graph's inputs are set between replays instead.
	if err := b.noCapture("set batch"); err != nil {
		return err
	}
	n := len(in.IDs)
	x.host[0], x.host[1] = int32(n), int32(len(in.Outputs))
	copy(x.hostArr(0), in.IDs)
	copy(x.hostArr(1), in.Pos)
	copy(x.hostArr(2), in.Seq)
	copy(x.hostArr(3), in.Outputs)
	err = b.do(func() error {
		// From pageable memory the driver stages the copy before it returns,
		// so the host mirror may change again right after.
		return b.drv.MemcpyHtoDAsync(x.buf, ptrOf(&x.host[0]), 4*int64(len(x.host)), b.stream)
	})
	if err != nil {
		return fmt.Errorf("set batch: %w", err)
	}
	x.n, x.nout = n, len(in.Outputs)
	return nil
}

// checkBatchInput is the backend-independent part of SetBatch's checks.
func checkBatchInput(capacity int, in *backend.BatchInput) error {
	if err := in.CheckShape(capacity); err != nil {
		return fmt.Errorf("set batch: %w", err)
	}
	return nil
}

func asBatch(op string, bt backend.Batch) (*batch, error) {
	x, ok := bt.(*batch)
	if !ok {
		if bt == nil {
			return nil, fmt.Errorf("%s: batch is nil", op)
		}
		return nil, fmt.Errorf("%s: batch must come from this CUDA backend, got %T", op, bt)
	}
	if x.freed {
		return nil, fmt.Errorf("%s: batch was freed", op)
	}
	return x, nil
}

// asSetBatch also requires at least one token.
func asSetBatch(op string, bt backend.Batch) (*batch, error) {
	x, err := asBatch(op, bt)
	if err != nil {
		return nil, err
	}
	if x.n == 0 {
		return nil, fmt.Errorf("%s: batch is empty (call SetBatch first)", op)
	}
	return x, nil
}
