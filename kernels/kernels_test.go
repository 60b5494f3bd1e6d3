package kernels

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite emu/kernels.inc from the kernel table")

func readKernelFile(name string) ([]byte, error) { return os.ReadFile(name) }

// sources returns the .cu files of this folder with the architectures each
// lists on its "// qinfer-arch:" line.
func sources(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob("*.cu")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string][]string{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		m := regexp.MustCompile(`(?m)^// qinfer-arch: (.*)$`).FindSubmatch(src)
		require.NotNil(t, m, "%s has no // qinfer-arch: line", f)
		out[strings.TrimSuffix(f, ".cu")] = strings.Fields(string(m[1]))
	}
	return out
}

func TestModulesAreTheSources(t *testing.T) {
	srcs := sources(t)
	var names []string
	for m := range srcs {
		names = append(names, m)
	}
	sort.Strings(names)
	mods := append([]string(nil), Modules...)
	sort.Strings(mods)
	assert.Equal(t, names, mods, "Modules must list every kernels/*.cu")
	for m, archs := range srcs {
		var want []string
		for _, a := range Archs {
			want = append(want, a.Name)
		}
		assert.Equal(t, want, archs, "%s.cu must be compiled for every variant Select can pick", m)
	}
}

// TestPTXIsFresh fails when a source (or a header it includes) changed
// and ./build.sh kernels was not run.
func TestPTXIsFresh(t *testing.T) {
	for mod, archs := range sources(t) {
		src, err := os.ReadFile(mod + ".cu")
		require.NoError(t, err)
		want, err := SourceHash(src, readKernelFile)
		require.NoError(t, err)
		for _, name := range archs {
			ptx, err := PTX(mod, Arch{Name: name})
			require.NoError(t, err)
			got, err := RecordedHash(ptx)
			require.NoError(t, err, PTXName(mod, Arch{Name: name}))
			assert.Equal(t, want, got, "%s is stale: run ./build.sh kernels", PTXName(mod, Arch{Name: name}))
		}
	}
}

func TestEmbeddedPTXAreExpected(t *testing.T) {
	var want []string
	for _, m := range Modules {
		for _, a := range Archs {
			want = append(want, PTXName(m, a))
		}
	}
	sort.Strings(want)
	assert.Equal(t, want, EmbeddedPTX(), "kernels/ptx must hold exactly one file per module and variant")
}

// TestSourceHashCoversHeaders checks the hash against a closed-form
// SHA-256 and that a header change changes it.
func TestSourceHashCoversHeaders(t *testing.T) {
	src := []byte("// x\n#include \"a.cuh\"\n#include <stdint.h>\nint y;\n#include \"b.cuh\"\n")
	files := map[string][]byte{"a.cuh": []byte("A1\n"), "b.cuh": []byte("B\n")}
	read := func(n string) ([]byte, error) {
		b, ok := files[n]
		if !ok {
			return nil, os.ErrNotExist
		}
		return b, nil
	}
	sum := sha256.Sum256(append(append(append([]byte(nil), src...), files["a.cuh"]...), files["b.cuh"]...))
	got, err := SourceHash(src, read)
	require.NoError(t, err)
	assert.Equal(t, hex.EncodeToString(sum[:]), got)

	files["a.cuh"] = []byte("A2\n")
	got2, err := SourceHash(src, read)
	require.NoError(t, err)
	assert.NotEqual(t, got, got2)

	_, err = SourceHash([]byte("#include \"missing.cuh\"\n"), read)
	assert.ErrorContains(t, err, "missing.cuh")
}

func TestRecordedHash(t *testing.T) {
	h, err := RecordedHash([]byte(HashHeader + "abc123\n.version 7.8\n"))
	require.NoError(t, err)
	assert.Equal(t, "abc123", h)
	_, err = RecordedHash([]byte(".version 7.8\n"))
	assert.Error(t, err)
}

func TestPTXHeaders(t *testing.T) {
	for _, m := range Modules {
		for _, a := range Archs {
			ptx, err := PTX(m, a)
			require.NoError(t, err)
			ver := regexp.MustCompile(`(?m)^\.version (\d+)\.(\d+)$`).FindSubmatch(ptx)
			require.NotNil(t, ver, "%s: no .version", PTXName(m, a))
			major, _ := strconv.Atoi(string(ver[1]))
			minor, _ := strconv.Atoi(string(ver[2]))
			// PTX ISA 7.0 is CUDA 11.0's: mma.sync m16n8k32 s8 and cp.async need it.
			assert.GreaterOrEqual(t, 10*major+minor, 70, "%s: PTX ISA %d.%d", PTXName(m, a), major, minor)
			target := regexp.MustCompile(`(?m)^\.target (\S+)$`).FindSubmatch(ptx)
			require.NotNil(t, target, "%s: no .target", PTXName(m, a))
			assert.Equal(t, "sm_"+strings.TrimPrefix(a.Name, "compute_"), string(target[1]), PTXName(m, a))
			assert.Contains(t, string(ptx), "\n.address_size 64\n", PTXName(m, a))
		}
	}
}

type entry struct {
	params  []string // PTX parameter types, ".u64"
	threads int      // .maxntid x
}

var entryRE = regexp.MustCompile(`(?s)\.visible \.entry (\w+)\(\s*(.*?)\)\s*(\.maxntid (\d+), 1, 1)?`)
var paramRE = regexp.MustCompile(`\.param (\.\w+) \w+`)

