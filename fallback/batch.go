package fallback

import (
	"errors"
	"fmt"

	"qinfer/host/backend"
)

// maxBatch bounds a batch's capacity (tokens per step).
const maxBatch = 1 << 24

// batch holds one step's per-token inputs. Its slices are allocated once
// at capacity; SetBatch copies into them.
type batch struct {
	capacity int
	n        int
	nout     int
	ids      []int32
	pos      []int32
	seq      []int32
	outputs  []int32
	freed    bool
}

func (b *batch) Cap() int       { return b.capacity }
func (b *batch) Len() int       { return b.n }
func (b *batch) OutputLen() int { return b.nout }

func (c *CPU) NewBatch(capacity int) (backend.Batch, error) {
	if capacity <= 0 || capacity > maxBatch {
		return nil, fmt.Errorf("new batch: capacity %d outside [1, %d]", capacity, maxBatch)
	}
	return &batch{
		capacity: capacity,
		ids:      make([]int32, capacity),
		pos:      make([]int32, capacity),
		seq:      make([]int32, capacity),
		outputs:  make([]int32, capacity),
	}, nil
}

// SetBatch checks what can be checked without a KV configuration or a
// vocabulary (lengths, signs, output rows); Embed checks ids against the
// table and Attention checks positions and sequences against the cache.
// On error the batch keeps its previous contents.
func (c *CPU) SetBatch(bt backend.Batch, in *backend.BatchInput) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := asBatch("set batch", bt)
	if err != nil {
		return err
	}
	if in == nil {
		return errors.New("set batch: nil input")
	}
	if err := in.CheckShape(b.capacity); err != nil {
		return fmt.Errorf("set batch: %w", err)
	}
	n := len(in.IDs)
	b.n, b.nout = n, len(in.Outputs)
	copy(b.ids, in.IDs)
	copy(b.pos, in.Pos)
	copy(b.seq, in.Seq)
	copy(b.outputs, in.Outputs)
	return nil
}

func asBatch(op string, bt backend.Batch) (*batch, error) {
	b, ok := bt.(*batch)
	if !ok {
		if bt == nil {
			return nil, fmt.Errorf("%s: batch is nil", op)
		}
		return nil, fmt.Errorf("%s: batch must come from this CPU backend, got %T", op, bt)
	}
	if b.freed {
		return nil, fmt.Errorf("%s: batch was freed", op)
	}
	return b, nil
}

// asSetBatch also requires at least one token.
func asSetBatch(op string, bt backend.Batch) (*batch, error) {
	b, err := asBatch(op, bt)
	if err != nil {
		return nil, err
	}
	if b.n == 0 {
		return nil, fmt.Errorf("%s: batch is empty (call SetBatch first)", op)
	}
	return b, nil
}
