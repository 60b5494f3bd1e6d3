// Package fallback is qinfer's CPU backend: the implementation of
// backend.Backend that runs when no GPU is usable, and the reference the
// GPU backend's parity tests compare against.
//
// # Data path
//
// Weights are uploaded without a copy: Upload validates the shape and
// keeps the caller's slice, normally the mmap'd GGUF tensor data, in
// GGUF's block layout. Activations are F32 [rows][cols] buffers with a row
// stride; View cuts a row and column window out of one without copying, and
// every op accepts such strided views.
//
// A MatMul quantizes its input rows to the weight type's activation format
// (Q8_0 blocks for Q8_0/Q4_0 weights, Q8_K for K-quants, F16 for F16
// weights, as llama.cpp's CPU path does) into a scratch buffer the backend
// owns and reuses, then multiplies them with the weight rows using the
// integer kernels of qinfer/fallback/kernels (Go assembly where the CPU
// has it), parallel over the backend's worker pool.
//
// The other ops (Embed, RMSNorm, ApplyRoPE, Attention, SiLUMul, Add,
// Softmax, GatherOutputs) reproduce the float arithmetic of llama.cpp's
// CPU backend (build 4748 on x86-64 with AVX2, FMA and F16C): the double
// accumulator of RMSNorm, ggml's vectorized exponential in softmax and
// SiLU, RoPE's angle recurrence, and in attention the F16 rounding of Q
// and of the probabilities, the F16 KV cache, and the accumulation order
// of the ggml and llamafile dot products (see Attention). Greedy decoding
// then picks the same tokens as llama.cpp. Their row kernels (softmax,
// SiLU, RoPE, F16 rounding, attention's dots and KQV sums) live in
// qinfer/fallback/vecmath, as AVX2 assembly that is bit-identical to its
// pure-Go reference.
//
// The KV cache holds, per layer, sequence slot and position, one row of
// keys and one of values in F16 (llama.cpp's default) or F32. Attention
// first stores the batch's k and v rows at their (sequence, position),
// then attends causally over positions 0..pos of each token's sequence,
// parallel over (token, head) pairs; query head h reads KV head
// h/(heads/kvHeads).
//
// Ops run synchronously (Synchronize has nothing to wait for) and are
// serialized by a mutex, since they share scratch buffers that grow to
// the largest call and then stay: a steady decode loop allocates nothing.
// With profiling on, each op's wall time, bytes moved and arithmetic
// operations are accumulated; with it off, the cost is one branch.
package fallback
