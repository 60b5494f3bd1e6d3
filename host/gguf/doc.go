// Package gguf reads and writes GGUF files, the model format of llama.cpp.
//
// Open maps a file read-only and parses its header (metadata and tensor
// infos) onto the Go heap; tensor data stays in the mapping and TensorData
// returns zero-copy slices of it. Parse does the same over a byte slice.
// GGUF versions 2 and 3 are read, little-endian only. Every count, length
// and offset in the file is checked against the bytes actually present
// before anything is allocated for it, so hostile files produce a
// *FormatError, never a panic or a huge allocation.
//
// Builder writes files in llama.cpp's layout; FromFile followed by WriteTo
// reproduces a file written by llama.cpp or gguf-py byte for byte.
package gguf
