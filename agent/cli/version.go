package cli

import (
	"context"
	"fmt"
	"runtime"

	"github.com/aegisbpf/aegisbpf/agent/buildinfo"
)

func versionCommand() *Command {
	return &Command{
		Name:    "version",
		Summary: "print version, commit, Go version and BPF object digest",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := NewFlagSet(env, "version", "aegisbpf version")
			if err := ParseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() != 0 {
				return Usagef("version takes no arguments")
			}
			fmt.Fprintf(env.Stdout, "aegisbpf %s\ncommit: %s\ngo: %s %s/%s\nbpf objects sha256: %s\n",
				buildinfo.Version, buildinfo.Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH,
				buildinfo.BPFDigest())
			return nil
		},
	}
}
