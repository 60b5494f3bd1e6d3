package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"qinfer/host/backend"
)

// VecDot is the pure-Go reference dot product of one weight row (type w, n
// elements) with one activation row already quantized to ActivationType(w)
// (see QuantizeActivations). It is written straight from the format
// definitions, not for speed: per block the exact integer sum of products
// (BlockSums, KBlockSums) is scaled by the block's float scales and the
// blocks are accumulated in float64, so the only rounding that matters is
// the final conversion to float32. For Q4_1/Q5_1 the min term uses the
// activation block's stored s = fp16(d*sum(q)), as every llama.cpp path does.
func VecDot(w backend.DType, n int, wrow, xrow []byte) (float32, error) {
	act, err := ActivationType(w)
	if err != nil {
		return 0, fmt.Errorf("vec dot: %w", err)
	}
	if err := checkRows(w, act, n, wrow, xrow); err != nil {
		return 0, err
	}
	var sum float64
	switch w {
	case backend.F32:
		for i := 0; i < n; i++ {
			a := math.Float32frombits(binary.LittleEndian.Uint32(wrow[4*i:]))
			b := math.Float32frombits(binary.LittleEndian.Uint32(xrow[4*i:]))
			sum += float64(a) * float64(b)
		}
	case backend.F16:
		for i := 0; i < n; i++ {
			sum += float64(FP16ToFP32(le16(wrow[2*i:]))) * float64(FP16ToFP32(le16(xrow[2*i:])))
		}
	case backend.BF16:
		for i := 0; i < n; i++ {
			sum += float64(BF16ToFP32(le16(wrow[2*i:]))) * float64(BF16ToFP32(le16(xrow[2*i:])))
		}
	case backend.Q4_0, backend.Q5_0, backend.Q8_0, backend.Q4_1, backend.Q5_1:
		sums := legacySums(w, n, wrow, xrow)
		wsz, xsz := typeSize(w), typeSize(act)
		for b, s := range sums {
			wb, xb := wrow[b*wsz:], xrow[b*xsz:]
			sum += float64(float64(fp16At(wb)) * float64(fp16At(xb)) * float64(s))
			if w == backend.Q4_1 || w == backend.Q5_1 {
				sum += float64(fp16At(wb[2:])) * float64(fp16At(xb[2:]))
			}
		}
	default: // K-quants against Q8_K
		ks := kSums(w, n, wrow, xrow)
		wsz := typeSize(w)
		for b, s := range ks {
			wb, xb := wrow[b*wsz:], xrow[b*q8kSize:]
			xd := float64(math.Float32frombits(binary.LittleEndian.Uint32(xb)))
			d, dmin := kScales(w, wb)
			sum += float64(xd * (float64(float64(d)*float64(s.Scaled)) - float64(float64(dmin)*float64(s.Mins))))
		}
	}
	return float32(sum), nil
}

func typeSize(t backend.DType) int {
	tr, _ := backend.TraitsOf(t)
	return tr.TypeSize
}

func checkRows(w, act backend.DType, n int, wrow, xrow []byte) error {
	wb, err := rowBytes(w, n)
	if err != nil {
		return fmt.Errorf("vec dot: %w", err)
	}
	xb, err := rowBytes(act, n)
	if err != nil {
		return fmt.Errorf("vec dot: %w", err)
	}
	if len(wrow) < wb {
		return fmt.Errorf("vec dot: %v weight row of %d elements needs %d bytes, have %d", w, n, wb, len(wrow))
	}
	if len(xrow) < xb {
		return fmt.Errorf("vec dot: %v activation row of %d elements needs %d bytes, have %d", act, n, xb, len(xrow))
	}
	return nil
}

