package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/agent/engine"
	"github.com/aegisbpf/aegisbpf/tests/testenv"
)

// helperEnv makes the test binary act as a helper process (see TestMain).
const helperEnv = "AEGIS_KTEST_HELPER"

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(runHelper(strings.Split(h, "\x1f")))
	}
	os.Exit(m.Run())
}

// runHelper performs one action in this fresh process and reports the
// result as exit status 0 (success), 13 (EPERM) or 1 (anything else).
func runHelper(args []string) int {
	result := func(err error) int {
		switch {
		case err == nil:
			return 0
		case errors.Is(err, unix.EPERM):
			return 13
		default:
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
	}
	switch args[0] {
	case "open": // open PATH
		f, err := os.Open(args[1])
		if err == nil {
			f.Close()
		}
		return result(err)
	case "chroot-open": // chroot-open ROOT PATH
		if err := unix.Chroot(args[1]); err != nil {
			return result(err)
		}
		if err := unix.Chdir("/"); err != nil {
			return result(err)
		}
		f, err := os.Open(args[2])
		if err == nil {
			f.Close()
		}
		return result(err)
	case "udp-connect": // udp-connect ADDR:PORT
		ap, err := netip.ParseAddrPort(args[1])
		if err != nil {
			return result(err)
		}
		return result(connectErr(familyOf(ap.Addr()), unix.SOCK_DGRAM, ap))
	case "execveat": // execveat PATH: exec through an O_PATH descriptor
		fd, err := unix.Open(args[1], unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return result(err)
		}
		return result(execveat(fd, []string{"true"}, os.Environ()))
	case "agent-protect": // agent-protect ROOT: see runProtectedAgent
		if err := rlimit.RemoveMemlock(); err != nil {
			return result(err)
		}
		return result(runProtectedAgent(args[1]))
	case "agent": // agent ROOT PATH...: apply a deny policy, report, wait to be killed
		if err := rlimit.RemoveMemlock(); err != nil {
			return result(err)
		}
		var rules []engine.FileRule
		for i, p := range args[2:] {
			rules = append(rules, engine.FileRule{ID: fmt.Sprintf("r%d", i), Path: p, Access: engine.AccessRead | engine.AccessWrite})
		}
		rs, err := engine.Resolve(engine.FileRules(true, rules...), engine.HostFS)
		if err != nil {
			return result(err)
		}
		e := &engine.Engine{Root: args[1]}
		if _, err := e.Apply(rs); err != nil {
			return result(err)
		}
		fmt.Println("ready")
		for {
			time.Sleep(time.Hour)
		}
	}
	fmt.Fprintln(os.Stderr, "helper: unknown action", args[0])
	return 2
}

// execveat execs the file behind fd (AT_EMPTY_PATH); it returns only on error.
func execveat(fd int, argv, envv []string) error {
	empty, err := unix.BytePtrFromString("")
	if err != nil {
		return err
	}
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(envv)
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	return errno
}

// helper returns a command running the test binary as a helper.
func helper(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join(args, "\x1f"))
	cmd.Stderr = os.Stderr
	return cmd
}

// status runs cmd and returns its exit status (-1 if it could not start).
func status(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	case errors.Is(err, syscall.EPERM):
		return 13
	default:
		t.Fatalf("running %v: %v", cmd.Args, err)
		return -1
	}
}

// setup requires BPF LSM, lifts the memlock limit and returns an engine
// with its own pin root, released when the test ends, and a temporary
// directory removed after that (a policy may forbid removing it).
func setup(t *testing.T) (*engine.Engine, string) {
	t.Helper()
	testenv.RequireBPFLSM(t)
	dir := t.TempDir()
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatalf("removing memlock limit: %v", err)
	}
	root := filepath.Join("/sys/fs/bpf", "aegisbpf-test-"+strings.NewReplacer("/", "-").Replace(t.Name()))
	e := &engine.Engine{Root: root}
	t.Cleanup(func() { releaseAll(t, e) })
	return e, dir
}

func releaseAll(t *testing.T, e *engine.Engine) {
	ids, err := e.List()
	if err != nil {
		t.Errorf("listing instances: %v", err)
	}
	for _, id := range ids {
		if err := e.Release(id); err != nil {
			t.Errorf("releasing %s: %v", id, err)
		}
	}
	os.Remove(e.Root)
}

// apply resolves rules and applies them, failing the test on error.
func apply(t *testing.T, e *engine.Engine, enforce bool, rules ...engine.FileRule) *engine.Instance {
	t.Helper()
	rs, err := engine.Resolve(engine.FileRules(enforce, rules...), engine.HostFS)
	if err != nil {
		t.Fatalf("resolving rules: %v", err)
	}
	inst, err := e.Apply(rs)
	if err != nil {
		t.Fatalf("applying rules: %v", err)
	}
	t.Cleanup(func() { inst.Close() })
	return inst
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// openErr opens path read-only and returns the error.
func openErr(path string) error {
	f, err := os.Open(path)
	if err == nil {
		f.Close()
	}
	return err
}

func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, unix.EPERM) {
		t.Errorf("%s: got %v, want EPERM", what, err)
	}
}

func wantAllowed(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: got %v, want success", what, err)
	}
}
