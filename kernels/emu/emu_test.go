//go:build cgo && linux && !noemu

package emu

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/cuda"
	"qinfer/cuda/cudatest"
	"qinfer/host/backend"
	"qinfer/host/quant"
	"qinfer/kernels"
)

// These tests drive single kernels through the fake driver; the backend's
// parity tests (cuda) cover every op end to end.

type dev struct {
	t *testing.T
	d *cudatest.Driver
}

func open(t *testing.T, major int) *dev {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	g := cudatest.H100()
	g.Major, g.Minor = major, 0
	if major < 8 {
		g.Minor = 5
	}
	d, err := New(g)
	require.NoError(t, err)
	require.NoError(t, d.Init())
	h, err := d.DeviceGet(0)
	require.NoError(t, err)
	ctx, err := d.CtxCreate(0, h)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.CtxDestroy(ctx) })
	return &dev{t: t, d: d}
}

func (v *dev) upload(b []byte) cuda.DevicePtr {
	p, err := v.d.MemAlloc(int64(len(b)))
	require.NoError(v.t, err)
	require.NoError(v.t, v.d.MemcpyHtoD(p, unsafe.Pointer(&b[0]), int64(len(b))))
	return p
}

func (v *dev) alloc(n int) cuda.DevicePtr {
	p, err := v.d.MemAlloc(int64(n))
	require.NoError(v.t, err)
	require.NoError(v.t, v.d.MemsetD8(p, 0xA5, int64(n))) // poison
	return p
}

func (v *dev) read(p cuda.DevicePtr, n int) []byte {
	b := make([]byte, n)
	require.NoError(v.t, v.d.MemcpyDtoH(unsafe.Pointer(&b[0]), p, int64(n)))
	return b
}

func (v *dev) launch(k *kernels.Kernel, grid cuda.Dim3, args ...any) error {
	slots := make([]uint64, len(args))
	ptrs := make([]unsafe.Pointer, len(args))
	for i, a := range args {
		switch x := a.(type) {
		case cuda.DevicePtr:
			slots[i] = uint64(x)
		case int:
			slots[i] = uint64(int64(x))
		case float32:
			slots[i] = uint64(math.Float32bits(x))
		default:
			v.t.Fatalf("argument %d: %T", i, a)
		}
		ptrs[i] = unsafe.Pointer(&slots[i])
	}
	m, err := v.d.ModuleLoadData([]byte("ptx"))
	require.NoError(v.t, err)
	f, err := v.d.ModuleGetFunction(m, k.Name)
	require.NoError(v.t, err)
	return v.d.LaunchKernel(f, grid, cuda.Dim3{X: uint32(k.Threads), Y: 1, Z: 1}, 0, 0, ptrs)
}

func f32bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func TestQuantQ8_0MatchesCPU(t *testing.T) {
	v := open(t, 9)
	rng := rand.New(rand.NewSource(1))
	const ntok, cols, kpad, ldx = 3, 96, 128, 101
	x := make([]float32, ntok*ldx)
	for i := range x {
		x[i] = float32(rng.NormFloat64()) * 3
	}
	xp := v.upload(f32bytes(x))
	xq, xd := v.alloc(ntok*kpad), v.alloc(4*ntok*kpad/32)
	require.NoError(t, v.launch(kernels.QuantQ8_0, cuda.Dim3{X: (kpad + 255) / 256, Y: ntok, Z: 1}, xp, ldx, cols, kpad, xq, xd))
	q, d := v.read(xq, ntok*kpad), v.read(xd, 4*ntok*kpad/32)
	for tok := 0; tok < ntok; tok++ {
		want := make([]byte, cols/32*34)
		require.NoError(t, quant.QuantizeActivations(backend.Q8_0, x[tok*ldx:tok*ldx+cols], want))
		for b := 0; b < kpad/32; b++ {
			gotD := math.Float32frombits(binary.LittleEndian.Uint32(d[4*(tok*kpad/32+b):]))
			gotQ := q[tok*kpad+32*b : tok*kpad+32*b+32]
			if b >= cols/32 {
				assert.Zero(t, gotD, "padding block %d scale", b)
				assert.Equal(t, make([]byte, 32), gotQ, "padding block %d", b)
				continue
			}
			blk := want[34*b:]
			assert.Equal(t, quant.FP16ToFP32(binary.LittleEndian.Uint16(blk)), gotD, "token %d block %d scale", tok, b)
			assert.Equal(t, blk[2:34], gotQ, "token %d block %d quants", tok, b)
		}
	}
}

