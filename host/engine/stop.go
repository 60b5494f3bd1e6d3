package engine

import (
	"strings"

	"qinfer/host/tokenizer"
)

// output turns one sequence's tokens into text and watches for stop
// strings. Text that could still become the start of a stop string is
// held back from streaming until the next token decides it.
type output struct {
	dec     *tokenizer.StreamDecoder // nil without a tokenizer: no text
	stops   []string
	maxStop int
	buf     []byte
	emitted int  // bytes of buf already streamed
	done    bool // stopped or finished: buf is final
}

func newOutput(tok *tokenizer.Tokenizer, stops []string) *output {
	o := &output{stops: stops}
	if tok != nil {
		o.dec = tok.NewStreamDecoder()
	}
	for _, s := range stops {
		o.maxStop = max(o.maxStop, len(s))
	}
	return o
}

// push decodes a token; see add.
func (o *output) push(id int32) (string, bool) {
	if o.dec == nil {
		return "", false
	}
	return o.add(o.dec.Push(id))
}

// add appends decoded text and returns the text that became safe to
// stream, and whether a stop string now ends the output (the text is then
// cut where the stop string starts).
func (o *output) add(text string) (string, bool) {
	if o.done {
		return "", true
	}
	before := len(o.buf)
	o.buf = append(o.buf, text...)
	if i := o.findStop(before); i >= 0 {
		o.buf = o.buf[:i]
		o.done = true
		return o.take(len(o.buf)), true
	}
	return o.take(len(o.buf) - o.heldBack()), false
}

// finish flushes the decoder and returns all text not yet streamed,
// cut at a stop string should the flushed bytes complete one.
func (o *output) finish() string {
	if o.done {
		return ""
	}
	if o.dec != nil {
		before := len(o.buf)
		o.buf = append(o.buf, o.dec.Flush()...)
		if i := o.findStop(before); i >= 0 {
			o.buf = o.buf[:i]
		}
	}
	o.done = true
	return o.take(len(o.buf))
}

func (o *output) text() string { return string(o.buf) }

func (o *output) take(upto int) string {
	if upto <= o.emitted {
		return ""
	}
	s := string(o.buf[o.emitted:upto])
	o.emitted = upto
	return s
}

// findStop returns the earliest start of a stop string that ends after
// byte `since` (earlier text was checked before), or -1.
func (o *output) findStop(since int) int {
	if len(o.stops) == 0 {
		return -1
	}
	from := max(0, since-o.maxStop+1)
	hay := string(o.buf[from:])
	best := -1
	for _, s := range o.stops {
		if i := strings.Index(hay, s); i >= 0 && (best < 0 || from+i < best) {
			best = from + i
		}
	}
	return best
}

// heldBack is the length of the longest suffix of the text that is a
// proper prefix of some stop string.
func (o *output) heldBack() int {
	for k := min(o.maxStop-1, len(o.buf)); k > 0; k-- {
		tail := string(o.buf[len(o.buf)-k:])
		for _, s := range o.stops {
			if len(s) > k && s[:k] == tail {
				return k
			}
		}
	}
	return 0
}
