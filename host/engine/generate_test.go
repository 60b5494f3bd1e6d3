package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
	"qinfer/host/model"
)

const genModel = "tiny-Q8_0"

// TestGenerateSlotsAndChunks decodes five requests through two slots with
// an 8-token batch: prompts are read in chunks, finished sequences hand
// their slot on, and prompt chunks share steps with other sequences'
// decode tokens. Every request must come out exactly as when it runs alone
// with a large batch.
//
// The CPU backend mirrors llama.cpp, whose float rounding depends on the
// batch size (tinyBLAS for batches, vec_dot for single tokens), and with
// quantized activations a last-bit difference can flip a near-tie many
// tokens later. So this test runs the F32 model with an F32 cache: no
// activation quantization amplifies those differences, and equal tokens
// check the scheduling itself.
func TestGenerateSlotsAndChunks(t *testing.T) {
	const name = "tiny-f32"
	refs := readGreedy(t, name)
	sampled := SamplerConfig{Temp: 0.9, TopK: 40, TopP: 0.95, MinP: 0.02, RepeatPenalty: 1.1, Seed: 99}
	reqs := []Request{
		{PromptIDs: refs[2].PromptIDs, MaxTokens: 32},
		{Prompt: "Once upon a time", MaxTokens: 12, Sampling: sampled},
		{PromptIDs: refs[0].PromptIDs, MaxTokens: 32},
		{Prompt: "The quick brown fox", MaxTokens: 20, Sampling: SamplerConfig{Temp: 1.2, Seed: 5}},
		{PromptIDs: refs[1].PromptIDs, MaxTokens: 32},
	}
	small, _ := testEngine(t, name, model.Options{Ctx: 64, Seqs: 2, MaxBatch: 8, KVType: backend.F32})
	var streamed [5]strings.Builder
	var streamedIDs [5][]int32
	got, st, err := small.Generate(context.Background(), reqs, func(seq int, id int32, piece string) {
		streamed[seq].WriteString(piece)
		streamedIDs[seq] = append(streamedIDs[seq], id)
	})
	require.NoError(t, err)
	assert.Equal(t, 32+12+32+20+32, st.GenTokens)
	wantPrompt := 0
	for _, r := range got {
		wantPrompt += len(r.PromptIDs)
	}
	assert.Equal(t, wantPrompt, st.PromptTokens)

	big, _ := testEngine(t, name, model.Options{Ctx: 64, Seqs: 1, MaxBatch: 64, KVType: backend.F32})
	for i, r := range reqs {
		alone, _, err := big.Generate(context.Background(), []Request{r}, nil)
		require.NoError(t, err)
		assert.Equal(t, alone[0].PromptIDs, got[i].PromptIDs, "request %d prompt", i)
		assert.Equal(t, alone[0].GenIDs, got[i].GenIDs, "request %d tokens", i)
		assert.Equal(t, alone[0].Text, got[i].Text, "request %d text", i)
		assert.Equal(t, StopLength, got[i].StopReason)
		assert.Len(t, got[i].GenIDs, r.MaxTokens)
		assert.Equal(t, got[i].Text, streamed[i].String(), "request %d: streamed pieces", i)
		assert.Equal(t, got[i].GenIDs, streamedIDs[i], "request %d: streamed ids", i)
	}
	assert.NotEqual(t, got[1].GenIDs[:12], refs[0].GenIDs[:12], "sampling at temperature 0.9 should leave the greedy path")
}

// TestPromptLogitsChunked: a prompt read in chunks of 7 gives the logits
// of the prompt read at once (F32 model and cache, for the reason given at
// TestGenerateSlotsAndChunks), and those are llama.cpp's.
func TestPromptLogitsChunked(t *testing.T) {
	const name = "tiny-f32"
	refs := readGreedy(t, name)
	small, _ := testEngine(t, name, model.Options{Ctx: 64, MaxBatch: 7, KVType: backend.F32})
	big, _ := testEngine(t, name, model.Options{Ctx: 64, MaxBatch: 64, KVType: backend.F32})
	ids := refs[2].PromptIDs
	a, err := small.PromptLogits(ids)
	require.NoError(t, err)
	b, err := big.PromptLogits(ids)
	require.NoError(t, err)
	maxAbs, _, _ := logitStats(a, b)
	assert.Less(t, maxAbs, 1e-5)
	// llama.cpp's cache is F16, so its keys and values carry F16 rounding
	// that ours do not.
	maxAbs, _, _ = logitStats(a, readLogits(t, name, 2))
	assert.Less(t, maxAbs, 1e-2)
}

func TestGenerateStopStrings(t *testing.T) {
	e, _ := testEngine(t, genModel, model.Options{Ctx: 64, Seqs: 2, MaxBatch: 32, KVType: backend.F16})
	base := Request{Prompt: "Once upon a time", MaxTokens: 32}
	full, _, err := e.Generate(context.Background(), []Request{base}, nil)
	require.NoError(t, err)
	text := full[0].Text
	require.Greater(t, len(text), 40, "need some text to cut: %q", text)

	// A stop string from the middle of the text, most likely spanning a
	// token boundary; a second that never occurs must not interfere.
	stop := text[20:26]
	cut := strings.Index(text, stop)
	req := base
	req.Stop = []string{"\x00never", stop}
	var streamed strings.Builder
	res, _, err := e.Generate(context.Background(), []Request{req, base}, func(seq int, id int32, piece string) {
		if seq == 0 {
			streamed.WriteString(piece)
		}
	})
	require.NoError(t, err)
	got := res[0]
	assert.Equal(t, StopString, got.StopReason)
	assert.Equal(t, text[:cut], got.Text)
	assert.Equal(t, got.Text, streamed.String(), "streamed text must not leak the stop string")
	require.LessOrEqual(t, len(got.GenIDs), len(full[0].GenIDs))
	assert.Equal(t, full[0].GenIDs[:len(got.GenIDs)], got.GenIDs)
	// The last token completes the stop string; the one before does not.
	tokText := e.tok.Decode(got.GenIDs)
	assert.Contains(t, tokText, stop)
	assert.NotContains(t, e.tok.Decode(got.GenIDs[:len(got.GenIDs)-1]), stop)
	// The request beside it is unaffected.
	assert.Equal(t, full[0].GenIDs, res[1].GenIDs)
}

