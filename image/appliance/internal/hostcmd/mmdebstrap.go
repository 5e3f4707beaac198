package hostcmd

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// Mmdebstrap is one mmdebstrap run that writes a root file system as a
// tarball. It runs in root mode (the builder requires root).
type Mmdebstrap struct {
	Suite   string   // e.g. bookworm
	Sources string   // a sources.list file, passed as mmdebstrap's MIRROR
	Variant string   // e.g. minbase
	Include []string // packages on top of the variant
	// DpkgOpts are written to the root's dpkg configuration, e.g.
	// path-exclude=/usr/share/doc/*.
	DpkgOpts []string
	// CustomizeHooks are shell commands run after every package is
	// installed; $1 is the root directory.
	CustomizeHooks []string
	// Env is added to mmdebstrap's environment; hooks and maintainer
	// scripts see it.
	Env []string
	// TempDir is where mmdebstrap assembles the root (its TMPDIR). A tmpfs
	// here makes the build several times faster: dpkg syncs every file.
	TempDir string
	Output  string // the tarball to write
}

// Args returns the command line after "mmdebstrap".
func (m Mmdebstrap) Args() []string {
	args := []string{"--mode=root", "--format=tar", "--variant=" + m.Variant}
	if len(m.Include) > 0 {
		args = append(args, "--include="+strings.Join(m.Include, ","))
	}
	args = append(args, "--aptopt=Acquire::Retries \"3\"")
	for _, o := range m.DpkgOpts {
		args = append(args, "--dpkgopt="+o)
	}
	for _, h := range m.CustomizeHooks {
		args = append(args, "--customize-hook="+h)
	}
	return append(args, m.Suite, m.Output, m.Sources)
}

// Run runs mmdebstrap, copying its progress to out when out is not nil.
func (m Mmdebstrap) Run(ctx context.Context, out io.Writer) error {
	env := append([]string(nil), m.Env...)
	if m.TempDir != "" {
		env = append(env, "TMPDIR="+m.TempDir)
	}
	if err := run(ctx, out, env, "mmdebstrap", m.Args()...); err != nil {
		return fmt.Errorf("building the base root with mmdebstrap: %w", err)
	}
	return nil
}
