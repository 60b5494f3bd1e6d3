package quantize

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"qinfer/host/backend"
	"qinfer/host/gguf"
)

// This file reproduces llama-quantize's decisions (llama.cpp build 4748,
// src/llama-quant.cpp) for the file types in fileTypes, without an
// importance matrix: which tensors are quantized at all, the type of each,
// and the order tensors are written in. Branches for architectures and
// mixes qinfer does not support (Falcon, mixtures of experts, the 70B
// attn_v rule, the Q2_K/Q3_K/IQ mixes) are left out.

// tensorLayer is the layer number llama.cpp's weight_name_comparer reads
// with sscanf(name, "blk.%d.", &layer): -1 when the name does not start
// with "blk." and an integer.
func tensorLayer(name string) int {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return -1
	}
	i := 0
	if i < len(rest) && (rest[i] == '+' || rest[i] == '-') {
		i++
	}
	j := i
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	if j == i {
		return -1
	}
	n, err := strconv.Atoi(rest[:j])
	if err != nil {
		return -1
	}
	return n
}

// llamaOrder sorts tensor names as llama.cpp's model loader keeps them
// (a std::map with weight_name_comparer): by layer, tensors outside any
// layer first, then by name (bytewise).
func llamaOrder(names []string) {
	sort.SliceStable(names, func(i, j int) bool {
		a, b := names[i], names[j]
		la, lb := tensorLayer(a), tensorLayer(b)
		if la != lb {
			return la < lb
		}
		return a < b
	})
}

// nDims is ggml_n_dims: the number of dimensions up to the last one
// larger than 1 (at least 1).
func nDims(dims []uint64) int {
	n := 1
	for i, d := range dims {
		if d > 1 {
			n = i + 1
		}
	}
	return n
}

// llamaQuantizable is llama-quantize's test of whether a tensor is
// quantized at all (the `quantize &= ...` lines); others are copied as
// they are. quantize_output_tensor is llama-quantize's default, true.
func llamaQuantizable(name string, dims []uint64) bool {
	if !strings.HasSuffix(name, "weight") || nDims(dims) < 2 {
		return false
	}
	for _, s := range []string{
		"_norm.weight",        // norms
		"ffn_gate_inp.weight", // expert gating
		"ssm_conv1d.weight",   // Mamba's small 2-D weights
		"time_mix_first.weight", "time_mix_w1.weight", "time_mix_w2.weight",
		"time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
		"time_mix_lerp_fused.weight", // RWKV's small 2-D weights
		"attn_rel_b.weight",          // T5 relative position bias
		".position_embd.",            // multimodal
	} {
		if strings.Contains(name, s) {
			return false
		}
	}
	// BERT's positional embeddings and token types.
	return name != "position_embd.weight" && name != "token_types.weight"
}

// llamaState is llama-quantize's quantize_state_impl: counters that the
// per-tensor rules consult, so tensors must be visited in llamaOrder.
type llamaState struct {
	ft           FileType
	hasOutput    bool
	nAttentionWV int
	iAttentionWV int
	nFFNDown     int
	iFFNDown     int
}

func newLlamaState(ft FileType, f *gguf.File, layers int) *llamaState {
	s := &llamaState{ft: ft, nFFNDown: layers}
	for _, t := range f.Tensors {
		if strings.Contains(t.Name, "attn_v.weight") || strings.Contains(t.Name, "attn_qkv.weight") || strings.Contains(t.Name, "attn_kv_b.weight") {
			s.nAttentionWV++
		} else if t.Name == "output.weight" {
			s.hasOutput = true
		}
	}
	return s
}

// useMoreBits is llama.cpp's use_more_bits: the first and last eighth of
// the layers and every third layer between them get more bits.
func useMoreBits(i, n int) bool {
	return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2
}

// tensorType is llama_tensor_get_type followed by its fallback for row
// lengths that are not a whole number of blocks. It must be called for
// every quantizable tensor, in llamaOrder, because it advances the layer
// counters.
//
// The reason says which rule decided.
func (s *llamaState) tensorType(name string, cols int) (t backend.DType, reason string, err error) {
	t = s.ft.Default
	if !quantized(t) {
		return t, "llama.cpp: " + s.ft.Name, nil
	}
	mix := s.ft.mix
	switch {
	case name == "output.weight" || (!s.hasOutput && name == "token_embd.weight"):
		// The classifier (or the embeddings that double as it) keeps
		// more precision: Q6_K, or Q8_0 where the row does not fit the
		// default type's blocks.
		if cols%blockSize(t) != 0 {
			t = backend.Q8_0
		} else if t != backend.Q8_0 {
			t = backend.Q6_K
		}
	case name == "token_embd.weight":
		// Changed only for IQ/TQ mixes.
	case strings.Contains(name, "attn_v.weight"):
		if mix == mixM && useMoreBits(s.iAttentionWV, s.nAttentionWV) {
			t = backend.Q6_K
		} else if mix == mixS && t == backend.Q4_K && s.iAttentionWV < 4 {
			t = backend.Q5_K
		}
		s.iAttentionWV++
	case strings.Contains(name, "attn_k.weight"), strings.Contains(name, "attn_q.weight"):
		// Changed only for mixtures of experts and IQ3 mixes.
	case strings.Contains(name, "ffn_down"):
		i, n := s.iFFNDown, s.nFFNDown
		if mix == mixM && useMoreBits(i, n) {
			t = backend.Q6_K
		} else if mix == mixS && t == backend.Q4_K && i < n/8 {
			t = backend.Q5_K
		}
		s.iFFNDown++
	case strings.Contains(name, "attn_output.weight"):
		// Changed only for Q2_K/Q3_K/IQ mixes and experts.
	case strings.Contains(name, "attn_qkv.weight"):
		if mix == mixM {
			if t == backend.Q4_K {
				t = backend.Q5_K
			} else {
				t = backend.Q6_K
			}
		}
	}
	reason = "llama.cpp: " + s.ft.Name + " default"
	if t != s.ft.Default {
		reason = fmt.Sprintf("llama.cpp: %s rule for %s", s.ft.Name, name)
	}
	fb, err := fallbackType(name, t, cols)
	if err != nil {
		return 0, "", err
	}
	if fb != t {
		reason = fmt.Sprintf("%s; fallback: rows of %d are not whole %v blocks", reason, cols, t)
	}
	return fb, reason, nil
}

// fallbackType replaces a type whose blocks do not divide the row length,
// as llama-quantize does: K-quants fall back to the legacy type of
// about the same size, and to F16 when even 32 does not divide the row.
func fallbackType(name string, t backend.DType, cols int) (backend.DType, error) {
	if cols%blockSize(t) == 0 {
		return t, nil
	}
	var fb backend.DType
	switch t {
	case backend.Q4_K:
		fb = backend.Q5_0
	case backend.Q5_K:
		fb = backend.Q5_1
	case backend.Q6_K:
		fb = backend.Q8_0
	default:
		return 0, fmt.Errorf("tensor %s: rows of %d elements are not a multiple of the %v block size %d, and llama.cpp defines no fallback for %v",
			name, cols, t, blockSize(t), t)
	}
	if cols%blockSize(fb) != 0 {
		fb = backend.F16
	}
	return fb, nil
}
