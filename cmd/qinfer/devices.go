package main

import (
	"encoding/json"
	"fmt"

	"qinfer/host/engine"
)

func init() {
	register(&command{
		name:  "devices",
		usage: "[--json] [--cuda-lib PATH]",
		short: "list the GPUs and the CPU found, and which backend auto would choose and why",
		run:   runDevices,
	})
}

func runDevices(env *cliEnv, args []string) error {
	c := commands["devices"]
	fs := newFlagSet(env, c)
	asJSON := fs.Bool("json", false, "print JSON")
	lib := fs.String("cuda-lib", "", "CUDA driver library to load (default libcuda.so.1)")
	return withCommon(env, fs, args, func(pos []string) error {
		if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		p := engine.ProbeDevices(engine.ProbeOptions{Lib: *lib})
		if *asJSON {
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(p)
		}
		fmt.Fprint(env.stdout, p.Text())
		return nil
	})
}