// eosAt wraps a model and makes EOS the winning token of every output row
// from the n-th forward call on.
type eosAt struct {
	model.Model
	be    backend.Backend
	calls int
	n     int
	eos   int32
}

func (m *eosAt) Forward(b backend.Batch, logits backend.Tensor) error {
	if err := m.Model.Forward(b, logits); err != nil {
		return err
	}
	m.calls++
	if m.calls < m.n || b.OutputLen() == 0 {
		return nil
	}
	buf := make([]float32, logits.Rows()*logits.Cols())
	if err := m.be.Read(logits, buf); err != nil {
		return err
	}
	for r := 0; r < b.OutputLen(); r++ {
		buf[r*logits.Cols()+int(m.eos)] = 1e9
	}
	return m.be.Write(logits, buf)
}

func TestGenerateEOS(t *testing.T) {
	e, tok := testEngine(t, genModel, model.Options{Ctx: 64, MaxBatch: 32, KVType: backend.F16})
	wrapped := &eosAt{Model: e.m, be: e.be, n: 4, eos: tok.EOS()}
	e2 := New(wrapped, tok, e.be)
	defer e2.Close()
	res, st, err := e2.Generate(context.Background(), []Request{{Prompt: "Once upon a time", MaxTokens: 20}}, nil)
	require.NoError(t, err)
	r := res[0]
	assert.Equal(t, StopEOS, r.StopReason)
	// Call 1 reads the prompt, calls 2 and 3 decode; call 4 yields EOS.
	require.Len(t, r.GenIDs, 4)
	assert.Equal(t, tok.EOS(), r.GenIDs[3])
	dec := tok.NewStreamDecoder()
	want := ""
	for _, id := range r.GenIDs[:3] {
		want += dec.Push(id)
	}
	assert.Equal(t, want+dec.Flush(), r.Text)
	assert.Equal(t, 4, st.GenTokens)
}

func TestGenerateContextLimits(t *testing.T) {
	e, tok := testEngine(t, genModel, model.Options{Ctx: 16, Seqs: 2, MaxBatch: 16, KVType: backend.F16})
	long := make([]int32, 17)
	for i := range long {
		long[i] = int32(100 + i)
	}
	_, _, err := e.Generate(context.Background(), []Request{{PromptIDs: long[:5]}, {PromptIDs: long}}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "request 1")
	assert.Contains(t, err.Error(), "17 tokens")
	assert.Contains(t, err.Error(), "context of 16")
	_, err = e.PromptLogits(long)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "17 tokens")

	// MaxTokens past the context: the last position takes token 16-10=6,
	// whose logits give a 7th token that no position can hold.
	res, _, err := e.Generate(context.Background(), []Request{
		{PromptIDs: long[:10], MaxTokens: 100},
		{PromptIDs: long[:16]},
	}, nil)
	require.NoError(t, err)
	assert.Equal(t, StopLength, res[0].StopReason)
	assert.Len(t, res[0].GenIDs, 7)
	assert.Equal(t, StopLength, res[1].StopReason)
	assert.Len(t, res[1].GenIDs, 1)

	no := false
	for _, bad := range []struct {
		req  Request
		want string
	}{
		{Request{Prompt: "", AddBOS: &no}, "empty prompt"},
		{Request{PromptIDs: []int32{1, 40000}}, "outside the vocabulary"},
		{Request{PromptIDs: []int32{1}, Sampling: SamplerConfig{MinP: 2}}, "min-p"},
		{Request{PromptIDs: []int32{1}, Stop: []string{""}}, "empty stop"},
	} {
		_, _, err := e.Generate(context.Background(), []Request{bad.req}, nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), bad.want)
	}
	// An empty text with BOS is generation from BOS alone.
	res, _, err = e.Generate(context.Background(), []Request{{Prompt: "", MaxTokens: 2}}, nil)
	require.NoError(t, err)
	assert.Equal(t, []int32{tok.BOS()}, res[0].PromptIDs)
	assert.Len(t, res[0].GenIDs, 2)
}

func TestGenerateCancel(t *testing.T) {
	e, _ := testEngine(t, genModel, model.Options{Ctx: 64, MaxBatch: 32, KVType: backend.F16})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	res, _, err := e.Generate(ctx, []Request{{Prompt: "Once upon a time", MaxTokens: 30}}, func(int, int32, string) {
		n++
		if n == 3 {
			cancel()
		}
	})
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)
	require.Len(t, res, 1)
	require.Len(t, res[0].GenIDs, 3)
	assert.Empty(t, res[0].StopReason)
	dec := e.tok.NewStreamDecoder()
	want := ""
	for _, id := range res[0].GenIDs {
		want += dec.Push(id)
	}
	assert.Equal(t, want, res[0].Text, "partial text up to the last token")

	// The engine is usable afterwards.
	res, _, err = e.Generate(context.Background(), []Request{{Prompt: "Once upon a time", MaxTokens: 3}}, nil)
	require.NoError(t, err)
	assert.Len(t, res[0].GenIDs, 3)
}
