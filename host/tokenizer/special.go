package tokenizer

import (
	"slices"
	"strings"
)

// Texts by which llama.cpp recognises special tokens that the file's
// metadata does not name (llama_vocab::impl::load). Any token found this
// way is also made a control token.
var (
	eotTexts = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
		"<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"}
	eomTexts    = []string{"<|eom_id|>"}
	fimPreTexts = []string{"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>"}
	fimSufTexts = []string{"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>"}
	fimMidTexts = []string{"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>"}
	fimPadTexts = []string{"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}
	fimRepTexts = []string{"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}
	fimSepTexts = []string{"<|file_sep|>"}
	eogTexts    = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
		"<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]",
		"[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
		"<｜end▁of▁sentence｜>", "[e~["}
	// gpt-oss's chat-format markers are always rendered.
	alwaysShownTexts = []string{"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}
)

// findText returns the lowest id whose text is one of texts. (llama.cpp
// takes whichever its hash map yields first; the lowest id makes the
// choice deterministic.)
func (t *Tokenizer) findText(texts []string) int32 {
	best := NoToken
	for _, s := range texts {
		if id, ok := t.tokenToID[s]; ok && (best == NoToken || id < best) {
			best = id
		}
	}
	return best
}

func (t *Tokenizer) makeControl(id int32) {
	if id != NoToken {
		t.attrs[id] |= attrControl
	}
}

// detectSpecial applies llama.cpp's text-based special-token rules: EOT,
// EOM and fill-in-the-middle tokens, the end-of-generation set, its
// model-specific exceptions, and the per-model whitespace stripping.
func (t *Tokenizer) detectSpecial(v *Vocab) {
	if t.eot == NoToken {
		t.eot = t.findText(eotTexts)
		t.makeControl(t.eot)
	}
	if t.eom == NoToken {
		t.eom = t.findText(eomTexts)
		t.makeControl(t.eom)
	}
	for _, texts := range [][]string{fimPreTexts, fimSufTexts, fimMidTexts} {
		t.makeControl(t.findText(texts))
	}

	t.eog = make(map[int32]bool)
	for _, texts := range [][]string{fimPadTexts, fimRepTexts, fimSepTexts} {
		if id := t.findText(texts); id != NoToken {
			t.makeControl(id)
			t.eog[id] = true
		}
	}
	for _, s := range eogTexts {
		if id, ok := t.tokenToID[s]; ok {
			t.eog[id] = true
			t.makeControl(id)
		}
	}
	for _, s := range alwaysShownTexts {
		if id, ok := t.tokenToID[s]; ok {
			t.attrs[id] = attrUserDefined
		}
	}
	for _, id := range []int32{t.eos, t.eot, t.eom} {
		if id != NoToken {
			t.eog[id] = true
		}
	}
	// o200k_harmony and solar-open end turns with "<|return|>"/"<|call|>"
	// ("<|calls|>"/"<|flush|>"); there "<|end|>" only ends a message.
	has := func(s string) bool { id, ok := t.tokenToID[s]; return ok && t.eog[id] }
	if end, ok := t.tokenToID["<|end|>"]; ok && t.eog[end] {
		call := has("<|call|>") || has("<|calls|>")
		if (has("<|return|>") && call) || (call && has("<|flush|>")) {
			delete(t.eog, end)
			t.attrs[end] = attrUserDefined
		}
	}
	// Gemma 4 and PaddleOCR use "</s>" as ordinary text.
	if s, ok := t.tokenToID["</s>"]; ok && t.eog[s] && has("<|tool_response>") {
		delete(t.eog, s)
		t.attrs[s] = attrNormal
	}

	for id, a := range t.attrs {
		if a&(attrControl|attrUserDefined|attrUnknown) != 0 {
			t.special = append(t.special, int32(id))
		}
	}
	slices.SortStableFunc(t.special, func(a, b int32) int { return len(t.tokens[b]) - len(t.tokens[a]) })

	t.applyStripRules(v)
}

func (t *Tokenizer) applyStripRules(v *Vocab) {
	set := func(text string, a attr, on bool) {
		id, ok := t.tokenToID[text]
		if !ok {
			return
		}
		if on {
			t.attrs[id] |= a
		} else {
			t.attrs[id] &^= a
		}
	}
	name := strings.ToLower(v.Name)
	switch {
	case strings.Contains(v.Pre, "jina-v2-de") || strings.Contains(v.Pre, "jina-v2-es") || strings.Contains(v.Pre, "jina-v2-code"):
		set("<mask>", attrLStrip, true)
	case strings.Contains(name, "phi-3") || strings.Contains(name, "phi3"):
		for _, id := range t.special {
			t.attrs[id] |= attrRStrip
		}
		set("</s>", attrRStrip, true)
		for _, s := range []string{"<unk>", "<s>", "<|endoftext|>"} {
			set(s, attrRStrip, false)
		}
	case strings.Contains(name, "modern-bert"):
		set("[MASK]", attrLStrip, true)
	}
}

// fragment is a stretch of raw text or one special token.
type fragment struct {
	token      int32 // NoToken for raw text
	start, end int
}

// partition splits text around the special tokens it contains, as
// llama.cpp's tokenizer_st_partition does: each special token in turn,
// longest first, is cut out of whatever raw text is left. Control and
// unknown tokens are only looked for when parseSpecial is set;
// user-defined ones always are.
func (t *Tokenizer) partition(text string, parseSpecial bool) []fragment {
	if text == "" {
		return nil
	}
	frags := []fragment{{token: NoToken, start: 0, end: len(text)}}
	var next []fragment
	for _, id := range t.special {
		a := t.attrs[id]
		if !parseSpecial && a&(attrControl|attrUnknown) != 0 {
			continue
		}
		tok := t.tokens[id]
		next = next[:0]
		for _, f := range frags {
			if f.token != NoToken {
				next = append(next, f)
				continue
			}
			s, e := f.start, f.end
			for s < e {
				i := strings.Index(text[s:e], tok)
				if i < 0 {
					next = append(next, fragment{token: NoToken, start: s, end: e})
					break
				}
				m := s + i
				left := m
				if a&attrLStrip != 0 {
					for left > s && isSpaceC(text[left-1]) {
						left--
					}
				}
				if left > s {
					next = append(next, fragment{token: NoToken, start: s, end: left})
				}
				next = append(next, fragment{token: id})
				s = m + len(tok)
				if a&attrRStrip != 0 {
					for s < e && isSpaceC(text[s]) {
						s++
					}
				}
			}
		}
		frags, next = next, frags
	}
	return frags
}

// isSpaceC is C's isspace in the "C" locale.
func isSpaceC(b byte) bool { return b == ' ' || (b >= '\t' && b <= '\r') }
