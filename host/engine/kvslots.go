package engine

import "fmt"

// kvSlots hands out the sequence slots of the KV cache. A slot needs no
// clearing when it is reused: attention reads only positions 0..pos of
// its own sequence, and a new sequence writes every position before any
// token reads it.
type kvSlots struct {
	free  []int32
	inUse []bool
}

func newKVSlots(n int) *kvSlots {
	s := &kvSlots{inUse: make([]bool, n)}
	// Hand out low slots first: a backend may keep recently used cache
	// rows warm.
	for i := n - 1; i >= 0; i-- {
		s.free = append(s.free, int32(i))
	}
	return s
}

func (s *kvSlots) available() int { return len(s.free) }

func (s *kvSlots) acquire() (int32, bool) {
	if len(s.free) == 0 {
		return -1, false
	}
	id := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	s.inUse[id] = true
	return id, true
}

func (s *kvSlots) release(id int32) error {
	if id < 0 || int(id) >= len(s.inUse) || !s.inUse[id] {
		return fmt.Errorf("kv slots: release of slot %d that is not in use", id)
	}
	s.inUse[id] = false
	s.free = append(s.free, id)
	return nil
}