// TestQuantW8MatchesCPU runs the row formats' activation quantization
// (qi_quant_w8) on both variants against quant.QuantizeTokenInt8 and
// quant.QuantizeTokenInt8Static, byte for byte and scale bit for scale
// bit: ragged lengths around the kernel's 256 threads, ties, zero, NaN,
// infinite and tiny tokens, saturation under a static scale; the padding
// to kpad must be zero and nothing past it written.
func TestQuantW8MatchesCPU(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, major := range []int{9, 7} {
		v := open(t, major)
		rng := rand.New(rand.NewSource(int64(major)))
		for _, cols := range []int{1, 37, 255, 256, 257, 700} {
			for _, act := range []float32{0, 0.25} {
				kpad := (cols + 63) / 64 * 64
				ldx := cols + 3
				var toks [][]float32
				gauss := func(sc float64) []float32 {
					x := make([]float32, cols)
					for i := range x {
						x[i] = float32(rng.NormFloat64() * sc)
					}
					return x
				}
				ties := make([]float32, cols)
				for i := range ties {
					// Dynamic: an extreme of 127 makes the inverse scale 1;
					// static: x*(1/0.25) = x*4 is exact. Either way k+0.5.
					ties[i] = float32(i%11-5) + 0.5
					if act != 0 {
						ties[i] *= act
					}
				}
				if act == 0 {
					ties[cols-1] = 127
				}
				withNaN, withInf, negInf := gauss(2), gauss(2), gauss(2)
				withNaN[rng.Intn(cols)] = nan
				withInf[rng.Intn(cols)] = inf
				negInf[rng.Intn(cols)] = -inf
				toks = append(toks, gauss(3), ties, make([]float32, cols), withNaN, withInf, negInf,
					gauss(1e-39), gauss(1e-37), gauss(1e30), gauss(200))
				ntok := len(toks)
				x := make([]float32, ntok*ldx)
				for tk, row := range toks {
					copy(x[tk*ldx:], row)
				}
				xp := v.upload(f32bytes(x))
				// One extra token's worth of output, which must stay poisoned.
				xq, xd := v.alloc((ntok+1)*kpad), v.alloc(4*(ntok+1))
				require.NoError(t, v.launch(kernels.QuantW8, cuda.Dim3{X: uint32(ntok), Y: 1, Z: 1}, xp, ldx, cols, kpad, act,
					cuda.DevicePtr(0), cuda.DevicePtr(0), 0, cuda.DevicePtr(0), 0, xq, xd))
				q, d := v.read(xq, (ntok+1)*kpad), v.read(xd, 4*(ntok+1))
				for tk, row := range toks {
					want := make([]int8, cols)
					var scale float32
					if act == 0 {
						scale = quant.QuantizeTokenInt8(row, want)
					} else {
						require.NoError(t, quant.QuantizeTokenInt8Static(row, act, want))
						scale = act
					}
					what := fmt.Sprintf("sm %d, %d cols, act scale %v, token %d", major, cols, act, tk)
					got := q[tk*kpad : (tk+1)*kpad]
					for k := 0; k < cols; k++ {
						if int8(got[k]) != want[k] {
							t.Fatalf("%s: element %d (%v) is %d, want %d", what, k, row[k], int8(got[k]), want[k])
						}
					}
					assert.Equal(t, make([]byte, kpad-cols), got[cols:], "%s: padding", what)
					assert.Equal(t, math.Float32bits(scale), binary.LittleEndian.Uint32(d[4*tk:]), "%s: scale %v", what, scale)
				}
				assert.Equal(t, bytes.Repeat([]byte{0xA5}, kpad), q[ntok*kpad:], "codes past the last token")
				assert.Equal(t, bytes.Repeat([]byte{0xA5}, 4), d[4*ntok:], "scale past the last token")
			}
		}
	}
}

// TestGemmW8Exact runs the int8 GEMM on both variants (mma.sync and dp4a)
// with unit scales, where the float result is the exact integer sum.
func TestGemmW8Exact(t *testing.T) {
	for _, major := range []int{9, 7} {
		v := open(t, major)
		rng := rand.New(rand.NewSource(int64(major)))
		const rows, ntok, cols, kpad = 37, 19, 100, 128
		w := make([]byte, rows*kpad)
		x := make([]byte, ntok*kpad)
		for r := 0; r < rows; r++ {
			for k := 0; k < cols; k++ {
				w[r*kpad+k] = byte(int8(rng.Intn(255) - 127))
			}
		}
		for tk := 0; tk < ntok; tk++ {
			for k := 0; k < cols; k++ {
				x[tk*kpad+k] = byte(int8(rng.Intn(255) - 127))
			}
		}
		ones := func(n int) []float32 {
			o := make([]float32, n)
			for i := range o {
				o[i] = 1
			}
			return o
		}
		wp, xp := v.upload(w), v.upload(x)
		ws, xd := v.upload(f32bytes(ones(rows))), v.upload(f32bytes(ones(ntok)))
		const ldy = 41
		y := v.alloc(4 * ntok * ldy)
		require.NoError(t, v.launch(kernels.GemmW8, cuda.Dim3{X: 1, Y: 1, Z: 1}, wp, ws, xp, xd, y, ldy, rows, cols, kpad, ntok))
		out := v.read(y, 4*ntok*ldy)
		for tk := 0; tk < ntok; tk++ {
			for r := 0; r < ldy; r++ {
				got := binary.LittleEndian.Uint32(out[4*(tk*ldy+r):])
				if r >= rows {
					assert.Equal(t, uint32(0xA5A5A5A5), got, "column %d past the rows must stay untouched", r)
					continue
				}
				var sum int32
				for k := 0; k < cols; k++ {
					sum += int32(int8(w[r*kpad+k])) * int32(int8(x[tk*kpad+k]))
				}
				require.Equal(t, float32(sum), math.Float32frombits(got), "sm %d: token %d row %d", major, tk, r)
			}
		}
	}
}

func TestBadBlockShape(t *testing.T) {
	v := open(t, 9)
	err := v.launch(&kernels.Kernel{Name: kernels.Softmax.Name, Threads: 48, Params: kernels.Softmax.Params}, cuda.Dim3{X: 1, Y: 1, Z: 1},
		v.alloc(64), 16, 16)
	assert.ErrorContains(t, err, "whole warps")
}
