package engine

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOutputStopStrings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stops   []string
		pieces  []string
		text    string // final text
		stopped int    // index of the piece that stops, -1 for none
		stream  []string
	}{
		{"no stops", nil, []string{"ab", "c"}, "abc", -1, []string{"ab", "c"}},
		{"across pieces", []string{"END"}, []string{"x E", "N", "D y"}, "x ", 2, []string{"x ", "", ""}},
		{"false start released", []string{"END"}, []string{"x E", "N", "o"}, "x ENo", -1, []string{"x ", "", "ENo"}},
		{"earliest of two", []string{"bc", "ab"}, []string{"zab", "c"}, "z", 0, []string{"z"}},
		{"inside one piece", []string{"\n\n"}, []string{"one\n\ntwo"}, "one", 0, []string{"one"}},
		{"prefix of a longer stop", []string{"abcd", "c"}, []string{"ab", "c"}, "ab", 1, []string{"", "ab"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOutput(nil, tc.stops)
			var stream []string
			stoppedAt := -1
			for i, p := range tc.pieces {
				s, stop := o.add(p)
				stream = append(stream, s)
				if stop {
					stoppedAt = i
					break
				}
			}
			rest := o.finish()
			if stoppedAt >= 0 {
				assert.Empty(t, rest)
			} else {
				stream[len(stream)-1] += rest
			}
			assert.Equal(t, tc.stopped, stoppedAt)
			assert.Equal(t, tc.text, o.text())
			assert.Equal(t, tc.stream, stream)
			assert.Equal(t, o.text(), strings.Join(stream, ""), "streamed text equals the result")
		})
	}
}
