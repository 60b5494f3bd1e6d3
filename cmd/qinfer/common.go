package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/profile"
)

// commonFlags are accepted by every subcommand.
type commonFlags struct {
	cpuProfile string
	memProfile string
	trace      string
	quiet      bool
	logLevel   string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) of this command to `FILE`")
	fs.StringVar(&c.memProfile, "memprofile", "", "write a heap profile (pprof) of this command to `FILE`")
	// profile uses --trace for its Chrome trace of ops; there the Go
	// execution trace is --gotrace.
	traceFlag := "trace"
	if fs.Lookup("trace") != nil {
		traceFlag = "gotrace"
	}
	fs.StringVar(&c.trace, traceFlag, "", "write a Go execution trace of this command to `FILE` (go tool trace)")
	fs.BoolVar(&c.quiet, "quiet", false, "print only results and errors: no progress bars, no info logs")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// start sets up logging and the requested host profile; the returned
// function stops the profile and moves it to the path the user gave.
func (c *commonFlags) start(env *cliEnv) (stop func() error, err error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	if c.quiet && level < slog.LevelWarn {
		level = slog.LevelWarn
	}
	env.log = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))

	// pkg/profile runs one profile at a time, so the flags exclude each other.
	type req struct {
		path, file string
		mode       func(*profile.Profile)
	}
	var reqs []req
	if c.cpuProfile != "" {
		reqs = append(reqs, req{c.cpuProfile, "cpu.pprof", profile.CPUProfile})
	}
	if c.memProfile != "" {
		reqs = append(reqs, req{c.memProfile, "mem.pprof", profile.MemProfile})
	}
	if c.trace != "" {
		reqs = append(reqs, req{c.trace, "trace.out", profile.TraceProfile})
	}
	switch len(reqs) {
	case 0:
		return func() error { return nil }, nil
	case 1:
	default:
		return nil, usagef("--cpuprofile, --memprofile and --trace exclude each other: give one")
	}
	r := reqs[0]
	dir, err := os.MkdirTemp(filepath.Dir(r.path), ".qinfer-profile-")
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", r.path, err)
	}
	p := profile.Start(r.mode, profile.ProfilePath(dir), profile.Quiet, profile.NoShutdownHook)
	return func() error {
		p.Stop()
		defer os.RemoveAll(dir)
		if err := os.Rename(filepath.Join(dir, r.file), r.path); err != nil {
			return fmt.Errorf("profile %s: %w", r.path, err)
		}
		env.log.Info("profile written", "file", r.path)
		return nil
	}, nil
}

// withCommon registers the common flags, parses args, and runs body with
// the profile running; it returns body's positional arguments handling.
func withCommon(env *cliEnv, fs *flag.FlagSet, args []string, body func(pos []string) error) error {
	var cf commonFlags
	cf.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	stop, err := cf.start(env)
	if err != nil {
		return err
	}
	env.quiet = cf.quiet
	runErr := body(pos)
	if err := stop(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

func lower(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
