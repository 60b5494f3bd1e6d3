package quant

// Scale fitting shared by the K-quant reference quantizers, transcribed
// from ggml-quants.c (make_qx_quants, make_q3_quants, make_qkx2_quants)
// operation by operation. Every product that feeds a sum is converted to
// float32 explicitly so it is rounded before the addition, as C compiled
// without FMA contraction (ggml-base is built without -march flags) does.

// groupMaxEps is GROUP_MAX_EPS: groups whose largest magnitude is below it
// are treated as all zero.
const groupMaxEps = 1e-15

// makeQxQuants is make_qx_quants with qw == NULL: symmetric quantization of
// x to L in [0, 2*nmax) (stored with +nmax), returning the scale. rmseType 1
// weights errors by x^2 and searches 18 nearby scales.
func makeQxQuants(nmax int, x []float32, L []int8, rmseType int) float32 {
	maxv, amax := absMaxSigned(x)
	if amax < groupMaxEps {
		for i := range x {
			L[i] = 0
		}
		return 0
	}
	fn := float32(nmax)
	iscale := -fn / maxv
	if rmseType == 0 {
		for i, v := range x {
			l := nearestInt(iscale * v)
			L[i] = int8(nmax + clamp(l, -nmax, nmax-1))
		}
		return 1 / iscale
	}
	returnEarly := false
	if rmseType < 0 {
		rmseType = -rmseType
		returnEarly = true
	}
	var sumlx, suml2 float32
	for i, v := range x {
		l := clamp(nearestInt(iscale*v), -nmax, nmax-1)
		L[i] = int8(l + nmax)
		w := rmseWeight(rmseType, v)
		fl := float32(l)
		sumlx += float32(float32(w*v) * fl)
		suml2 += float32(float32(w*fl) * fl)
	}
	var scale float32
	if suml2 != 0 {
		scale = sumlx / suml2
	}
	if returnEarly {
		if suml2 > 0 {
			return 0.5 * (scale + 1/iscale)
		}
		return 1 / iscale
	}
	best := scale * sumlx
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(fn + float32(0.1*float32(is))) / maxv
		sumlx, suml2 = 0, 0
		for _, v := range x {
			fl := float32(clamp(nearestInt(iscale*v), -nmax, nmax-1))
			w := rmseWeight(rmseType, v)
			sumlx += float32(float32(w*v) * fl)
			suml2 += float32(float32(w*fl) * fl)
		}
		if suml2 > 0 && float32(sumlx*sumlx) > float32(best*suml2) {
			for i, v := range x {
				L[i] = int8(nmax + clamp(nearestInt(iscale*v), -nmax, nmax-1))
			}
			scale = sumlx / suml2
			best = scale * sumlx
		}
	}
	return scale
}

// rmseWeight is make_qx_quants' error weight for x when qw is NULL.
func rmseWeight(rmseType int, v float32) float32 {
	switch rmseType {
	case 1:
		return v * v
	case 2:
		return 1
	case 3:
		return abs32(v)
	}
	return sqrt32(abs32(v))
}

