package cuda

import (
	"errors"
	"fmt"

	"qinfer/host/backend"
)

// kvCache is a KV cache in device memory: K then V, each
// [layers][seqs][ctx][kvHeads*headDim] of F16 or F32, in one allocation.
type kvCache struct {
	cfg   backend.KVConfig
	buf   DevicePtr
	elem  int64 // bytes per element
	layer int64 // bytes per layer of K (or V)
	freed bool
}

func (c *kvCache) Config() backend.KVConfig { return c.cfg }

func (c *kvCache) kvDim() int { return c.cfg.KVHeads * c.cfg.HeadDim }

// k and v return the device address of a layer's keys and values.
func (c *kvCache) k(layer int) DevicePtr { return c.buf + DevicePtr(int64(layer)*c.layer) }
func (c *kvCache) v(layer int) DevicePtr {
	return c.buf + DevicePtr(int64(c.cfg.Layers+layer)*c.layer)
}

func (b *Backend) NewKVCache(cfg backend.KVConfig) (backend.KVCache, error) {
	if cfg.Layers <= 0 || cfg.Seqs <= 0 || cfg.Ctx <= 0 || cfg.KVHeads <= 0 || cfg.HeadDim <= 0 {
		return nil, fmt.Errorf("new KV cache: bad configuration %+v", cfg)
	}
	var elem int64
	switch cfg.Type {
	case backend.F16:
		elem = 2
	case backend.F32:
		elem = 4
	default:
		return nil, fmt.Errorf("new KV cache: type %v (want F16 or F32)", cfg.Type)
	}
	if cfg.HeadDim%2 != 0 || cfg.HeadDim > maxHeadDim {
		return nil, fmt.Errorf("new KV cache: head dimension %d must be even and at most %d", cfg.HeadDim, maxHeadDim)
	}
	perLayer := int64(cfg.Seqs) * int64(cfg.Ctx) * int64(cfg.KVHeads) * int64(cfg.HeadDim)
	if perLayer > maxActivation || int64(cfg.Layers)*perLayer > maxActivation {
		return nil, fmt.Errorf("new KV cache: %+v is too large", cfg)
	}
	if err := b.enter("new KV cache"); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	if err := b.noCapture("new KV cache"); err != nil {
		return nil, err
	}
	c := &kvCache{cfg: cfg, elem: elem, layer: perLayer * elem}
	size := 2 * int64(cfg.Layers) * c.layer
	err := b.do(func() error {
		var err error
		if c.buf, err = b.alloc(fmt.Sprintf("KV cache (%d layers, %d sequences of %d positions, %v)",
			cfg.Layers, cfg.Seqs, cfg.Ctx, cfg.Type), size); err != nil {
			return err
		}
		return b.drv.MemsetD8Async(c.buf, 0, size, b.stream)
	})
	if err != nil {
		return nil, fmt.Errorf("new KV cache: %w", err)
	}
	return c, nil
}

func asKVCache(op string, kc backend.KVCache) (*kvCache, error) {
	c, ok := kc.(*kvCache)
	if !ok {
		if kc == nil {
			return nil, errors.New(op + ": KV cache is nil")
		}
		return nil, fmt.Errorf("%s: KV cache must come from this CUDA backend, got %T", op, kc)
	}
	if c.freed {
		return nil, fmt.Errorf("%s: KV cache was freed", op)
	}
	return c, nil
}
