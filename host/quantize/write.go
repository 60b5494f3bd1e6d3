package quantize

import (
	"fmt"
	"sort"
	"sync"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/qformat"
	"qinfer/host/quant"
)

// Metadata keys.
const (
	keyQuantVersion = "general.quantization_version"
	keyFileType     = "general.file_type"
	// ggmlQuantVersion is GGML_QNT_VERSION, which llama-quantize writes.
	ggmlQuantVersion = 2

	keyMethod   = "qinfer.quant.method"
	keyType     = "qinfer.quant.type"
	keyObserver = "qinfer.quant.observer"
	keyPlan     = "qinfer.quant.plan"
)

// splitKeys are the split-file keys llama-quantize removes.
var splitKeys = []string{"split.no", "split.count", "split.tensors.count"}

// build assembles the output: the input's metadata as llama-quantize
// copies it, then each tensor in plan order, quantized.
func build(in *gguf.File, opt Options, plans []*tensorPlan, scales map[string]float32, enc *encoder, rep *Report, prog *progress) (*gguf.Builder, error) {
	b := gguf.NewBuilder()
	for _, kv := range in.KVs {
		// qinfer.* keys describe tensors in forms this run rewrites
		// (checkInput refused row formats; act scales or a plan may be
		// left in an unquantized file by other tools).
		if !hasQinferPrefix(kv.Key) {
			b.Set(kv.Key, kv.Value)
		}
	}
	for _, k := range splitKeys {
		b.Delete(k)
	}
	// gguf_set_val_* in llama.cpp's gguf.cpp removes a key and appends it,
	// so these two always end the metadata, in this order.
	b.Delete(keyQuantVersion)
	b.Set(keyQuantVersion, gguf.U32(ggmlQuantVersion))
	b.Delete(keyFileType)
	if opt.Type.LlamaFType >= 0 {
		b.Set(keyFileType, gguf.U32(uint32(opt.Type.LlamaFType)))
	}
	if opt.Method != Dynamic || quant.IsRowFormat(opt.Type.Default) {
		b.Set(keyType, gguf.Str(opt.Type.Name))
		b.Set(keyMethod, gguf.Str(opt.Method.String()))
	}
	if opt.Method == Static {
		b.Set(keyObserver, gguf.Str(observerLabel(opt.Calib)))
	}

	rep.Tensors, rep.InputBytes, rep.OutputBytes, rep.Params = nil, 0, 0, 0
	for _, p := range plans {
		tr := TensorReport{Name: p.name(), Dims: append([]uint64(nil), p.info.Dims...), From: p.info.Type, To: p.to, Reason: p.reason}
		rep.InputBytes += int64(p.inBytes())
		rep.Params += int64(p.info.Elements())
		n, err := enc.put(b, p, p.to, true)
		if err != nil {
			return nil, err
		}
		tr.Bytes = n
		if tr.SplitCols = p.splitAs(p.to); len(tr.SplitCols) > 0 {
			tr.Reason += fmt.Sprintf("; %d outlier columns split off in F16 (LLM.int8())", len(tr.SplitCols))
		}
		if s, ok := scales[p.name()]; ok && usesActScale(p.to) {
			if err := qformat.SetActScale(b, p.name(), s); err != nil {
				return nil, fmt.Errorf("quantize: %w", err)
			}
			tr.ActScale = s
		}
		rep.OutputBytes += tr.Bytes
		rep.Tensors = append(rep.Tensors, tr)
		prog.step()
	}
	if rep.Plan != nil {
		js, err := rep.Plan.JSON()
		if err != nil {
			return nil, err
		}
		b.Set(keyPlan, gguf.Str(js))
	}
	return b, nil
}

func hasQinferPrefix(k string) bool {
	return len(k) >= 7 && k[:7] == "qinfer."
}

// floats decodes a tensor's data (F32, F16 or BF16) to float32, exactly.
func floats(p *tensorPlan, src []byte) ([]float32, error) {
	x, err := quant.DequantizeRows(p.info.Type, src, p.rows, p.cols)
	if err != nil {
		return nil, fmt.Errorf("quantize: tensor %s: %w", p.name(), err)
	}
	return x, nil
}

