package tokenizer

import "unicode/utf8"

// StreamDecoder turns generated tokens into text as they arrive. A
// character may be split across tokens (byte-fallback tokens, byte-level
// BPE pieces), so the decoder holds back an incomplete UTF-8 sequence at
// the end until the tokens that complete it arrive.
//
// Tokens decode as in Decode, except that nothing is stripped or cleaned
// up across tokens: the concatenation of everything Push and Flush return
// is exactly the tokens' pieces (control tokens contributing nothing), so
// text streamed after a prompt keeps its leading spaces. A StreamDecoder
// is not safe for concurrent use.
type StreamDecoder struct {
	t       *Tokenizer
	pending []byte
}

// NewStreamDecoder returns a decoder with nothing pending.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder {
	return &StreamDecoder{t: t}
}

// Push adds a token and returns the text that is now complete. Bytes that
// can never become part of a valid character are passed through as they
// are rather than held forever.
func (d *StreamDecoder) Push(id int32) string {
	d.pending = append(d.pending, d.t.piece(id, false)...)
	cut := completePrefix(d.pending)
	if cut == 0 {
		return ""
	}
	out := string(d.pending[:cut])
	d.pending = append(d.pending[:0], d.pending[cut:]...)
	return out
}

// Flush returns whatever is held back (an incomplete UTF-8 sequence, as
// raw bytes) and resets the decoder.
func (d *StreamDecoder) Flush() string {
	out := string(d.pending)
	d.pending = d.pending[:0]
	return out
}

// completePrefix returns the length of b without a trailing UTF-8
// sequence that is incomplete but could still be completed.
func completePrefix(b []byte) int {
	// A sequence is at most 4 bytes, so only the last 3 can start an
	// incomplete one.
	for i := len(b) - 1; i >= 0 && i >= len(b)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}
