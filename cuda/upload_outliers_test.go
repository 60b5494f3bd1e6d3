package cuda

import (
	"encoding/binary"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"qinfer/host/backend"
)

// TestSplitLayout: the outlier arrays of a split weight follow the parts,
// each 256-byte aligned and sized as kernels/outliers.cu reads them; a
// weight without outlier columns keeps its layout, and a split of a
// format that is not a row format, or of more columns than a row has, is
// refused.
func TestSplitLayout(t *testing.T) {
	for _, typ := range []backend.DType{backend.W8, backend.FP8, backend.Ternary, backend.Binary} {
		const rows, cols, k = 37, 200, 6
		l, err := newLayout(typ, rows, cols)
		require.NoError(t, err)
		plain := l.size
		require.NoError(t, l.addSplit(0))
		assert.Equal(t, plain, l.size, "%v: no outlier columns, no arrays", typ)
		require.NoError(t, l.addSplit(k))
		s := l.split
		assert.Equal(t, k, s.k)
		assert.Equal(t, plain, s.ocolsOff, "%v: the columns follow the parts", typ)
		for _, off := range []int64{s.ocolsOff, s.omaskOff, s.owOff, l.size} {
			assert.Zero(t, off%256, "%v: offset %d", typ, off)
		}
		assert.GreaterOrEqual(t, s.omaskOff-s.ocolsOff, int64(4*k), "%v: columns", typ)
		assert.GreaterOrEqual(t, s.owOff-s.omaskOff, int64(l.kpad/8), "%v: mask", typ)
		assert.Equal(t, 64, s.ldo, "%v: weights' row stride", typ)
		assert.GreaterOrEqual(t, l.size-s.owOff, int64(2*k*s.ldo), "%v: weights", typ)
		assert.Less(t, l.size-s.owOff, int64(2*k*s.ldo+256), "%v: weights", typ)

		l, _ = newLayout(typ, rows, cols)
		assert.ErrorContains(t, l.addSplit(cols+1), "201 outlier columns for rows of 200")
	}
	l, err := newLayout(backend.Q8_0, 4, 64)
	require.NoError(t, err)
	assert.ErrorContains(t, l.addSplit(2), "outlier columns apply to row formats")
}

// TestSplitArrays checks the host images of the outlier arrays against a
// direct reading of their definition: the columns as little-endian int32,
// the mask's bit c%32 of little-endian word c/32 set exactly for the
// outlier columns, and the weights transposed column by column into rows
// of ldo halves (zeros past rows), in chunks of columns as the upload
// copies them.
func TestSplitArrays(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	const rows, cols, kpad, ldo = 29, 300, 320, 64
	var ocols []int32
	isOut := map[int]bool{}
	for c := 0; c < cols; c++ {
		if rng.Intn(9) == 0 || c == 0 || c == cols-1 {
			ocols = append(ocols, int32(c))
			isOut[c] = true
		}
	}
	k := len(ocols)
	colBytes, mask := splitArrays(ocols, kpad)
	require.Len(t, colBytes, 4*k)
	for j, c := range ocols {
		assert.Equal(t, c, int32(binary.LittleEndian.Uint32(colBytes[4*j:])), "column %d", j)
	}
	require.Len(t, mask, kpad/8)
	for c := 0; c < kpad; c++ {
		word := binary.LittleEndian.Uint32(mask[4*(c/32):])
		assert.Equal(t, isOut[c], word>>(c%32)&1 == 1, "mask bit of column %d", c)
	}

	ow := make([]uint16, rows*k)
	for i := range ow {
		ow[i] = uint16(rng.Intn(1 << 16))
	}
	got := make([]byte, 2*k*ldo)
	for i := range got {
		got[i] = 0xA5 // the padding must be cleared
	}
	for j0 := 0; j0 < k; j0 += 4 {
		n := min(4, k-j0)
		transposeOutliers(got[2*j0*ldo:], ow, rows, k, ldo, j0, n)
	}
	for j := 0; j < k; j++ {
		for r := 0; r < ldo; r++ {
			want := uint16(0)
			if r < rows {
				want = ow[r*k+j]
			}
			require.Equal(t, want, binary.LittleEndian.Uint16(got[2*(j*ldo+r):]), "column %d row %d", j, r)
		}
	}
}