// encoded is a tensor's data in its output type: packed rows, and for
// the row formats row scales and the split columns with their F16
// weights (rows x len(split)).
type encoded struct {
	data   []byte
	scales []float32
	split  []int32
	ow     []uint16
}

// encoder quantizes tensors of one input file, remembering the results so
// that a mixed plan built several times quantizes each tensor once per
// type.
type encoder struct {
	in      *gguf.File
	threads int
	cache   map[encKey]*encoded
}

type encKey struct {
	name string
	t    backend.DType
}

func newEncoder(in *gguf.File, threads int) *encoder {
	return &encoder{in: in, threads: threads, cache: map[encKey]*encoded{}}
}

// encode returns tensor p's data as type t (the input bytes themselves
// when t is the input type).
func (e *encoder) encode(p *tensorPlan, t backend.DType, keep bool) (*encoded, error) {
	k := encKey{p.name(), t}
	if c, ok := e.cache[k]; ok {
		return c, nil
	}
	src, err := e.in.TensorData(p.info)
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	var c *encoded
	switch {
	case t == p.info.Type:
		c = &encoded{data: src}
	case quant.IsRowFormat(t):
		if c, err = rowQuantize(p, t, src, e.threads); err != nil {
			return nil, err
		}
	default:
		d, err := convert(p, t, src, e.threads)
		if err != nil {
			return nil, err
		}
		c = &encoded{data: d}
	}
	if keep {
		e.cache[k] = c
	}
	return c, nil
}

// put stores tensor p as type t in b (replacing a tensor of that name, as
// in a builder made by gguf.FromFile) and returns the bytes it takes. keep
// caches the quantized data for later builds.
func (e *encoder) put(b *gguf.Builder, p *tensorPlan, t backend.DType, keep bool) (int64, error) {
	c, err := e.encode(p, t, keep)
	if err != nil {
		return 0, err
	}
	if quant.IsRowFormat(t) {
		w := &backend.Weight{Name: p.name(), Type: t, Rows: p.rows, Cols: p.cols, Data: c.data, RowScales: c.scales,
			OutlierCols: c.split, OutlierW: c.ow}
		if err := qformat.PutWeight(b, w); err != nil {
			return 0, fmt.Errorf("quantize: %w", err)
		}
		return int64(len(c.data)+4*len(c.scales)) + splitBytes(p.rows, len(c.split)), nil
	}
	err = b.ReplaceTensor(p.name(), t, p.info.Dims, c.data)
	if err != nil {
		err = b.AddTensor(p.name(), t, p.info.Dims, c.data)
	}
	if err != nil {
		return 0, fmt.Errorf("quantize: %w", err)
	}
	return int64(len(c.data)), nil
}

// convert quantizes a tensor to a GGUF type with llama.cpp's reference
// quantizers. Rows are independent, so they are split among threads; the
// bytes do not depend on the split.
func convert(p *tensorPlan, t backend.DType, src []byte, threads int) ([]byte, error) {
	x, err := floats(p, src)
	if err != nil {
		return nil, err
	}
	rb, err := backend.RowBytes(t, p.cols)
	if err != nil {
		return nil, fmt.Errorf("quantize: tensor %s: %w", p.name(), err)
	}
	out := make([]byte, rb*p.rows)
	err = parallelRows(p.rows, threads, func(r0, r1 int) error {
		return quant.Quantize(t, x[r0*p.cols:r1*p.cols], out[r0*rb:r1*rb])
	})
	if err != nil {
		return nil, fmt.Errorf("quantize: tensor %s to %v: %w", p.name(), t, err)
	}
	return out, nil
}

// parallelRows runs fn over [0, rows) in contiguous chunks on up to
// threads goroutines and returns the first error.
func parallelRows(rows, threads int, fn func(r0, r1 int) error) error {
	if threads < 1 {
		threads = 1
	}
	// Chunks of at least 16 rows keep the goroutine overhead small on
	// narrow tensors.
	chunk := max(16, (rows+threads-1)/threads)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for r0 := 0; r0 < rows; r0 += chunk {
		r1 := min(rows, r0+chunk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(r0, r1); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// sortedKeys returns a map's keys in order, for deterministic output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
