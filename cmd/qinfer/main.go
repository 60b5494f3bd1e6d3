// Command qinfer runs quantized language models on an NVIDIA GPU through
// the CUDA driver, or on the CPU when no GPU is usable.
//
// Data path: cmd/qinfer parses flags → host/engine picks a backend
// (cuda/ or fallback/) → host/gguf maps the model → host/model uploads its
// weights and runs forward passes through the backend's ops → host/engine
// samples tokens → host/tokenizer turns them into text.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
)

// command is one subcommand. run receives the arguments after the
// subcommand name; common flags are registered on fs by commonFlags.
type command struct {
	name  string
	usage string
	short string
	run   func(env *cliEnv, args []string) error
}

// commands is the registry of subcommands, filled by each command's file.
var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// cliEnv carries what every subcommand shares: output streams and the
// logger built from the common flags.
type cliEnv struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	quiet  bool
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func runMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "qinfer: unknown command %q\n\n", args[0])
		printUsage(stderr)
		return 2
	}
	env := &cliEnv{stdin: stdin, stdout: stdout, stderr: stderr}
	if err := c.run(env, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "qinfer %s: %v\n", c.name, err)
			return 2
		}
		fmt.Fprintf(stderr, "qinfer %s: %v\n", c.name, err)
		return 1
	}
	return 0
}

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "qinfer: quantized language-model inference on NVIDIA GPUs (CUDA driver) with a CPU fallback")
	fmt.Fprintln(w, "\nusage: qinfer COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].short)
	}
	fmt.Fprintln(w, "\nRun 'qinfer COMMAND -h' for a command's flags. Every command also takes")
	fmt.Fprintln(w, "--cpuprofile FILE, --memprofile FILE, --trace FILE, --quiet and --log-level LEVEL.")
}

// newFlagSet makes a flag set for c whose usage lists its flags.
func newFlagSet(env *cliEnv, c *command) *flag.FlagSet {
	fs := flag.NewFlagSet("qinfer "+c.name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "usage: qinfer %s %s\n\n%s\n\nflags:\n", c.name, c.usage, c.short)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, allowing flags after positional arguments (as
// users type `qinfer info model.gguf --json`), and returns the positionals.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// splitList parses a comma-separated list of positive integers.
func splitInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var v int
		if _, err := fmt.Sscanf(f, "%d", &v); err != nil || v <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list %q", s)
	}
	return out, nil
}
