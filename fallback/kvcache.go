package fallback

import (
	"fmt"

	"qinfer/host/backend"
)

// maxKVElements bounds a cache (per K or V) to 2^36 elements (128 GiB in
// F16), far past any host, so the size arithmetic cannot overflow.
const maxKVElements = 1 << 36

// kvCache stores, for every layer, sequence slot and position, one row of
// KVHeads*HeadDim keys and one of values, row-major in that order. llama.cpp
// stores V transposed for its matmul; the layout does not change any
// value, only where it lives, and row-major keeps a token's write in one
// place.
type kvCache struct {
	cfg   backend.KVConfig
	kvDim int
	k16   []uint16 // F16 cache
	v16   []uint16
	k32   []float32 // F32 cache
	v32   []float32
	freed bool
}

func (kv *kvCache) Config() backend.KVConfig { return kv.cfg }

func (kv *kvCache) free() {
	kv.freed = true
	kv.k16, kv.v16, kv.k32, kv.v32 = nil, nil, nil, nil
}

// rowIndex is the element offset of (layer, seq, pos).
func (kv *kvCache) rowIndex(layer, seq, pos int) int {
	return ((layer*kv.cfg.Seqs+seq)*kv.cfg.Ctx + pos) * kv.kvDim
}

func (c *CPU) NewKVCache(cfg backend.KVConfig) (backend.KVCache, error) {
	if cfg.Layers <= 0 || cfg.Seqs <= 0 || cfg.Ctx <= 0 || cfg.KVHeads <= 0 || cfg.HeadDim <= 0 {
		return nil, fmt.Errorf("new KV cache: every size must be positive: %+v", cfg)
	}
	if cfg.Type != backend.F16 && cfg.Type != backend.F32 {
		return nil, fmt.Errorf("new KV cache: type %v unsupported (F16 or F32)", cfg.Type)
	}
	n := int64(1)
	for _, d := range []int{cfg.Layers, cfg.Seqs, cfg.Ctx, cfg.KVHeads, cfg.HeadDim} {
		n *= int64(d)
		if n > maxKVElements {
			return nil, fmt.Errorf("new KV cache: %+v needs more than %d elements", cfg, int64(maxKVElements))
		}
	}
	kv := &kvCache{cfg: cfg, kvDim: cfg.KVHeads * cfg.HeadDim}
	if cfg.Type == backend.F16 {
		kv.k16, kv.v16 = make([]uint16, n), make([]uint16, n)
	} else {
		kv.k32, kv.v32 = make([]float32, n), make([]float32, n)
	}
	return kv, nil
}

func asKVCache(op string, t backend.KVCache) (*kvCache, error) {
	kv, ok := t.(*kvCache)
	if !ok {
		if t == nil {
			return nil, fmt.Errorf("%s: KV cache is nil", op)
		}
		return nil, fmt.Errorf("%s: KV cache must come from this CPU backend, got %T", op, t)
	}
	if kv.freed {
		return nil, fmt.Errorf("%s: KV cache was freed", op)
	}
	return kv, nil
}
