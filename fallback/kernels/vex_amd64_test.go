//go:build amd64 && !purego

package kernels

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
)

// sdmVPDPBUSD encodes vpdpbusd ymm(reg), ymm(vvvv), ymm(rm) (Intel operand
// order) as the Intel SDM defines its AVX-VNNI form, VEX.256.66.0F38.W0
// 50 /r, field by field. It is written independently of the generators'
// encoder (gen.VEXVPDPBUSDY), so that the two would have to make the same
// mistake for a wrong encoding to pass.
func sdmVPDPBUSD(reg, vvvv, rm int) []byte {
	const (
		vex3    = 0xc4 // three-byte VEX: the 0F38 map needs it
		mmmmm   = 0x02 // opcode map 0F38
		x       = 0    // no index register
		w       = 0    // W0
		l       = 1    // 256-bit vectors
		pp      = 0x01 // implied 66 prefix
		opcode  = 0x50
		modReg  = 3 // ModRM.mod: register operand
		notBits = 1 // R, X, B and vvvv are stored inverted
	)
	r, b := reg>>3, rm>>3
	p1 := (r^notBits)<<7 | (x^notBits)<<6 | (b^notBits)<<5 | mmmmm
	p2 := w<<7 | (vvvv^0xf)<<3 | l<<2 | pp
	modrm := modReg<<6 | (reg&7)<<3 | rm&7
	return []byte{vex3, byte(p1), byte(p2), opcode, byte(modrm)}
}

// TestSDMVPDPBUSD checks the test's encoder against encodings printed by
// an assembler that knows AVX-VNNI (llvm-mc 14, "{vex} vpdpbusd ymm1,
// ymm2, ymm3" with -mattr=+avxvnni -show-encoding), covering registers
// 8-15 in each field.
func TestSDMVPDPBUSD(t *testing.T) {
	for _, c := range []struct {
		reg, vvvv, rm int
		want          []byte
	}{
		{1, 2, 3, []byte{0xc4, 0xe2, 0x6d, 0x50, 0xcb}},
		{9, 10, 11, []byte{0xc4, 0x42, 0x2d, 0x50, 0xcb}},
		{0, 14, 15, []byte{0xc4, 0xc2, 0x0d, 0x50, 0xc7}},
		{5, 14, 15, []byte{0xc4, 0xc2, 0x0d, 0x50, 0xef}},
		{8, 3, 12, []byte{0xc4, 0x42, 0x65, 0x50, 0xc4}},
		{15, 0, 7, []byte{0xc4, 0x62, 0x7d, 0x50, 0xff}},
	} {
		assert.Equal(t, c.want, sdmVPDPBUSD(c.reg, c.vvvv, c.rm), "vpdpbusd ymm%d, ymm%d, ymm%d", c.reg, c.vvvv, c.rm)
	}
}

// asmFunc is one TEXT function of a generated assembly file.
type asmFunc struct {
	file, name string
	requires   []string
	vexDots    int // BYTE-encoded VPDPBUSD instructions
}

var (
	textRe     = regexp.MustCompile(`^TEXT ·(\w+)\(SB\)`)
	requiresRe = regexp.MustCompile(`^// Requires: (.*)$`)
	vexDotRe   = regexp.MustCompile(`^// VPDPBUSD Y(\d+), Y(\d+), Y(\d+) \(AVX-VNNI, VEX\)$`)
	byteRe     = regexp.MustCompile(`^BYTE\s+\$0x([0-9a-f]{2})$`)
)

// scanAsm reads the functions of every *_amd64.s file of the package and
// checks each BYTE-encoded instruction: every BYTE directive must belong
// to a group of five that follows a "// VPDPBUSD Yx, Yw, Yacc" comment
// (Go's operand order) and holds sdmVPDPBUSD(acc, w, x).
func scanAsm(t *testing.T) []asmFunc {
	files, err := filepath.Glob("*_amd64.s")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var funcs []asmFunc
	for _, name := range files {
		f, err := os.Open(name)
		require.NoError(t, err)
		var lines []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			lines = append(lines, strings.TrimSpace(sc.Text()))
		}
		require.NoError(t, sc.Err(), name)
		f.Close()

		var requires []string
		var cur *asmFunc
		for i := 0; i < len(lines); i++ {
			l := lines[i]
			if m := requiresRe.FindStringSubmatch(l); m != nil {
				requires = strings.Split(m[1], ", ")
				continue
			}
			if m := textRe.FindStringSubmatch(l); m != nil {
				funcs = append(funcs, asmFunc{file: name, name: m[1], requires: requires})
				cur = &funcs[len(funcs)-1]
				requires = nil
				continue
			}
			if byteRe.MatchString(l) {
				t.Fatalf("%s:%d: BYTE directive outside a VPDPBUSD group", name, i+1)
			}
			m := vexDotRe.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			require.NotNil(t, cur, "%s:%d: instruction outside a function", name, i+1)
			x, _ := strconv.Atoi(m[1])
			w, _ := strconv.Atoi(m[2])
			acc, _ := strconv.Atoi(m[3])
			want := sdmVPDPBUSD(acc, w, x)
			require.LessOrEqual(t, i+len(want), len(lines)-1, "%s:%d: truncated", name, i+1)
			for k, b := range want {
				bm := byteRe.FindStringSubmatch(lines[i+1+k])
				require.NotNil(t, bm, "%s:%d: byte %d of %s is %q", name, i+2+k, k, l, lines[i+1+k])
				got, _ := strconv.ParseUint(bm[1], 16, 8)
				require.Equal(t, fmt.Sprintf("%#02x", b), fmt.Sprintf("%#02x", got), "%s:%d: byte %d of %s", name, i+2+k, k, l)
			}
			cur.vexDots++
			i += len(want)
		}
	}
	return funcs
}

