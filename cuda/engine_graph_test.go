package cuda_test

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/engine"
	"qinfer/host/gguf"
	"qinfer/host/testenv"
)

// TestEngineGraphsMatchDirect runs the same generation and perplexity on
// two engines over one model file, one replaying its steps as CUDA graphs
// and one launching kernel by kernel, and requires the same tokens and the
// same perplexity bits. Decode steps advance positions and the KV cache
// between replays, which a graph must read from the Batch, not from its
// capture. On the emulator: one model, few tokens.
func TestEngineGraphsMatchDirect(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		if d.name == "emu-sm61" {
			t.Skip("one emulated variant is enough for the engine's graph logic")
		}
		name, steps := "gqa-Q8_0", 24
		if d.emu {
			name, steps = "tiny-Q8_0", 5
		}
		f, err := gguf.Open(testenv.Path(t, "llamacpp", name+".gguf"))
		require.NoError(t, err)
		defer f.Close()
		withGraphs := loadEngine(t, f, d.be)
		direct := loadEngine(t, f, d.be)
		direct.SetGraphs(false)

		refs := readGreedyRefs(t, name)
		reqs := make([]engine.Request, len(refs))
		var ids []int32
		for i, r := range refs {
			reqs[i] = engine.Request{PromptIDs: r.PromptIDs, MaxTokens: steps}
			ids = append(ids, r.PromptIDs...)
		}
		got, _, err := withGraphs.Generate(context.Background(), reqs, nil)
		require.NoError(t, err)
		want, _, err := direct.Generate(context.Background(), reqs, nil)
		require.NoError(t, err)
		for i := range reqs {
			assert.Equal(t, want[i].GenIDs, got[i].GenIDs, "prompt %d", i)
		}
		captured, launched := withGraphs.GraphStats()
		t.Logf("%s: %d graphs captured, %d steps replayed", name, captured, launched)
		require.Positive(t, captured)
		require.GreaterOrEqual(t, launched, steps-3, "decode steps after the first of their shape replay")
		c, l := direct.GraphStats()
		require.Zero(t, c+l)

		// Perplexity in chunks of 16 tokens: every chunk after the first
		// two is a replay.
		for len(ids) < 80 {
			ids = append(ids, ids...)
		}
		pg, err := withGraphs.Perplexity(ids, 16)
		require.NoError(t, err)
		pd, err := direct.Perplexity(ids, 16)
		require.NoError(t, err)
		assert.Equal(t, math.Float64bits(pd.NLL), math.Float64bits(pg.NLL), "NLL %v with graphs, %v without", pg.NLL, pd.NLL)
	})
}
