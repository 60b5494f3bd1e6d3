package kernels

import (
	"unsafe"

	"qinfer/host/backend"
)

// The panel layout of Q8_0 and Q4_0 weights. GGUF's 34- and 18-byte blocks
// keep one row's quants together, so a SIMD kernel multiplies one row at a
// time and pays the float scaling of every block once per row. A panel
// interleaves 16 rows instead: for each block, 64-byte lines hold 4
// quant bytes of each of the 16 rows (row r in dword r), so one VPDPBUSD
// multiplies 16 rows by 4 broadcast activation bytes and the block
// scaling is done once per 16 rows. Quants and scales live in separate
// arrays so that quant lines stay 64-byte aligned.
//
//   - Q8_0: 8 lines per block, byte = q+128 (unsigned, for VPDPBUSD's
//     unsigned operand); the kernels subtract 128*sum(x) per block.
//   - Q4_0: 4 lines per block holding the GGUF nibble bytes 4g..4g+3, so
//     low nibbles are elements 4g.. and high nibbles 16+4g..; the kernels
//     subtract 8*sum(x).
//   - Scales: 16 fp16 per block (32 bytes), row r at r.
//
// The layout is as large as GGUF's (34 or 18 bytes per row and block), so
// a one-time repack (Prepare) costs no memory bandwidth at decode time.

const (
	panelRows = 16
	panelLine = 64
	panelS    = 2 * panelRows // scale bytes per panel block
	// actTile is the size of one token's block in an activation tile: 32
	// quants, the scale as float32, the correction -(sum(q) << shift), and
	// the same for each of the eight 4-quant groups (tileActsAVX2).
	actTile = 72
)

// panelQBytes is the quant bytes per block of a panel, 0 for types without
// a panel layout.
func panelQBytes(wt backend.DType) int {
	switch wt {
	case backend.Q8_0:
		return 8 * panelLine
	case backend.Q4_0:
		return 4 * panelLine
	}
	return 0
}

// panelShift is the correction shift of a format's activation tiles: the
// unsigned weight is q+128 (Q8_0) or q+8 (Q4_0).
func panelShift(wt backend.DType) int {
	if wt == backend.Q8_0 {
		return 7
	}
	return 3
}

// panelFuncs are one implementation (pure Go, AVX2, AVX-VNNI, AVX512-VNNI,
// NEON) of the panel kernels of one format.
type panelFuncs struct {
	// tile is the most tokens one gemm call takes.
	tile int
	// zmm is set when gemm uses AVX-512 registers (see clearUpperZMM).
	zmm bool
	// pack packs 16 GGUF rows (wrb bytes apart) of nb blocks into q, s.
	pack func(w []byte, wrb, nb int, q, s []byte)
	// acts, when set, lays out ntok activation rows as a tile for gemm
	// (see tileActsAVX2); without it gemm reads the rows themselves.
	acts func(x []byte, xrb, ntok, nb int, dst []byte)
	// gemm sets dst[t*ldd+r] for r < rows, t < ntok <= tile. x is a tile
	// from acts, or activation rows xrb bytes apart.
	gemm func(q, s []byte, nb int, x []byte, xrb, ntok int, dst []float32, ldd, rows int)
	// kern runs these functions (newPanelFuncs).
	kern kernel
}

// newPanelFuncs completes f with its kernel.
func newPanelFuncs(wt backend.DType, f *panelFuncs) *panelFuncs {
	f.kern = panelKernel(wt, f)
	return f
}

// panelKernel runs a format's panel kernels over whole panels: from a
// Packed matrix, or packing each GGUF panel into per-thread scratch first
// (cheap next to the products once a few tokens share it).
func panelKernel(wt backend.DType, f *panelFuncs) kernel {
	qb := panelQBytes(wt)
	return kernel{panel: panelRows, grain: 1,
		prepare: func(j *matmulJob) {
			if f.acts == nil {
				return
			}
			nb := j.cols / qk
			j.acts = j.pool.actsFor(j.ntok * nb * actTile)
			for t0 := 0; t0 < j.ntok; t0 += f.tile {
				n := min(f.tile, j.ntok-t0)
				f.acts(j.xq[t0*j.xrb:], j.xrb, n, nb, j.acts[t0*nb*actTile:])
			}
		},
		rows: func(j *matmulJob, worker, r0, r1 int) {
			nb := j.cols / qk
			var sc []byte
			if j.packed == nil {
				sc = j.pool.scratchFor(worker, nb*(qb+panelS)+panelRows*j.wrb+panelLine)
			}
			for r := r0; r < r1; r += panelRows {
				nr := min(panelRows, r1-r)
				var q, s []byte
				if j.packed != nil {
					p := r / panelRows
					q, s = j.packed.q[p*nb*qb:(p+1)*nb*qb], j.packed.s[p*nb*panelS:(p+1)*nb*panelS]
				} else {
					q, s = packInto(sc, f, j.w[r*j.wrb:], j.wrb, nb, nr, qb)
				}
				for t0 := 0; t0 < j.ntok; t0 += f.tile {
					n := min(f.tile, j.ntok-t0)
					x, xrb := j.xq[t0*j.xrb:], j.xrb
					if f.acts != nil {
						x, xrb = j.acts[t0*nb*actTile:], 0
					}
					f.gemm(q, s, nb, x, xrb, n, j.dst[t0*j.ldd+r:], j.ldd, nr)
				}
			}
			if f.zmm {
				clearUpperZMM()
			}
		}}
}

