package quantize

import (
	"fmt"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/quant"
)

// tensorPlan is the decision for one input tensor.
type tensorPlan struct {
	info       *gguf.TensorInfo
	cols, rows int
	to         backend.DType
	reason     string
	// candidate marks tensors llama.cpp would quantize and no --keep
	// rule fixed: the ones a mixed plan may move up the ladder.
	candidate bool
	// outliers counts the input channels calibration saw above the
	// outlier threshold; split lists the columns a row-format type splits
	// off (outliers.go), in increasing order.
	outliers int
	split    []int32
}

func (p *tensorPlan) name() string { return p.info.Name }

// inBytes is the size of the input tensor's data.
func (p *tensorPlan) inBytes() uint64 {
	n, _ := p.info.Bytes() // checked when the file was parsed
	return n
}

// assignTypes decides every tensor's output type, in the order the output
// is written (llama.cpp's).
func assignTypes(f *gguf.File, opt Options) ([]*tensorPlan, error) {
	arch := f.Architecture()
	layers, ok := f.Uint(arch + ".block_count")
	if !ok {
		return nil, fmt.Errorf("quantize: input has no %s.block_count (general.architecture %q)", arch, arch)
	}
	names := make([]string, len(f.Tensors))
	for i, t := range f.Tensors {
		names[i] = t.Name
	}
	llamaOrder(names)

	st := newLlamaState(opt.Type, f, int(layers))
	plans := make([]*tensorPlan, 0, len(names))
	for _, name := range names {
		ti, _ := f.Tensor(name)
		p := &tensorPlan{info: ti, to: ti.Type, reason: "copied: llama.cpp quantizes only 2-D weights that are not norms"}
		if len(ti.Dims) > 0 {
			p.cols = int(ti.Dims[0])
			if p.cols > 0 {
				p.rows = int(ti.Elements() / uint64(p.cols))
			}
		}
		if llamaQuantizable(name, ti.Dims) {
			t, reason, err := chooseType(st, opt.Type, name, p.cols)
			if err != nil {
				return nil, fmt.Errorf("quantize: %w", err)
			}
			p.to, p.reason, p.candidate = t, reason, true
		}
		plans = append(plans, p)
	}
	if err := applyKeep(plans, opt.Keep); err != nil {
		return nil, err
	}
	return plans, nil
}

// chooseType picks a quantizable tensor's type: llama.cpp's rules for its
// file types, qinfer's for the row formats.
func chooseType(st *llamaState, ft FileType, name string, cols int) (backend.DType, string, error) {
	if !quant.IsRowFormat(ft.Default) {
		return st.tensorType(name, cols)
	}
	// Row formats are matmul formats. The embedding table is read a row at
	// a time by Embed, so it stays in a GGUF block format, as BitNet b1.58
	// keeps embeddings and the classifier at 8 bits; the classifier keeps
	// 8 bits for ternary and binary too.
	isOutput := name == "output.weight" || (!st.hasOutput && name == "token_embd.weight")
	switch {
	case name == "token_embd.weight" && st.hasOutput, isOutput && (ft.Default == backend.Ternary || ft.Default == backend.Binary):
		if cols%blockSize(backend.Q8_0) == 0 {
			return backend.Q8_0, "qinfer: embeddings and classifier stay 8-bit", nil
		}
		return backend.F16, fmt.Sprintf("qinfer: embeddings and classifier stay 16-bit (rows of %d are not whole Q8_0 blocks)", cols), nil
	case cols%blockSize(ft.Default) != 0:
		return backend.F16, fmt.Sprintf("qinfer: fallback, rows of %d are not whole %v blocks", cols, ft.Default), nil
	}
	return ft.Default, "qinfer: " + ft.Name + " default", nil
}

// applyKeep applies the --keep rules in order, the last match winning.
// Rules apply to the tensors that are quantized at all (as llama-quantize's
// --tensor-type does): a glob like blk.1.* leaves the norms alone.
func applyKeep(plans []*tensorPlan, rules []Keep) error {
	for _, k := range rules {
		matched := false
		for _, p := range plans {
			if !k.matches(p.name()) || !llamaQuantizable(p.name(), p.info.Dims) {
				continue
			}
			matched = true
			if bs := blockSize(k.Type); p.cols%bs != 0 {
				return fmt.Errorf("quantize: keep rule %v: tensor %s has rows of %d elements, not a multiple of the %v block size %d", k, p.name(), p.cols, k.Type, bs)
			}
			p.to, p.reason, p.candidate = k.Type, "keep "+k.String(), false
		}
		if !matched {
			return fmt.Errorf("quantize: keep rule %v matches no quantizable tensor (rules apply to the 2-D weights; 1-D tensors and norms are copied as they are)", k)
		}
	}
	return nil
}
