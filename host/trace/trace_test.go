package trace

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/fallback"
	"qinfer/host/backend"
	"qinfer/host/quant"
)

func TestShortName(t *testing.T) {
	assert.Equal(t, "attn_q", shortName("blk.3.attn_q.weight"))
	assert.Equal(t, "ffn_gate+ffn_up", shortName("blk.12.ffn_gate.weight+blk.12.ffn_up.weight"))
	assert.Equal(t, "output", shortName("output.weight"))
	assert.Equal(t, "token_embd", shortName("token_embd.weight"))
}

// Ops through the recorder give the same results as without it, and each
// call becomes one event named by its weight.
func TestRecorderTimesEveryOpAndForwards(t *testing.T) {
	cpu, err := fallback.New(2)
	require.NoError(t, err)
	defer cpu.Close()
	rec := Wrap(cpu)
	rng := rand.New(rand.NewPCG(3, 4))
	rows, cols := 5, 64
	wf := make([]float32, rows*cols)
	for i := range wf {
		wf[i] = float32(rng.NormFloat64())
	}
	data := make([]byte, rows*cols/32*34)
	require.NoError(t, quant.Quantize(backend.Q8_0, wf, data))
	w, err := rec.Upload(&backend.Weight{Name: "blk.0.ffn_down.weight", Type: backend.Q8_0, Rows: rows, Cols: cols, Data: data})
	require.NoError(t, err)
	x, err := rec.NewActivation("x", 2, cols)
	require.NoError(t, err)
	xs := make([]float32, 2*cols)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	require.NoError(t, rec.Write(x, xs))
	out, err := rec.NewActivation("out", 2, rows)
	require.NoError(t, err)
	require.NoError(t, rec.MatMul(out, w, x))
	require.NoError(t, rec.Add(out, out, out))
	got := make([]float32, 2*rows)
	require.NoError(t, rec.Read(out, got))

	ref, err := cpu.NewActivation("ref", 2, rows)
	require.NoError(t, err)
	require.NoError(t, cpu.MatMul(ref, w, x))
	want := make([]float32, 2*rows)
	require.NoError(t, cpu.Read(ref, want))
	for i := range want {
		assert.Equal(t, 2*want[i], got[i], "element %d", i)
	}

	ev := rec.Events()
	require.Len(t, ev, 2)
	assert.Equal(t, "MatMul ffn_down", ev[0].Name)
	assert.Equal(t, "Add", ev[1].Name)
	assert.GreaterOrEqual(t, ev[1].Start, ev[0].Start+ev[0].Dur)

	var buf bytes.Buffer
	require.NoError(t, rec.WriteChrome(&buf, "test"))
	var tr struct {
		TraceEvents []map[string]any `json:"traceEvents"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &tr))
	require.Len(t, tr.TraceEvents, 2)
	assert.Equal(t, "X", tr.TraceEvents[0]["ph"])
	assert.Equal(t, "MatMul ffn_down", tr.TraceEvents[0]["name"])

	sum := rec.Summarize()
	require.Len(t, sum, 2)
	var svg bytes.Buffer
	require.NoError(t, WriteSVG(&svg, "a <title>", sum))
	assert.True(t, strings.HasPrefix(svg.String(), "<svg"))
	assert.Contains(t, svg.String(), "a &lt;title&gt;")
	assert.Contains(t, svg.String(), "MatMul ffn_down")

	// A failing op is returned and not recorded.
	bad, err := rec.NewActivation("bad", 3, rows)
	require.NoError(t, err)
	assert.Error(t, rec.Add(out, out, bad))
	assert.Len(t, rec.Events(), 2)
}