// packInto packs the nr (<= 16) GGUF rows at w into scratch and returns
// the panel's quants and scales. A short last panel is padded with zero
// rows, whose outputs the kernels do not store.
func packInto(sc []byte, f *panelFuncs, w []byte, wrb, nb, nr, qb int) (q, s []byte) {
	a := align64(sc)
	q, s = a[:nb*qb], a[nb*qb:nb*(qb+panelS)]
	if nr < panelRows {
		pad := a[nb*(qb+panelS) : nb*(qb+panelS)+panelRows*wrb]
		copy(pad, w[:nr*wrb])
		clear(pad[nr*wrb:])
		w = pad
	}
	f.pack(w, wrb, nb, q, s)
	return q, s
}

// align64 returns b from its first 64-byte aligned address (b must have
// room for up to 63 bytes of offset).
func align64(b []byte) []byte {
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & 63)
	return b[off:]
}

// packPanelGo is the pure-Go pack: the reference for the assembly one and
// the path without SIMD.
func packPanelGo(wt backend.DType, w []byte, wrb, nb int, q, s []byte) {
	bs, qb := q8_0Bytes, 8*panelLine
	if wt == backend.Q4_0 {
		bs, qb = q4_0Bytes, 4*panelLine
	}
	for b := 0; b < nb; b++ {
		for r := 0; r < panelRows; r++ {
			blk := w[r*wrb+b*bs : r*wrb+(b+1)*bs]
			s[b*panelS+2*r], s[b*panelS+2*r+1] = blk[0], blk[1]
			for g := 0; g < qb/panelLine; g++ {
				for i := 0; i < 4; i++ {
					v := blk[2+4*g+i]
					if wt == backend.Q8_0 {
						v ^= 0x80
					}
					q[b*qb+g*panelLine+4*r+i] = v
				}
			}
		}
	}
}

// gemmPanelGo is the pure-Go panel kernel on activation rows, in
// llama.cpp's float order of each format (order.go): a panel line g holds
// bytes 4g..4g+3 of every row, which for Q8_0 is exactly vec_dot's lane g.
func gemmPanelGo(wt backend.DType, q, s []byte, nb int, x []byte, xrb, ntok int, dst []float32, ldd, rows int) {
	qb := panelQBytes(wt)
	for t := 0; t < ntok; t++ {
		xr := x[t*xrb:]
		for r := 0; r < rows; r++ {
			var lanes [8]float32
			var acc float32
			for b := 0; b < nb; b++ {
				xb := xr[b*q8_0Bytes+2 : (b+1)*q8_0Bytes]
				qs := q[b*qb:]
				d := float32(fp16At(s[b*panelS+2*r:]) * fp16At(xr[b*q8_0Bytes:]))
				if wt == backend.Q8_0 {
					for g := range lanes {
						var l int32
						for i := 0; i < 4; i++ {
							l += int32(int8(qs[g*panelLine+4*r+i]^0x80)) * int32(int8(xb[4*g+i]))
						}
						lanes[g] = fma32(d, float32(l), lanes[g])
					}
					continue
				}
				var isum int32
				for e := 0; e < qk/2; e++ {
					v := qs[(e/4)*panelLine+4*r+e%4]
					isum += (int32(v&15) - 8) * int32(int8(xb[e]))
					isum += (int32(v>>4) - 8) * int32(int8(xb[e+qk/2]))
				}
				acc = fma32(float32(isum), d, acc)
			}
			if wt == backend.Q8_0 {
				acc = hsum8(&lanes)
			}
			dst[t*ldd+r] = acc
		}
	}
}

// genericPanelFuncs are the pure-Go panel kernels of each format.
var genericPanelFuncs = map[backend.DType]*panelFuncs{
	backend.Q8_0: genericPanel(backend.Q8_0),
	backend.Q4_0: genericPanel(backend.Q4_0),
}

func genericPanel(wt backend.DType) *panelFuncs {
	return newPanelFuncs(wt, &panelFuncs{
		tile: 8,
		pack: func(w []byte, wrb, nb int, q, s []byte) { packPanelGo(wt, w, wrb, nb, q, s) },
		gemm: func(q, s []byte, nb int, x []byte, xrb, ntok int, dst []float32, ldd, rows int) {
			gemmPanelGo(wt, q, s, nb, x, xrb, ntok, dst, ldd, rows)
		},
	})
}
