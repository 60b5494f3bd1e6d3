// Package tokenizer implements the two tokenizer families of llama-style
// GGUF models the way llama.cpp does, so that token ids match it exactly:
//
//   - tokenizer.ggml.model = "llama": SentencePiece-style BPE over
//     per-token scores, with byte fallback (<0xXX> tokens);
//   - tokenizer.ggml.model = "gpt2": byte-level BPE over merge ranks,
//     after the pre-tokenizer that llama.cpp applies for the vocabulary's
//     tokenizer.ggml.pre.
//
// Special tokens (control and user-defined) can be recognised in the
// input, BOS/EOS and end-of-generation follow the file's metadata with
// llama.cpp's defaults, and decoding reassembles UTF-8 that is split
// across tokens (StreamDecoder for generation).
//
// The pre-tokenizers are llama.cpp's: its hand-written splitters for the
// GPT-2 and Llama 3 patterns, and for the other families (qwen2,
// deepseek-llm, falcon, starcoder, smollm, ...; the error for an unknown
// tokenizer.ggml.pre lists them all) a small backtracking matcher with std::regex's ECMAScript semantics,
// including lookahead, run on the same category-collapsed text llama.cpp
// feeds std::regex. Unicode categories come from Go's unicode package.
//
// A Tokenizer is immutable and safe for concurrent use.
package tokenizer
