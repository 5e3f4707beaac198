package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/aegisbpf/aegisbpf/image/appliance"
)

// applianceCommand builds the test and demo appliance on the build host.
func applianceCommand() *Command {
	return &Command{
		Name:    "appliance",
		Summary: "build the test and demo appliance (erofs root, /var disk, kernel)",
		Sub: []*Command{
			{Name: "build", Summary: "build the appliance from a recipe (needs root)", Run: runApplianceBuild},
		},
	}
}

// treeList is a repeatable flag of host directories.
type treeList []string

func (l *treeList) String() string     { return strings.Join(*l, ",") }
func (l *treeList) Set(v string) error { *l = append(*l, v); return nil }

func runApplianceBuild(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "appliance build", "aegisbpf appliance build --out DIR [--recipe DIR] [--root-tree DIR]... [--var-tree DIR]...")
	out := fs.String("out", "", "write the appliance (root.erofs, var.img, vmlinuz, initrd.img, cmdline, appliance.json) into `DIR`")
	recipe := fs.String("recipe", "rootfs/appliance", "the base root recipe `DIR`")
	cache := fs.String("cache", "", "cache `DIR` for base roots (default $AEGISBPF_CACHE or ~/.cache/aegisbpf)")
	varSize := fs.Int("var-size", appliance.DefaultVarSizeMiB, "size of the sparse /var disk in `MiB`")
	rebuild := fs.Bool("rebuild", false, "rebuild the cached base root even when it is valid")
	verbose := fs.Bool("verbose", false, "show mmdebstrap's progress on a cold build")
	var rootTrees, varTrees treeList
	fs.Var(&rootTrees, "root-tree", "overlay host `DIR` onto the root: DIR/usr/lib/x becomes /usr/lib/x (repeatable)")
	fs.Var(&varTrees, "var-tree", "add host `DIR` to the /var disk: DIR/lib/x becomes /var/lib/x (repeatable)")
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return Usagef("appliance build: --out DIR is required")
	}
	if fs.NArg() != 0 {
		return Usagef("appliance build: unexpected argument %q", fs.Arg(0))
	}
	cfg := appliance.Config{
		Recipe: *recipe, OutDir: *out, CacheDir: *cache, VarSizeMiB: *varSize,
		Rebuild: *rebuild, Log: env.Log,
	}
	if *verbose {
		cfg.ToolOutput = env.Stderr
	}
	for _, d := range rootTrees {
		files, err := appliance.FilesFromDir(d, "/")
		if err != nil {
			return fmt.Errorf("appliance build: %w", err)
		}
		cfg.RootFiles = append(cfg.RootFiles, files...)
	}
	for _, d := range varTrees {
		files, err := appliance.FilesFromDir(d, "/var")
		if err != nil {
			return fmt.Errorf("appliance build: %w", err)
		}
		cfg.VarFiles = append(cfg.VarFiles, files...)
	}
	a, err := appliance.Build(ctx, cfg)
	if err != nil {
		return fmt.Errorf("appliance build: %w", err)
	}
	fmt.Fprintf(env.Stdout, "appliance: %s\nkernel:    %s\ncmdline:   %s\nfiles:     %d root, %d var\n",
		a.Path(appliance.ManifestFile), a.KernelRelease, a.Cmdline, a.RootFiles, a.VarFiles)
	return nil
}
