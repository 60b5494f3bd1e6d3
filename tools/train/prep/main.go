// Command prep builds the training data of qinfer's embedded default
// model from the Go distribution's own sources: it selects the files,
// splits off a held-out evaluation set by file, learns a SentencePiece-
// style vocabulary, writes it as a vocabulary-only GGUF file, and
// tokenizes everything with qinfer's tokenizer loaded from that file, so
// that training ids and inference ids agree by construction.
//
// Outputs in -out: manifest.txt (the corpus files), vocab.gguf,
// train.bin and eval.bin (uint16 little-endian ids, each file as BOS,
// text, EOS), prompts.json (the demo prompts and their ids),
// pieces.json (each token's bytes in hex, for the training log's samples)
// and stats.json.
package main

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"qinfer/host/gguf"
	"qinfer/host/tokenizer"
)

func main() {
	goroot := flag.String("goroot", "", "Go installation whose sources are the corpus (required)")
	out := flag.String("out", "", "output folder (required)")
	manifest := flag.String("manifest", "", "where to write the corpus manifest (default: in -out)")
	vocabSize := flag.Int("vocab", 2048, "vocabulary size")
	minChar := flag.Int("min-char", 50, "characters rarer than this in the training text are spelled in bytes")
	evalMod := flag.Uint("eval-mod", 40, "a file is held out when the hash of its path is 0 modulo this")
	prompts := flag.String("prompts", "", "demo prompts file (one Go-quoted string a line) to tokenize into prompts.json")
	flag.Parse()
	if *goroot == "" || *out == "" || *evalMod == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *manifest == "" {
		*manifest = filepath.Join(*out, "manifest.txt")
	}
	if err := run(*goroot, *out, *manifest, *prompts, vocabOptions{Size: *vocabSize, MinCharCount: *minChar}, uint32(*evalMod)); err != nil {
		log.Fatalf("prep: %v", err)
	}
}

// stats summarises the corpus for the training log and the docs.
type stats struct {
	GoVersion  string `json:"go_version"`
	TrainFiles int    `json:"train_files"`
	EvalFiles  int    `json:"eval_files"`
	TrainBytes int    `json:"train_bytes"`
	EvalBytes  int    `json:"eval_bytes"`
	TrainIDs   int    `json:"train_tokens"`
	EvalIDs    int    `json:"eval_tokens"`
	Vocab      int    `json:"vocab"`
	BOS        int32  `json:"bos"`
	EOS        int32  `json:"eos"`
}

// prompt is a demo prompt with the ids qinfer gives it (BOS first).
type prompt struct {
	Text string  `json:"text"`
	IDs  []int32 `json:"ids"`
}

func run(goroot, out, manifest, promptsPath string, vopt vocabOptions, evalMod uint32) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	version, err := goVersion(goroot)
	if err != nil {
		return err
	}
	files, err := selectFiles(goroot)
	if err != nil {
		return err
	}
	var train, eval []srcFile
	for _, f := range files {
		if isEval(f.Rel, evalMod) {
			eval = append(eval, f)
		} else {
			train = append(train, f)
		}
	}
	if len(train) == 0 || len(eval) == 0 {
		return fmt.Errorf("split of %d files left %d for training and %d for evaluation", len(files), len(train), len(eval))
	}
	if err := writeManifest(manifest, version, train, eval); err != nil {
		return err
	}
	st := stats{GoVersion: version, TrainFiles: len(train), EvalFiles: len(eval)}
	texts := make([]string, len(train))
	for i, f := range train {
		texts[i] = f.Text
		st.TrainBytes += len(f.Text)
	}
	for _, f := range eval {
		st.EvalBytes += len(f.Text)
	}
	log.Printf("corpus: %s, %d training files (%d bytes), %d evaluation files (%d bytes)", version, len(train), st.TrainBytes, len(eval), st.EvalBytes)

	t0 := time.Now()
	v, err := learnVocab(texts, vopt)
	if err != nil {
		return fmt.Errorf("learn vocabulary: %w", err)
	}
	log.Printf("vocabulary: %d tokens learned in %v", len(v.Tokens), time.Since(t0).Round(time.Millisecond))
	vocabPath := filepath.Join(out, "vocab.gguf")
	if err := writeVocab(vocabPath, v, version); err != nil {
		return err
	}

	// Tokenize with the tokenizer as inference builds it: from the file.
	f, err := gguf.Open(vocabPath)
	if err != nil {
		return err
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return fmt.Errorf("%s: %w", vocabPath, err)
	}
	st.Vocab, st.BOS, st.EOS = tok.VocabSize(), tok.BOS(), tok.EOS()
	if st.Vocab > 1<<16 {
		return fmt.Errorf("vocabulary of %d tokens does not fit uint16 ids", st.Vocab)
	}
	t0 = time.Now()
	if st.TrainIDs, err = tokenizeFiles(tok, train, filepath.Join(out, "train.bin")); err != nil {
		return err
	}
	if st.EvalIDs, err = tokenizeFiles(tok, eval, filepath.Join(out, "eval.bin")); err != nil {
		return err
	}
	log.Printf("tokenized: %d training and %d evaluation tokens (%.2f bytes a token) in %v",
		st.TrainIDs, st.EvalIDs, float64(st.TrainBytes)/float64(st.TrainIDs), time.Since(t0).Round(time.Millisecond))

	pieces := make([]string, tok.VocabSize())
	for i := range pieces {
		pieces[i] = hex.EncodeToString(tok.TokenPiece(int32(i)))
	}
	if err := writeJSON(filepath.Join(out, "pieces.json"), pieces); err != nil {
		return err
	}
	if promptsPath != "" {
		if err := writePrompts(tok, promptsPath, filepath.Join(out, "prompts.json")); err != nil {
			return err
		}
	}
	return writeJSON(filepath.Join(out, "stats.json"), st)
}