func parseEntries(t *testing.T, ptx []byte) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	for _, m := range entryRE.FindAllSubmatch(ptx, -1) {
		var e entry
		for _, p := range paramRE.FindAllSubmatch(m[2], -1) {
			e.params = append(e.params, string(p[1]))
		}
		if len(m[4]) > 0 {
			e.threads, _ = strconv.Atoi(string(m[4]))
		}
		out[string(m[1])] = e
	}
	return out
}

// TestEntryPoints checks the launch table against the PTX of every
// variant: each kernel exists with the parameter list the Go side
// marshals and the block size it is launched with, and the PTX has no
// entry the table lacks.
func TestEntryPoints(t *testing.T) {
	byModule := map[string][]*Kernel{}
	for _, k := range All() {
		byModule[k.Module] = append(byModule[k.Module], k)
	}
	for _, m := range Modules {
		for _, a := range Archs {
			ptx, err := PTX(m, a)
			require.NoError(t, err)
			entries := parseEntries(t, ptx)
			require.NotEmpty(t, entries, PTXName(m, a))
			seen := map[string]bool{}
			for _, k := range byModule[m] {
				seen[k.Name] = true
				e, ok := entries[k.Name]
				if !assert.True(t, ok, "%s: %s missing", PTXName(m, a), k.Name) {
					continue
				}
				if !assert.Len(t, e.params, len(k.Params), "%s: %s parameter count", PTXName(m, a), k.Name) {
					continue
				}
				for i, p := range k.Params {
					want := ".u64"
					if p == Float {
						want = ".f32"
					}
					assert.Equal(t, want, e.params[i], "%s: %s parameter %d", PTXName(m, a), k.Name, i)
				}
				assert.Equal(t, k.Threads, e.threads, "%s: %s block size (.maxntid)", PTXName(m, a), k.Name)
			}
			for name := range entries {
				assert.True(t, seen[name], "%s: entry %s is not in the kernel table", PTXName(m, a), name)
			}
		}
	}
}

func TestKernelTable(t *testing.T) {
	names := map[string]bool{}
	for _, k := range All() {
		assert.False(t, names[k.Name], "duplicate kernel %s", k.Name)
		names[k.Name] = true
		assert.True(t, strings.HasPrefix(k.Name, "qi_"), k.Name)
		assert.Contains(t, Modules, k.Module, k.Name)
		assert.Positive(t, k.Threads, k.Name)
		assert.Zero(t, k.Threads%32, "%s: the emulator and the kernels assume whole warps", k.Name)
	}
	for _, ks := range [][]*Kernel{GemvQ8_0, GemvQ4_0, GemvQ4_K, GemvQ5_K, GemvQ6_K, GemvW8, GemvF16, GemvF32, GemvFP8, GemvTernary, GemvBinary} {
		require.Len(t, ks, len(GEMVTokens))
		for i, n := range GEMVTokens {
			assert.True(t, strings.HasSuffix(ks[i].Name, fmt.Sprintf("_t%d", n)), ks[i].Name)
		}
	}
	n := len(all)
	assert.Panics(t, func() { def("x", "qi_bad", 32, "PQ") })
	assert.Len(t, all, n, "a rejected definition must not enter the table")
}

func TestSelect(t *testing.T) {
	for _, c := range []struct {
		major, minor int
		want         string
	}{{6, 1, "compute_61"}, {7, 0, "compute_61"}, {7, 5, "compute_61"}, {8, 0, "compute_80"}, {8, 6, "compute_80"},
		{8, 9, "compute_80"}, {9, 0, "compute_80"}, {12, 0, "compute_80"}} {
		a, err := Select(c.major, c.minor)
		require.NoError(t, err)
		assert.Equal(t, c.want, a.Name, "%d.%d", c.major, c.minor)
	}
	_, err := Select(5, 2)
	assert.ErrorContains(t, err, "5.2")
	_, err = Select(6, 0)
	assert.ErrorContains(t, err, "6.1")
}

func TestPTXMissingModule(t *testing.T) {
	_, err := PTX("nosuch", Archs[0])
	assert.ErrorContains(t, err, "nosuch")
}

// TestEmuKernelList keeps the emulator's kernel list (emu/kernels.inc)
// equal to the table; -update rewrites it.
func TestEmuKernelList(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("// Generated from the kernel table (go test ./kernels -run TestEmuKernelList -update).\n")
	for _, k := range All() {
		fmt.Fprintf(&b, "QI_K(%s)\n", k.Name)
	}
	path := filepath.Join("emu", "kernels.inc")
	if *update {
		require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, b.String(), string(got), "run go test ./kernels -run TestEmuKernelList -update")
}

// TestEmuSourcesHash: the emulator (kernels/emu) compiles the kernel
// sources from the folder above, which the go command does not hash, so
// emu/sources.h carries their hash and a change rebuilds it. This fails
// when a source changed and ./build.sh kernels did not rewrite the
// header (tests would run a stale emulator).
func TestEmuSourcesHash(t *testing.T) {
	h := sha256.New()
	for _, pat := range []string{"*.cu", "*.cuh"} {
		files, err := filepath.Glob(pat)
		require.NoError(t, err)
		sort.Strings(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			h.Write(b)
		}
	}
	hdr, err := os.ReadFile(filepath.Join("emu", "sources.h"))
	require.NoError(t, err, "run ./build.sh kernels")
	assert.Contains(t, string(hdr), fmt.Sprintf("#define QI_EMU_SOURCES %q\n", hex.EncodeToString(h.Sum(nil))),
		"emu/sources.h is stale: run ./build.sh kernels")
}
