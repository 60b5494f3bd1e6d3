// Package quantize turns an unquantized GGUF model (F32, F16 or BF16
// tensors) into a quantized one: `qinfer quantize`.
//
// Three methods share one pipeline:
//
//   - dynamic: weights only. Every backend quantizes activations at run
//     time from their own range (per 32-block for the GGUF block formats,
//     per token for the row formats).
//   - static: a calibration text is run through the unquantized model and
//     an observer (min-max, percentile or MSE-optimal) fixes one int8
//     activation scale per linear layer input, stored as
//     qinfer.act_scale.NAME metadata for the backends to use instead of
//     the run-time range.
//   - mixed: every quantizable tensor is tried alone at each precision of
//     a ladder; the KL divergence of the output distribution from the
//     unquantized model's, measured on the calibration text, ranks the
//     tensors, and a greedy planner picks per-tensor types that meet a
//     size or KLD budget. The plan is stored as qinfer.quant.plan.
//
// For llama.cpp's own file types (Q8_0, Q4_0, Q4_K_M, ...) the type of
// each tensor is chosen by llama.cpp's rules (llama-quantize, build 4748:
// llama_tensor_get_type and its fallbacks for row lengths that are not a
// multiple of the block size), tensors are written in llama.cpp's order
// with its metadata, and the bytes are those of llama.cpp's reference
// quantizers, so a file quantized here is the file llama-quantize writes.
package quantize
