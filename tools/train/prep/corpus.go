package main

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// srcFile is one corpus file: its path relative to GOROOT (slash
// separated, so the split is the same on every OS) and its text.
type srcFile struct {
	Rel  string
	Text string
}

// generated matches Go's convention for machine-written files
// (https://go.dev/s/generatedcode). Such files are mostly tables, which
// would teach the model to print hex rather than Go.
var generated = regexp.MustCompile(`(?m)^// Code generated .* DO NOT EDIT\.$`)

// selectFiles returns the standard library's hand-written Go sources in
// GOROOT/src, sorted by path: *.go files that are not tests, not under
// testdata or vendor folders, not part of the toolchain (src/cmd) and not
// generated. The toolchain is left out because its compiler internals are
// a dialect of their own; tests because they are dominated by tables of
// cases.
func selectFiles(goroot string) ([]srcFile, error) {
	src := filepath.Join(goroot, "src")
	var files []srcFile
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch {
			case rel == "cmd", d.Name() == "testdata", d.Name() == "vendor":
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if generated.Match(b) || !utf8.Valid(b) {
			return nil
		}
		files = append(files, srcFile{Rel: "src/" + rel, Text: string(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", src, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no Go sources found under %s", src)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Rel < files[j].Rel })
	return files, nil
}

// isEval puts a file in the held-out evaluation set when the FNV-1a hash
// of its path is 0 modulo mod: a split by file, so no evaluation text was
// seen in training, stable across Go versions for files that persist.
func isEval(rel string, mod uint32) bool {
	h := fnv.New32a()
	h.Write([]byte(rel))
	return h.Sum32()%mod == 0
}

// goVersion reads the first line of GOROOT/VERSION ("go1.26.8").
func goVersion(goroot string) (string, error) {
	f, err := os.Open(filepath.Join(goroot, "VERSION"))
	if err != nil {
		return "", fmt.Errorf("go version: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	if !s.Scan() {
		return "", fmt.Errorf("go version: %s is empty", f.Name())
	}
	return strings.TrimSpace(s.Text()), nil
}

// writeManifest lists every corpus file with its split and size, so the
// corpus can be checked against another Go installation.
func writeManifest(path, version string, train, eval []srcFile) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Corpus of qinfer's default model: %s standard library sources (GOROOT/src, no tests, testdata, vendor, cmd or generated files).\n", version)
	fmt.Fprintf(&b, "# split path bytes\n")
	for _, set := range []struct {
		name  string
		files []srcFile
	}{{"train", train}, {"eval", eval}} {
		for _, f := range set.files {
			fmt.Fprintf(&b, "%s %s %d\n", set.name, f.Rel, len(f.Text))
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return nil
}
