package quant

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
)

// goldenCase is one input row of testdata/llamacpp_ref.bin and llama.cpp's
// encodings of it.
type goldenCase struct {
	x   []float32
	out map[string][]byte
}

// goldenOutputs lists the encodings stored per case, in file order. The
// "act:" entries are llama.cpp's AVX2 activation quantizers.
var goldenOutputs = []struct {
	name string
	t    backend.DType
}{
	{"F16", backend.F16}, {"BF16", backend.BF16},
	{"Q4_0", backend.Q4_0}, {"Q4_1", backend.Q4_1}, {"Q5_0", backend.Q5_0}, {"Q5_1", backend.Q5_1}, {"Q8_0", backend.Q8_0},
	{"Q2_K", backend.Q2_K}, {"Q3_K", backend.Q3_K}, {"Q4_K", backend.Q4_K}, {"Q5_K", backend.Q5_K}, {"Q6_K", backend.Q6_K}, {"Q8_K", backend.Q8_K},
	{"act:Q8_0", backend.Q8_0}, {"act:Q8_1", backend.Q8_1},
}

// loadGolden reads testdata/llamacpp_ref.bin (see testdata/README.md):
// "QREF", uint32 case count, then per case uint32 n, n float32 inputs and
// the encodings of goldenOutputs, each rowBytes(t, n) long.
func loadGolden(t *testing.T) []goldenCase {
	t.Helper()
	data, err := os.ReadFile("testdata/llamacpp_ref.bin")
	require.NoError(t, err)
	r := bytes.NewReader(data)
	magic := make([]byte, 4)
	_, err = r.Read(magic)
	require.NoError(t, err)
	require.Equal(t, "QREF", string(magic))
	var ncase uint32
	require.NoError(t, binary.Read(r, binary.LittleEndian, &ncase))
	cases := make([]goldenCase, ncase)
	for i := range cases {
		var n uint32
		require.NoError(t, binary.Read(r, binary.LittleEndian, &n))
		c := goldenCase{x: make([]float32, n), out: map[string][]byte{}}
		require.NoError(t, binary.Read(r, binary.LittleEndian, c.x))
		for _, o := range goldenOutputs {
			sz, err := rowBytes(o.t, int(n))
			require.NoError(t, err)
			b := make([]byte, sz)
			_, err = r.Read(b)
			require.NoError(t, err, "case %d %s", i, o.name)
			c.out[o.name] = b
		}
		cases[i] = c
	}
	require.Zero(t, r.Len(), "trailing bytes in golden file")
	return cases
}

// TestQuantizeGolden requires bit-identical output to llama.cpp's reference
// quantizers (and AVX2 activation quantizers) on inputs that include
// rounding ties, all-zero, constant, single-value, tiny, subnormal, huge
// (fp16 scale overflow) and all-positive blocks.
func TestQuantizeGolden(t *testing.T) {
	for ci, c := range loadGolden(t) {
		for _, o := range goldenOutputs {
			t.Run(fmt.Sprintf("case%d/%s", ci, o.name), func(t *testing.T) {
				want := c.out[o.name]
				got := make([]byte, len(want))
				if strings.HasPrefix(o.name, "act:") {
					require.NoError(t, QuantizeActivations(o.t, c.x, got))
				} else {
					require.NoError(t, Quantize(o.t, c.x, got))
				}
				if !bytes.Equal(want, got) {
					tr, _ := backend.TraitsOf(o.t)
					for i := range want {
						if want[i] != got[i] {
							blk := i / tr.TypeSize
							require.Failf(t, "output differs from llama.cpp", "first difference at byte %d (block %d, offset %d): want %#02x got %#02x\nwant block % x\ngot  block % x",
								i, blk, i%tr.TypeSize, want[i], got[i], want[blk*tr.TypeSize:(blk+1)*tr.TypeSize], got[blk*tr.TypeSize:(blk+1)*tr.TypeSize])
						}
					}
				}
			})
		}
	}
}
