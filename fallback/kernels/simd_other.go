//go:build (!amd64 && !arm64) || purego

package kernels

import "qinfer/host/backend"

// Without assembly every format runs on its pure-Go kernel.

func simdKernel(backend.DType, int) *kernel { return nil }

func simdPanelFuncs(backend.DType) *panelFuncs { return nil }

func simdFeatures() []string { return nil }

func simdQuantRow(backend.DType) func(src []float32, out []byte) { return nil }
