package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"text/tabwriter"

	"qinfer/host/backend"
	"qinfer/host/gguf"
	"qinfer/host/model"
	"qinfer/host/qformat"
)

func init() {
	register(&command{
		name:  "info",
		usage: "MODEL.gguf [--json] [--tensors]",
		short: "show a model's architecture, shapes, tensor types, size and bits per weight",
		run:   runInfo,
	})
}

type typeCount struct {
	Type     string `json:"type"`
	Tensors  int    `json:"tensors"`
	Elements uint64 `json:"elements"`
	Bytes    uint64 `json:"bytes"`
}

type tensorLine struct {
	Name  string   `json:"name"`
	Type  string   `json:"type"`
	Dims  []uint64 `json:"dims"`
	Bytes uint64   `json:"bytes"`
}

type modelInfo struct {
	File          string        `json:"file"`
	GGUFVersion   uint32        `json:"gguf_version"`
	Name          string        `json:"name,omitempty"`
	Config        *model.Config `json:"config,omitempty"`
	ConfigError   string        `json:"config_error,omitempty"`
	Tensors       int           `json:"tensors"`
	Params        uint64        `json:"params"`
	Bytes         uint64        `json:"bytes"`
	BitsPerWeight float64       `json:"bits_per_weight"`
	Types         []typeCount   `json:"types"`
	TensorList    []tensorLine  `json:"tensor_list,omitempty"`
}

func runInfo(env *cliEnv, args []string) error {
	c := commands["info"]
	fs := newFlagSet(env, c)
	asJSON := fs.Bool("json", false, "print JSON")
	list := fs.Bool("tensors", false, "list every tensor")
	return withCommon(env, fs, args, func(pos []string) error {
		if len(pos) != 1 {
			return usagef("want one model file, got %d arguments", len(pos))
		}
		f, err := gguf.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := describe(pos[0], f, *list)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(info)
		}
		printInfo(env, info)
		return nil
	})
}

func describe(path string, f *gguf.File, list bool) (*modelInfo, error) {
	info := &modelInfo{File: path, GGUFVersion: f.Version}
	info.Name, _ = f.String("general.name")
	if cfg, err := model.ConfigFromGGUF(f); err != nil {
		info.ConfigError = err.Error()
	} else {
		info.Config = &cfg
	}
	// Row formats (W8, FP8, ...) are stored as I8 rows plus a scale tensor;
	// qformat reports them as the logical tensor they are.
	sums, err := qformat.Summarize(f)
	if err != nil {
		return nil, err
	}
	info.Tensors = len(sums)
	byType := map[backend.DType]*typeCount{}
	for _, t := range sums {
		n, size := t.Elements(), t.Bytes
		tc := byType[t.Type]
		if tc == nil {
			tc = &typeCount{Type: t.Type.String()}
			byType[t.Type] = tc
		}
		tc.Tensors++
		tc.Elements += n
		tc.Bytes += size
		info.Params += n
		info.Bytes += size
		if list {
			info.TensorList = append(info.TensorList, tensorLine{t.Name, t.Type.String(), t.Dims, size})
		}
	}
	for _, tc := range byType {
		info.Types = append(info.Types, *tc)
	}
	sort.Slice(info.Types, func(i, j int) bool { return info.Types[i].Bytes > info.Types[j].Bytes })
	if info.Params > 0 {
		info.BitsPerWeight = float64(info.Bytes) * 8 / float64(info.Params)
	}
	return info, nil
}

func printInfo(env *cliEnv, info *modelInfo) {
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "file\t%s (GGUF v%d)\n", info.File, info.GGUFVersion)
	if info.Name != "" {
		fmt.Fprintf(w, "name\t%s\n", info.Name)
	}
	if c := info.Config; c != nil {
		fmt.Fprintf(w, "architecture\t%s\n", c.Arch)
		fmt.Fprintf(w, "shape\tdim %d, layers %d, heads %d (kv %d, head dim %d), ffn %d, vocab %d, context %d\n",
			c.Dim, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.FFN, c.Vocab, c.CtxTrain)
		fmt.Fprintf(w, "rope\tbase %g, scale %g, neox %v\n", c.RopeBase, c.RopeScale, c.Neox)
	} else {
		fmt.Fprintf(w, "architecture\t(%s)\n", info.ConfigError)
	}
	fmt.Fprintf(w, "parameters\t%d (%.1f M)\n", info.Params, float64(info.Params)/1e6)
	fmt.Fprintf(w, "size\t%d bytes (%.2f MiB), %.2f bits per weight\n", info.Bytes, float64(info.Bytes)/(1<<20), info.BitsPerWeight)
	fmt.Fprintf(w, "tensors\t%d\n", info.Tensors)
	for _, t := range info.Types {
		fmt.Fprintf(w, "  %s\t%d tensors, %d elements, %.2f MiB\n", t.Type, t.Tensors, t.Elements, float64(t.Bytes)/(1<<20))
	}
	for _, t := range info.TensorList {
		fmt.Fprintf(w, "  %s\t%s\t%v\t%d bytes\n", t.Name, t.Type, t.Dims, t.Bytes)
	}
	w.Flush()
}