// BlockSums returns, for a weight row of a 32-element block type (Q4_0,
// Q4_1, Q5_0, Q5_1, Q8_0) and its activation row (Q8_0, or Q8_1 for
// Q4_1/Q5_1), the exact int32 sum of products of each block:
// sum_i qw_i*qx_i, where qw is the signed quant for Q4_0 (q-8), Q5_0 (q-16)
// and Q8_0, and the unsigned stored quant for Q4_1/Q5_1 (whose min enters
// the dot through the activation's s). A block's dot is then
// dw*dx*sum (+ mw*sx for Q4_1/Q5_1). Kernel tests compare these bit for bit.
func BlockSums(w backend.DType, n int, wrow, xrow []byte) ([]int32, error) {
	switch w {
	case backend.Q4_0, backend.Q4_1, backend.Q5_0, backend.Q5_1, backend.Q8_0:
	default:
		return nil, fmt.Errorf("block sums: %v is not a 32-element block weight type", w)
	}
	act, _ := ActivationType(w)
	if err := checkRows(w, act, n, wrow, xrow); err != nil {
		return nil, fmt.Errorf("block sums: %w", err)
	}
	return legacySums(w, n, wrow, xrow), nil
}

// Q8_0BlockSums is BlockSums for Q8_0 weights against Q8_0 activations,
// over the blocks both rows hold completely (nil if none).
func Q8_0BlockSums(w, x []byte) []int32 {
	n := min(len(w), len(x)) / q8_0Size * qk
	return legacySums(backend.Q8_0, n, w, x)
}

// Q4_0BlockSums is BlockSums for Q4_0 weights against Q8_0 activations,
// over the blocks both rows hold completely (nil if none).
func Q4_0BlockSums(w, x []byte) []int32 {
	n := min(len(w)/q4_0Size, len(x)/q8_0Size) * qk
	return legacySums(backend.Q4_0, n, w, x)
}

// legacySums assumes validated lengths.
func legacySums(w backend.DType, n int, wrow, xrow []byte) []int32 {
	nb := n / qk
	if nb == 0 {
		return nil
	}
	act, _ := ActivationType(w)
	wsz, xsz := typeSize(w), typeSize(act)
	xoff := 2 // Q8_0: d, qs
	if act == backend.Q8_1 {
		xoff = 4 // Q8_1: d, s, qs
	}
	out := make([]int32, nb)
	for b := range out {
		wb, xq := wrow[b*wsz:(b+1)*wsz], xrow[b*xsz+xoff:(b+1)*xsz]
		var s int32
		for i := 0; i < qk; i++ {
			s += int32(legacyQuant(w, wb, i)) * int32(int8(xq[i]))
		}
		out[b] = s
	}
	return out
}

// legacyQuant returns element i of a 32-element block as the integer the
// dot multiplies: signed for the symmetric formats, unsigned for Q4_1/Q5_1.
func legacyQuant(t backend.DType, blk []byte, i int) int {
	nib := func(qs []byte) int {
		if i < qk/2 {
			return int(qs[i] & 0xf)
		}
		return int(qs[i-qk/2] >> 4)
	}
	high := func(qh []byte) int { return int(binary.LittleEndian.Uint32(qh)>>i&1) << 4 }
	switch t {
	case backend.Q4_0:
		return nib(blk[2:]) - 8
	case backend.Q4_1:
		return nib(blk[4:])
	case backend.Q5_0:
		return (nib(blk[6:]) | high(blk[2:])) - 16
	case backend.Q5_1:
		return nib(blk[8:]) | high(blk[4:])
	}
	return int(int8(blk[2+i])) // Q8_0
}

// KSums are one super-block's exact integer sums for a K-quant weight block
// against a Q8_K activation block (qx its quants, bsum_j their sums per 16).
type KSums struct {
	// Sub[j] = sum over sub-block j of q_i*qx_i with q_i the unsigned
	// stored quant (Q2_K 0..3, Q3_K 0..7, Q4_K 0..15, Q5_K 0..31, Q6_K
	// 0..63). Q2_K, Q3_K and Q6_K have 16 sub-blocks of 16 elements; Q4_K
	// and Q5_K have 8 of 32 (Sub[8:] are zero).
	Sub [16]int32
	// Scaled = sum_j scale_j*Sub[j], with scale_j the sub-block's integer
	// scale: 4-bit (Q2_K), 6-bit minus 32 (Q3_K), 6-bit (Q4_K, Q5_K), int8
	// (Q6_K).
	Scaled int32
	// Mins = sum_j min_j*bsum_j for Q2_K, Q4_K, Q5_K (min_j the integer min
	// of sub-block j); for Q3_K and Q6_K, whose quants carry an offset o (4
	// and 32), Mins = o*sum_j scale_j*bsum_j.
	Mins int32
}

