package quantize

import (
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"

	"qinfer/host/backend"
)

// Method is how activations are treated (and, for Mixed, how weight
// precision is chosen).
type Method int

const (
	// Dynamic quantizes weights only; activations are quantized at run
	// time from their own range.
	Dynamic Method = iota
	// Static fixes activation scales from a calibration run.
	Static
	// Mixed chooses per-tensor precision from measured sensitivity.
	Mixed
)

func (m Method) String() string {
	switch m {
	case Dynamic:
		return "dynamic"
	case Static:
		return "static"
	case Mixed:
		return "mixed"
	}
	return fmt.Sprintf("method(%d)", int(m))
}

// ParseMethod maps "dynamic", "static" or "mixed" to a Method.
func ParseMethod(s string) (Method, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "dynamic", "":
		return Dynamic, nil
	case "static":
		return Static, nil
	case "mixed":
		return Mixed, nil
	}
	return 0, fmt.Errorf("unknown method %q (dynamic, static or mixed)", s)
}

// Keep forces the type of the tensors whose names match Pattern (a glob:
// '*' matches any run of characters, '?' one, [...] a class). Later rules
// win over earlier ones, as llama-quantize's --tensor-type does.
type Keep struct {
	Pattern string
	Type    backend.DType
}

// ParseKeep parses "PATTERN=TYPE", e.g. "blk.*.ffn_down.weight=Q6_K".
func ParseKeep(s string) (Keep, error) {
	pat, typ, ok := strings.Cut(s, "=")
	pat, typ = strings.TrimSpace(pat), strings.TrimSpace(typ)
	if !ok || pat == "" || typ == "" {
		return Keep{}, fmt.Errorf("keep rule %q: want PATTERN=TYPE, e.g. 'output.weight=Q8_0'", s)
	}
	if _, err := path.Match(pat, ""); err != nil {
		return Keep{}, fmt.Errorf("keep rule %q: bad pattern %q: %w", s, pat, err)
	}
	t, err := parseTensorType(typ)
	if err != nil {
		return Keep{}, fmt.Errorf("keep rule %q: %w", s, err)
	}
	return Keep{Pattern: pat, Type: t}, nil
}

func (k Keep) String() string { return k.Pattern + "=" + k.Type.String() }

// matches reports whether the rule applies to a tensor name. The pattern
// was checked by ParseKeep, so Match cannot fail here.
func (k Keep) matches(name string) bool {
	ok, _ := path.Match(k.Pattern, name)
	return ok
}

// Budget bounds a mixed plan: the total tensor bytes (Size > 0) or the
// KL divergence to the unquantized model (KLD > 0), not both.
type Budget struct {
	Size int64   // bytes of tensor data
	KLD  float64 // mean KL divergence per token, nats
}

func (b Budget) String() string {
	switch {
	case b.Size > 0:
		return fmt.Sprintf("size=%.3fMiB", float64(b.Size)/(1<<20))
	case b.KLD > 0:
		return fmt.Sprintf("kld=%g", b.KLD)
	}
	return "none"
}

// ParseBudget parses "size=N[unit]" (units B, KB, MB, GB, KiB, MiB, GiB;
// MiB when none) or "kld=X" (nats per token).
func ParseBudget(s string) (Budget, error) {
	k, v, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok {
		return Budget{}, fmt.Errorf("budget %q: want size=N[MiB] or kld=X", s)
	}
	switch strings.ToLower(strings.TrimSpace(k)) {
	case "size":
		n, err := parseSize(v)
		if err != nil {
			return Budget{}, fmt.Errorf("budget %q: %w", s, err)
		}
		return Budget{Size: n}, nil
	case "kld":
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(x > 0) || math.IsInf(x, 0) {
			return Budget{}, fmt.Errorf("budget %q: KL divergence must be a positive number", s)
		}
		return Budget{KLD: x}, nil
	}
	return Budget{}, fmt.Errorf("budget %q: unknown kind %q (size or kld)", s, k)
}

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"b", 1},
}

func parseSize(v string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	mult := float64(1 << 20)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || !(x > 0) || math.IsInf(x, 0) || x*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional unit (B, KB, MB, GB, KiB, MiB, GiB; MiB when none)", v)
	}
	return int64(x * mult), nil
}

// ParseLadder parses a comma-separated list of tensor types for a mixed
// plan, e.g. "Q4_0,Q8_0,F16".
func ParseLadder(s string) ([]backend.DType, error) {
	var out []backend.DType
	for _, f := range strings.Split(s, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		t, err := parseTensorType(f)
		if err != nil {
			return nil, fmt.Errorf("ladder %q: %w", s, err)
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("ladder %q: no types", s)
	}
	return out, nil
}

// defaultLadder is the set of precisions a mixed plan chooses from when
// none is given: the requested type, 8 bits, and F16.
func defaultLadder(ft FileType) []backend.DType {
	switch ft.Default {
	case backend.W8:
		return []backend.DType{backend.W8, backend.F16}
	case backend.F16, backend.BF16, backend.F32:
		return []backend.DType{ft.Default}
	case backend.Ternary, backend.Binary:
		return []backend.DType{ft.Default, backend.Q4_0, backend.Q8_0, backend.F16}
	}
	l := []backend.DType{ft.Default}
	if ft.Default != backend.Q8_0 {
		l = append(l, backend.Q8_0)
	}
	return append(l, backend.F16)
}

// Observer names how a static activation scale is chosen from the
// calibration activations.
type Observer int

const (
	// MinMax uses the largest magnitude seen: nothing clips.
	MinMax Observer = iota
	// Percentile uses a high percentile of the magnitudes (Options.
	// Percentile): the rare largest values clip.
	Percentile
	// MSE uses the clipping point that minimises the expected squared
	// error of int8 quantization over the observed distribution.
	MSE
)

func (o Observer) String() string {
	switch o {
	case MinMax:
		return "minmax"
	case Percentile:
		return "percentile"
	case MSE:
		return "mse"
	}
	return fmt.Sprintf("observer(%d)", int(o))
}

// ParseObserver maps "minmax", "percentile" or "mse" to an Observer.
func ParseObserver(s string) (Observer, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "minmax", "min-max", "":
		return MinMax, nil
	case "percentile":
		return Percentile, nil
	case "mse":
		return MSE, nil
	}
	return 0, fmt.Errorf("unknown observer %q (minmax, percentile or mse)", s)
}
