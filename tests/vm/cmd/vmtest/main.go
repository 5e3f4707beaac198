// Command vmtest builds the kernel-facing test binaries, boots each pinned
// kernel under qemu with BPF LSM active, runs them, and exits non-zero when a
// kernel did not boot, a test failed or skipped, or a binary ran zero tests.
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aegisbpf/aegisbpf/image/layer/layertest"
	"github.com/aegisbpf/aegisbpf/tests/vm"
)

// suite is one package whose tests run in the guest, with what the guest
// needs for it.
type suite struct {
	name         string
	pkg          string
	args         []string
	modules      []string
	hostBinaries []string
	// prepare builds host-side inputs in work and returns the guest trees
	// and environment the tests read.
	prepare func(ctx context.Context, work string) (trees, env map[string]string, err error)
}

var suites = []suite{
	{
		name: "kernel",
		pkg:  "./tests/kernel",
		// overlay: the overlayfs bypass tests; veth: the network tests'
		// pair into another namespace. /usr/bin/true brings a dynamic
		// loader and libc for the ld.so exec tests; bpftool is the
		// operator's tool the self-protection tests turn against the agent.
		modules:      []string{"overlay", "veth"},
		hostBinaries: []string{"/usr/bin/true", "/usr/sbin/bpftool"},
		prepare: func(ctx context.Context, work string) (map[string]string, map[string]string, error) {
			dir := filepath.Join(work, "agent")
			cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, "aegisbpf"), "./agent/cmd/aegisbpf")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				return nil, nil, fmt.Errorf("building the agent: %w", err)
			}
			return map[string]string{"/aegis": dir}, map[string]string{"AEGISBPF_TEST_AGENT": "/aegis/aegisbpf"}, nil
		},
	},
	{
		name: "layer",
		pkg:  "./image/layer",
		// Only the VM tests: the package's host tests need mkfs.erofs.
		args:         []string{"-test.run=^TestVM"},
		modules:      []string{"loop", "dm-mod", "dm-verity", "crc32c_generic", "erofs"},
		hostBinaries: []string{"/usr/sbin/veritysetup"},
		prepare: func(ctx context.Context, work string) (map[string]string, map[string]string, error) {
			dir := filepath.Join(work, "layerbuild")
			if _, _, err := layertest.Build(ctx, dir, layertest.Config{AgentSize: 2 << 20}); err != nil {
				return nil, nil, fmt.Errorf("building the test layer: %w", err)
			}
			return map[string]string{"/layer": filepath.Join(dir, "layer")},
				map[string]string{"AEGISBPF_TEST_LAYER_DIR": "/layer", "DM_DISABLE_UDEV": "1"}, nil
		},
	},
}

func main() {
	kernels := flag.String("kernels", "all", "comma-separated kernel names ("+kernelNames()+") or all")
	run := flag.String("run", "", "only tests matching this regexp (passed as -test.run)")
	timeout := flag.Duration("timeout", 8*time.Minute, "hard limit per kernel boot")
	keep := flag.Bool("keep", false, "keep the work directory")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runAll(ctx, *kernels, *run, *timeout, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
		os.Exit(1)
	}
}

func kernelNames() string {
	var n []string
	for _, k := range vm.Kernels {
		n = append(n, k.Name)
	}
	return strings.Join(n, ",")
}

func runAll(ctx context.Context, kernelList, run string, timeout time.Duration, keep bool) error {
	specs, err := vm.SelectKernels(kernelList)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "aegisbpf-vmtest-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Printf("vmtest: work directory %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	cache, err := vm.CacheDir()
	if err != nil {
		return err
	}

	t0 := time.Now()
	job := &vm.Job{Timeout: timeout, Accel: accel(), Env: map[string]string{}, Trees: map[string]string{}}
	for _, s := range suites {
		job.Modules = append(job.Modules, s.modules...)
		job.HostBinaries = append(job.HostBinaries, s.hostBinaries...)
		if s.prepare != nil {
			trees, env, err := s.prepare(ctx, work)
			if err != nil {
				return fmt.Errorf("preparing %s: %w", s.name, err)
			}
			maps.Copy(job.Trees, trees)
			maps.Copy(job.Env, env)
		}
		bin := filepath.Join(work, s.name+".test")
		cmd := exec.CommandContext(ctx, "go", "test", "-c", "-trimpath", "-o", bin, s.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building %s: %w", s.pkg, err)
		}
		args := append([]string(nil), s.args...)
		if run != "" {
			args = append(args, "-test.run="+run)
		}
		job.Tests = append(job.Tests, vm.TestBinary{Name: s.name, Path: bin, Args: args})
	}
	fmt.Printf("vmtest: built %d test binaries in %s\n", len(job.Tests), time.Since(t0).Round(time.Millisecond))

	var results []*vm.Result
	var failed []string
	for _, spec := range specs {
		t1 := time.Now()
		k, err := vm.FetchKernel(ctx, spec, cache, os.Stdout)
		if err != nil {
			return fmt.Errorf("kernel %s: %w", spec.Name, err)
		}
		fmt.Printf("vmtest: kernel %s: %s %s (%s) ready in %s, accel %s\n",
			spec.Name, k.Package, k.Version, k.Release, time.Since(t1).Round(time.Millisecond), job.Accel)
		res, err := vm.Run(ctx, k, job, work, os.Stdout)
		if err != nil {
			return fmt.Errorf("kernel %s: %w", spec.Name, err)
		}
		res.Filtered = run != ""
		results = append(results, res)
		if err := res.Err(); err != nil {
			failed = append(failed, fmt.Sprintf("kernel %s: %v", spec.Name, err))
		}
	}

	fmt.Println("vmtest: summary")
	total := 0
	for _, r := range results {
		for _, b := range r.Binaries {
			total += len(b.Passed)
			fmt.Printf("  %-6s %-10s rc=%-3d passed=%-3d failed=%-3d skipped=%-3d\n",
				r.Kernel.Spec.Name, b.Name, b.ExitCode, len(b.Passed), len(b.Failed), len(b.Skipped))
		}
		fmt.Printf("  %-6s boot+tests %s (lsm=%s)\n", r.Kernel.Spec.Name, r.Elapsed.Round(time.Millisecond), r.LSM)
	}
	if len(failed) > 0 {
		return fmt.Errorf("FAIL\n  %s", strings.Join(failed, "\n  "))
	}
	if total == 0 {
		return fmt.Errorf("FAIL: zero tests ran in the VM")
	}
	fmt.Printf("vmtest: PASS: %d tests passed across %d kernels in %s\n", total, len(results), time.Since(t0).Round(time.Millisecond))
	return nil
}

// accel is tcg unless AEGISBPF_VM_ACCEL says otherwise. KVM guests hang on
// the machines this project runs on (see docs/adr/0001-vm-harness.md).
func accel() string {
	if a := os.Getenv("AEGISBPF_VM_ACCEL"); a != "" {
		return a
	}
	return "tcg"
}
