package tokenizer

import "strings"

// buildPieces renders every token once, the way llama.cpp's
// token_to_piece does with special tokens shown.
func (t *Tokenizer) buildPieces() {
	t.pieces = make([][]byte, len(t.tokens))
	for id, text := range t.tokens {
		a := t.attrs[id]
		switch {
		case a&(attrUnknown|attrControl|attrUserDefined) != 0:
			t.pieces[id] = []byte(text)
		case a&attrNormal != 0:
			if t.spm {
				t.pieces[id] = []byte(strings.ReplaceAll(text, spaceMarker, " "))
			} else {
				t.pieces[id] = byteDecode(text)
			}
		case a&attrByte != 0:
			t.pieces[id] = []byte{byteTokenValue(text)}
		default:
			// Unused and undefined tokens render as nothing.
			t.pieces[id] = []byte{}
		}
	}
}

// byteTokenValue reads the XX of a "<0xXX>" byte token the way llama.cpp
// does (strtol on the two characters after "<0x"; 0 if they are not hex).
func byteTokenValue(text string) byte {
	if len(text) < 4 {
		return 0
	}
	digits := text[3:min(5, len(text))]
	var v byte
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		default:
			return v
		}
	}
	return v
}

// piece returns the bytes id decodes to; control and unknown tokens
// decode to nothing unless special is set. Invalid ids decode to nothing.
func (t *Tokenizer) piece(id int32, special bool) []byte {
	if id < 0 || int(id) >= len(t.tokens) {
		return nil
	}
	if !special && t.attrs[id]&(attrUnknown|attrControl) != 0 {
		return nil
	}
	return t.pieces[id]
}

// TokenPiece returns the bytes of one token: a normal token's text with
// SPM's U+2581 turned back into spaces or BPE's byte alphabet turned back
// into bytes, a byte token's byte, and a special token's own text (Decode
// drops control tokens instead). A piece may be part of a UTF-8 character.
// It returns nil for an invalid id.
func (t *Tokenizer) TokenPiece(id int32) []byte {
	p := t.piece(id, true)
	if p == nil {
		return nil
	}
	return append([]byte(nil), p...)
}

// Decode returns the text of a token sequence with llama.cpp's
// detokenizer rules (llama_detokenize without removing or showing special
// tokens): control tokens such as BOS and EOS produce nothing, byte tokens
// are assembled into UTF-8, and for SPM vocabularies the space that
// tokenization prefixed is removed from the first token, but only if that
// token is the first of ids (after a BOS the space stays, as in
// llama.cpp). BPE vocabularies whose family asks for it get
// clean_up_tokenization_spaces (" ." -> ".", " 's" -> "'s", ...).
// Invalid ids are skipped. Bytes that do not form UTF-8 are passed
// through unchanged.
func (t *Tokenizer) Decode(ids []int32) string {
	var b []byte
	removeSpace := t.addSpacePrefix
	for _, id := range ids {
		p := t.piece(id, false)
		if removeSpace && len(p) > 0 && p[0] == ' ' {
			p = p[1:]
		}
		removeSpace = false
		b = append(b, p...)
	}
	if t.cleanSpaces {
		b = cleanUpSpaces(b)
	}
	return string(b)
}

// cleanUpSpaces is llama.cpp's three in-place passes of
// clean_up_tokenization_spaces, kept literally because their quirks (an
// apostrophe between spaces, contractions) define the output.
func cleanUpSpaces(text []byte) []byte {
	total := len(text)
	if total == 0 {
		return text
	}

	// " ?", " !", " .", " ," lose the space.
	n := total
	total = 1
	for i := 1; i < n; i++ {
		x := text[i]
		if text[i-1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',') {
			total--
		}
		text[total] = x
		total++
	}

	// " ' " becomes "'".
	n = total
	total = 1
	for i := 1; i < n; i++ {
		x := text[i]
		if x == '\'' && i+1 < n && text[i-1] == ' ' && text[i+1] == ' ' {
			total--
			i++
			text[i] = 0
		}
		text[total] = x
		total++
	}

	// " 's", " 'm", " 're", " 've" lose the space.
	n = total
	total = 1
	for i := 1; i < n; i++ {
		x := text[i]
		if text[i-1] == ' ' && x == '\'' && i+1 < n {
			x1 := text[i+1]
			switch {
			case x1 == 't' || x1 == 'd':
			case x1 == 's' || x1 == 'm':
				total--
			case i+2 < n:
				x2 := text[i+2]
				if (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e') {
					total--
				}
			}
		}
		text[total] = x
		total++
	}
	return text[:total]
}
