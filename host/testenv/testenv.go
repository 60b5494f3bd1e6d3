// Package testenv locates the shared test data (GGUF files and llama.cpp
// reference outputs) and the GPU requirement for tests of every package.
package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the shared test data folder: $QINFER_TESTDATA, or
// ../shared/testdata beside the repository root. It skips the test when
// the folder is missing, saying where it looked.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("QINFER_TESTDATA")
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			t.Skipf("shared test data: %v; set QINFER_TESTDATA", err)
		}
		dir = filepath.Join(root, "..", "shared", "testdata")
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Skipf("shared test data not found at %s; set QINFER_TESTDATA to run this test", dir)
	}
	return dir
}

// Path returns a file inside the shared test data folder, skipping the
// test when it is missing.
func Path(t testing.TB, rel ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{Dir(t)}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("test file %s not found; set QINFER_TESTDATA to run this test", p)
	}
	return p
}

// RepoRoot walks up from the working directory to the folder holding
// go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// RequireGPU reports whether QINFER_REQUIRE_GPU=1: GPU tests then fail
// instead of skipping when no GPU is usable.
func RequireGPU() bool { return os.Getenv("QINFER_REQUIRE_GPU") == "1" }

// NoGPU skips the test with reason, or fails it when QINFER_REQUIRE_GPU=1.
func NoGPU(t testing.TB, reason string) {
	t.Helper()
	if RequireGPU() {
		t.Fatalf("QINFER_REQUIRE_GPU=1 but no GPU is usable: %s", reason)
	}
	t.Skipf("no GPU: %s (set QINFER_REQUIRE_GPU=1 to make this a failure)", reason)
}