// makeQ3Quants is make_q3_quants: symmetric quantization to L in
// [0, 2*nmax) with an iterative x^2-weighted refinement when doRMSE.
func makeQ3Quants(nmax int, x []float32, L []int8, doRMSE bool) float32 {
	maxv, amax := absMaxSigned(x)
	if amax < groupMaxEps {
		for i := range x {
			L[i] = 0
		}
		return 0
	}
	iscale := -float32(nmax) / maxv
	if !doRMSE {
		for i, v := range x {
			L[i] = int8(clamp(nearestInt(iscale*v), -nmax, nmax-1) + nmax)
		}
		return 1 / iscale
	}
	var sumlx, suml2 float32
	for i, v := range x {
		l := clamp(nearestInt(iscale*v), -nmax, nmax-1)
		L[i] = int8(l)
		w := v * v
		fl := float32(l)
		sumlx += float32(float32(w*v) * fl)
		suml2 += float32(float32(w*fl) * fl)
	}
	for itry := 0; itry < 5; itry++ {
		changed := 0
		for i, v := range x {
			w := v * v
			li := float32(L[i])
			slx := sumlx - float32(float32(w*v)*li)
			if slx > 0 {
				sl2 := suml2 - float32(float32(w*li)*li)
				newL := clamp(nearestInt(float32(v*sl2)/slx), -nmax, nmax-1)
				if newL != int(L[i]) {
					fn := float32(newL)
					slx += float32(float32(w*v) * fn)
					sl2 += float32(float32(w*fn) * fn)
					if sl2 > 0 && float32(float32(slx*slx)*suml2) > float32(float32(sumlx*sumlx)*sl2) {
						L[i] = int8(newL)
						sumlx, suml2 = slx, sl2
						changed++
					}
				}
			}
		}
		if changed == 0 {
			break
		}
	}
	for i := range x {
		L[i] += int8(nmax)
	}
	if suml2 > 0 {
		return sumlx / suml2
	}
	return 0
}

// makeQkx2Quants is make_qkx2_quants: asymmetric quantization
// x ~ scale*L - theMin with L in [0, nmax], searching nstep+1 scales around
// nmax/(max-min) and keeping the least weighted error (absolute when useMad).
// It returns the scale and the (non-negative) min to subtract.
func makeQkx2Quants(nmax int, x, weights []float32, L, Laux []uint8, rmin, rdelta float32, nstep int, useMad bool) (scale, theMin float32) {
	n := len(x)
	lo, hi := x[0], x[0]
	sumW := weights[0]
	sumX := sumW * x[0]
	for i := 1; i < n; i++ {
		if x[i] < lo {
			lo = x[i]
		}
		if x[i] > hi {
			hi = x[i]
		}
		w := weights[i]
		sumW += w
		sumX += float32(w * x[i])
	}
	if lo > 0 {
		lo = 0
	}
	if hi == lo {
		for i := range L[:n] {
			L[i] = 0
		}
		return 0, -lo
	}
	fn := float32(nmax)
	iscale := fn / (hi - lo)
	scale = 1 / iscale
	var bestError float32
	for i, v := range x {
		L[i] = uint8(clamp(nearestInt(float32(iscale*(v-lo))), 0, nmax))
		bestError += float32(weights[i] * fitError(scale, L[i], lo, v, useMad))
	}
	if nstep < 1 {
		return scale, -lo
	}
	for is := 0; is <= nstep; is++ {
		iscale = (float32(rmin+float32(rdelta*float32(is))) + fn) / (hi - lo)
		var sumL, sumL2, sumXL float32
		for i, v := range x {
			l := clamp(nearestInt(iscale*(v-lo)), 0, nmax)
			Laux[i] = uint8(l)
			w := weights[i]
			fl := float32(l)
			sumL += float32(w * fl)
			sumL2 += float32(float32(w*fl) * fl)
			sumXL += float32(float32(w*fl) * v)
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D > 0 {
			thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
			thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
			if thisMin > 0 {
				thisMin = 0
				thisScale = sumXL / sumL2
			}
			var curError float32
			for i, v := range x {
				curError += float32(weights[i] * fitError(thisScale, Laux[i], thisMin, v, useMad))
			}
			if curError < bestError {
				copy(L[:n], Laux[:n])
				bestError = curError
				scale = thisScale
				lo = thisMin
			}
		}
	}
	return scale, -lo
}

// fitError is one element's error term in make_qkx2_quants: the absolute
// or squared difference between scale*l + min and v.
func fitError(scale float32, l uint8, m, v float32, useMad bool) float32 {
	diff := float32(scale*float32(l)) + m - v
	if useMad {
		return abs32(diff)
	}
	return diff * diff
}

// getScaleMinK4 is get_scale_min_k4: the 6-bit scale and min of sub-block j
// (0..7) packed in the 12 scale bytes of Q4_K and Q5_K.
func getScaleMinK4(j int, q []byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xf | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}