// writeVocab stores v as the tokenizer.ggml.* metadata of a tensor-less
// GGUF file, which the converter copies into the model.
func writeVocab(path string, v *tokenizer.Vocab, version string) error {
	b := gguf.NewBuilder()
	b.Set("general.name", gguf.Str("qinfer default model vocabulary"))
	b.Set("general.source.description", gguf.Str("learned from the "+version+" standard library sources by qinfer tools/train/prep"))
	b.Set("tokenizer.ggml.model", gguf.Str(v.Model))
	b.Set("tokenizer.ggml.tokens", gguf.StrArray(v.Tokens))
	b.Set("tokenizer.ggml.scores", gguf.F32Array(v.Scores))
	b.Set("tokenizer.ggml.token_type", gguf.I32Array(v.Types))
	b.Set("tokenizer.ggml.bos_token_id", gguf.U32(uint32(v.BOS)))
	b.Set("tokenizer.ggml.eos_token_id", gguf.U32(uint32(v.EOS)))
	b.Set("tokenizer.ggml.unknown_token_id", gguf.U32(uint32(v.UNK)))
	b.Set("tokenizer.ggml.add_bos_token", gguf.Bool(v.AddBOS))
	b.Set("tokenizer.ggml.add_eos_token", gguf.Bool(v.AddEOS))
	b.Set("tokenizer.ggml.add_space_prefix", gguf.Bool(v.AddSpacePrefix))
	if err := b.WriteFile(path); err != nil {
		return fmt.Errorf("write vocabulary %s: %w", path, err)
	}
	return nil
}

// tokenizeFiles writes each file as BOS, its ids, EOS, and checks that
// the ids decode back to the file's text.
func tokenizeFiles(tok *tokenizer.Tokenizer, files []srcFile, path string) (int, error) {
	var buf []byte
	n := 0
	for _, f := range files {
		ids, err := tok.Encode(f.Text, false, false)
		if err != nil {
			return 0, fmt.Errorf("tokenize %s: %w", f.Rel, err)
		}
		if back := tok.Decode(ids); back != f.Text {
			return 0, fmt.Errorf("tokenize %s: ids do not decode back to the text (%d bytes, got %d)", f.Rel, len(f.Text), len(back))
		}
		buf = binary.LittleEndian.AppendUint16(buf, uint16(tok.BOS()))
		for _, id := range ids {
			buf = binary.LittleEndian.AppendUint16(buf, uint16(id))
		}
		buf = binary.LittleEndian.AppendUint16(buf, uint16(tok.EOS()))
		n += len(ids) + 2
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		return 0, err
	}
	return n, nil
}

// readPrompts reads the demo prompt format of host/builtin/prompts.txt
// (builtin.ParsePrompts): one double-quoted Go string a line, blank lines
// and lines starting with # skipped. prep cannot import host/builtin,
// which embeds the model that prep's output goes on to build; the
// builtin tests check that the ids written here are the ones it gets.
func readPrompts(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := strconv.Unquote(line)
		if err != nil || !strings.HasPrefix(line, `"`) {
			return nil, fmt.Errorf("%s:%d: %q is not a double-quoted Go string", path, i+1, line)
		}
		out = append(out, s)
	}
	return out, nil
}

func writePrompts(tok *tokenizer.Tokenizer, src, dst string) error {
	texts, err := readPrompts(src)
	if err != nil {
		return err
	}
	ps := make([]prompt, len(texts))
	for i, t := range texts {
		ids, err := tok.Encode(t, tok.AddBOS(), false)
		if err != nil {
			return fmt.Errorf("prompt %q: %w", t, err)
		}
		ps[i] = prompt{Text: t, IDs: ids}
	}
	return writeJSON(dst, ps)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
