package quant

import (
	"encoding/binary"
	"math"
	"testing"

	"qinfer/host/backend"
)

// fuzzTypes includes unsupported and unknown types on purpose.
var fuzzTypes = []backend.DType{
	backend.F32, backend.F16, backend.BF16, backend.Q4_0, backend.Q4_1, backend.Q5_0, backend.Q5_1,
	backend.Q8_0, backend.Q8_1, backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K,
	backend.Q8_K, backend.I8, backend.F64, backend.W8, backend.DType(12345),
}

func fuzzFloats(data []byte) []float32 {
	x := make([]float32, len(data)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return x
}

// FuzzDequantize: arbitrary bytes, element counts and types must give
// either values or an error, never a panic.
func FuzzDequantize(f *testing.F) {
	f.Add(uint8(3), uint16(32), make([]byte, 18))
	f.Add(uint8(11), uint16(256), make([]byte, 144))
	f.Add(uint8(14), uint16(300), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, ti uint8, n uint16, data []byte) {
		dt := fuzzTypes[int(ti)%len(fuzzTypes)]
		dst := make([]float32, int(n)%2049)
		err := Dequantize(dt, data, dst)
		if rb, rerr := rowBytes(dt, len(dst)); rerr == nil && len(data) >= rb {
			if _, ok := dequantizers[dt]; ok && err != nil {
				t.Fatalf("%v: %d elements from %d bytes: unexpected error %v", dt, len(dst), len(data), err)
			}
		} else if err == nil {
			t.Fatalf("%v: %d elements from %d bytes accepted", dt, len(dst), len(data))
		}
		_, _ = DequantizeRows(dt, data, int(n)%7, int(n))
	})
}

// FuzzQuantize: arbitrary float bit patterns (NaN, Inf, subnormals) and
// buffer sizes for every quantizer, activation quantizer, dot and integer
// sum must not panic.
func FuzzQuantize(f *testing.F) {
	f.Add(uint8(2), uint16(18), make([]byte, 128))
	f.Add(uint8(10), uint16(84), make([]byte, 1024))
	f.Add(uint8(12), uint16(0), []byte{0, 0, 0x80, 0x7f, 0, 0, 0xc0, 0xff})
	f.Fuzz(func(t *testing.T, ti uint8, dstLen uint16, data []byte) {
		dt := fuzzTypes[int(ti)%len(fuzzTypes)]
		x := fuzzFloats(data)
		dst := make([]byte, int(dstLen)%4097)
		_ = Quantize(dt, x, dst)
		_ = QuantizeActivations(dt, x, dst)
		if len(x) > 0 {
			// Repeat the input to whole super-blocks so every quantizer
			// runs on it, not only the length checks.
			full := make([]float32, 256)
			for i := range full {
				full[i] = x[i%len(x)]
			}
			if _, ok := quantizers[dt]; ok {
				rb, _ := rowBytes(dt, 256)
				q := make([]byte, rb)
				if err := Quantize(dt, full, q); err != nil {
					t.Fatalf("%v: %v", dt, err)
				}
				y := make([]float32, 256)
				if err := Dequantize(dt, q, y); err != nil {
					t.Fatalf("%v: %v", dt, err)
				}
			}
			if act, err := ActivationType(dt); err == nil {
				xb, _ := rowBytes(act, 256)
				xq := make([]byte, xb)
				if err := QuantizeActivations(act, full, xq); err != nil {
					t.Fatalf("%v: %v", act, err)
				}
				wb, _ := rowBytes(dt, 256)
				wq := make([]byte, wb)
				copy(wq, data)
				if _, err := VecDot(dt, 256, wq, xq); err != nil {
					t.Fatalf("%v: %v", dt, err)
				}
				_, _ = BlockSums(dt, 256, wq, xq)
				_, _ = KBlockSums(dt, 256, wq, xq)
			}
		}
		_, _ = VecDot(dt, int(dstLen), data, dst)
		_ = Q8_0BlockSums(data, dst)
		_ = Q4_0BlockSums(data, dst)
	})
}