// KBlockSums returns the integer sums of each super-block of a K-quant
// weight row (Q2_K..Q6_K) against its Q8_K activation row. A super-block's
// dot is xd*(d*Scaled - dmin*Mins) for Q2_K, Q4_K, Q5_K and
// xd*d*(Scaled - Mins) for Q3_K and Q6_K (xd: the Q8_K scale; d, dmin: the
// weight block's fp16 scales).
func KBlockSums(w backend.DType, n int, wrow, xrow []byte) ([]KSums, error) {
	switch w {
	case backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K:
	default:
		return nil, fmt.Errorf("k-quant sums: %v is not a K-quant weight type", w)
	}
	if err := checkRows(w, backend.Q8_K, n, wrow, xrow); err != nil {
		return nil, fmt.Errorf("k-quant sums: %w", err)
	}
	return kSums(w, n, wrow, xrow), nil
}

// kScales returns a K-quant block's float d and dmin (0 for Q3_K/Q6_K,
// whose offset term is scaled by d and folded into KSums.Mins).
func kScales(w backend.DType, blk []byte) (d, dmin float32) {
	switch w {
	case backend.Q2_K:
		return fp16At(blk[q2kD:]), fp16At(blk[q2kDmin:])
	case backend.Q3_K:
		d = fp16At(blk[q3kD:])
		return d, d
	case backend.Q6_K:
		d = fp16At(blk[q6kD:])
		return d, d
	}
	return fp16At(blk[q4kD:]), fp16At(blk[q4kDmin:]) // Q4_K, Q5_K
}

// kSums assumes validated lengths.
func kSums(w backend.DType, n int, wrow, xrow []byte) []KSums {
	nb := n / qkK
	wsz := typeSize(w)
	out := make([]KSums, nb)
	for b := range out {
		wb, xb := wrow[b*wsz:(b+1)*wsz], xrow[b*q8kSize:(b+1)*q8kSize]
		var bsums [16]int32
		for j := range bsums {
			bsums[j] = int32(int16(binary.LittleEndian.Uint16(xb[q8kBsums+2*j:])))
		}
		s := &out[b]
		subLen := 16
		if w == backend.Q4_K || w == backend.Q5_K {
			subLen = 32
		}
		for e := 0; e < qkK; e++ {
			s.Sub[e/subLen] += int32(kQuant(w, wb, e)) * int32(int8(xb[q8kQs+e]))
		}
		for j := 0; j < qkK/subLen; j++ {
			scale, m := kScaleMin(w, wb, j)
			bsum := bsums[j]
			if subLen == 32 {
				bsum = bsums[2*j] + bsums[2*j+1]
			}
			s.Scaled += scale * s.Sub[j]
			s.Mins += m * bsum
		}
	}
	return out
}

// kQuant returns the unsigned stored quant of element e of a K-quant block.
func kQuant(w backend.DType, blk []byte, e int) int {
	switch w {
	case backend.Q2_K:
		return q2At(blk[q2kQs:], e)
	case backend.Q3_K:
		return q3At(blk, e)
	case backend.Q4_K:
		return q4At(blk[q4kQs:], e)
	case backend.Q5_K:
		return q5At(blk, e)
	}
	return q6At(blk, e) // Q6_K
}

// kScaleMin returns sub-block j's integer scale and the factor its bsum is
// multiplied by in KSums.Mins (see there).
func kScaleMin(w backend.DType, blk []byte, j int) (scale, m int32) {
	switch w {
	case backend.Q2_K:
		sc := blk[q2kScales+j]
		return int32(sc & 0xf), int32(sc >> 4)
	case backend.Q3_K:
		sc := int32(q3kScale(blk[q3kScales:], j))
		return sc, 4 * sc
	case backend.Q4_K, backend.Q5_K:
		sc, mn := getScaleMinK4(j, blk[q4kScales:])
		return int32(sc), int32(mn)
	}
	sc := int32(int8(blk[q6kScales+j])) // Q6_K
	return sc, 32 * sc
}