// TestVEXEncodings checks the BYTE-encoded VPDPBUSD of the AVX-VNNI
// kernels (see scanAsm), and that the assembly a CPU without AVX-512 can
// reach needs none: the AVX-VNNI kernels (…AVXVNNI) require AVX-VNNI and
// no AVX-512, and so does every other function but the AVX512-VNNI
// kernels (…VNNI) and clearUpperZMM, which only the "vnni" setting runs.
func TestVEXEncodings(t *testing.T) {
	funcs := scanAsm(t)
	byName := map[string]asmFunc{}
	for _, f := range funcs {
		byName[f.name] = f
		avx512 := false
		for _, isa := range f.requires {
			avx512 = avx512 || strings.HasPrefix(isa, "AVX512")
		}
		switch {
		case strings.HasSuffix(f.name, "AVXVNNI"):
			assert.Contains(t, f.requires, "AVXVNNI", "%s %s", f.file, f.name)
			assert.Positive(t, f.vexDots, "%s %s: no VEX VPDPBUSD", f.file, f.name)
			assert.False(t, avx512, "%s %s requires %v", f.file, f.name, f.requires)
		case strings.HasSuffix(f.name, "VNNI") || f.name == "clearUpperZMM":
			assert.Zero(t, f.vexDots, "%s %s", f.file, f.name)
		default:
			assert.Zero(t, f.vexDots, "%s %s", f.file, f.name)
			assert.False(t, avx512, "%s %s requires %v, but runs without AVX-512", f.file, f.name, f.requires)
		}
	}
	for _, name := range []string{"gemmQ8_0x16AVXVNNI", "gemmQ4_0x16AVXVNNI", "gemvQ8_0AVXVNNI"} {
		assert.Contains(t, byName, name, "AVX-VNNI kernel missing")
	}
}

// TestAVXVNNIDispatch checks what the "avxvnni" setting (AVX-512 off)
// selects: the AVX-VNNI kernels for Q8_0 and Q4_0, and never a kernel
// that uses AVX-512 registers, for every format, batch and layout.
func TestAVXVNNIDispatch(t *testing.T) {
	for _, c := range featureSettings {
		if c.name != "avxvnni" {
			continue
		}
		if r := skipReason(c); r != "" {
			t.Skip(r)
		}
		defer setFeatures(c)()
	}
	require.True(t, avxVNNI(), "no avxvnni setting")
	zmm := map[*kernel]string{
		&q8_0GEMVVNNI:       "q8_0GEMVVNNI",
		&q8_0PanelVNNI.kern: "q8_0PanelVNNI",
		&q4_0PanelVNNI.kern: "q4_0PanelVNNI",
		&q4KTileVNNI.kern:   "q4KTileVNNI",
		&q5KTileVNNI.kern:   "q5KTileVNNI",
		&q6KTileVNNI.kern:   "q6KTileVNNI",
	}
	for _, wt := range weightTypes {
		for _, ntok := range []int{1, 2, 7, 128} {
			for _, packed := range []bool{false, true} {
				if packed && panelQBytes(wt) == 0 {
					continue // MatMulPacked runs MatMul then
				}
				k := selectKernel(wt, ntok, packed)
				name, bad := zmm[k]
				assert.False(t, bad, "%v ntok %d packed %v: %s", wt, ntok, packed, name)
			}
		}
	}
	for ntok := 1; ntok <= gemvMaxTokAVXVNNI; ntok++ {
		assert.Same(t, &q8_0GEMVAVXVNNI, selectKernel(backend.Q8_0, ntok, false), "%d tokens", ntok)
	}
	assert.Same(t, &q8_0PanelAVXVNNI.kern, selectKernel(backend.Q8_0, gemvMaxTokAVXVNNI+1, false))
	assert.Same(t, &q8_0PanelAVXVNNI.kern, selectKernel(backend.Q8_0, 1, true))
	assert.Same(t, &q4_0PanelAVXVNNI.kern, selectKernel(backend.Q4_0, 1, false))
	assert.Same(t, &q4_0PanelAVXVNNI.kern, selectKernel(backend.Q4_0, 9, true))
	assert.Equal(t, "AVX2+FMA+F16C+AVX-VNNI", Features())
}
