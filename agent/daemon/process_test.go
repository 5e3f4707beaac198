package daemon

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv selects what the re-executed test binary does.
const childEnv = "AEGIS_DAEMON_TEST_CHILD"

// TestMain lets a test re-execute this binary as the agent process, so
// that LISTEN_PID, WATCHDOG_PID and signals concern a process of its own.
func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "serve":
		err := Run(context.Background(), Config{NoJournal: true}, newFakeEngine())
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	case "hang":
		eng := newFakeEngine()
		eng.gate = make(chan struct{}) // never opens
		eng.ignoreCtx = true
		Run(context.Background(), Config{NoJournal: true}, eng)
		os.Exit(0) // not reached: the second signal exits 130
	}
}

// agentProcess starts the test binary as an agent the way systemd does:
// passed sockets at fds 3 and up, and LISTEN_PID and WATCHDOG_PID set to
// the pid of the process that is exec'd (sh exports its own pid, then
// execs, keeping pid and descriptors).
func agentProcess(t *testing.T, mode string, env []string, files ...*os.File) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `export LISTEN_PID=$$ WATCHDOG_PID=$$; exec "$0"`, os.Args[0])
	cmd.Env = append(os.Environ(), append(env, childEnv+"="+mode)...)
	cmd.ExtraFiles = files
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill() // only our own child, if a test failed early
			cmd.Wait()
		}
	})
	return cmd
}

func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(err)
	case <-time.After(20 * time.Second):
		t.Fatal("agent process did not exit")
		return -1
	}
}

// TestSocketActivatedAgent runs the agent as its own process with a
// socket-activated metrics listener, a real notify socket and the
// watchdog, and stops it with SIGTERM.
func TestSocketActivatedAgent(t *testing.T) {
	noWatchdog(t)
	ns := listenNotify(t)
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // systemd owns the socket file
	f, err := ul.File()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	cmd := agentProcess(t, "serve",
		[]string{"LISTEN_FDS=1", "LISTEN_FDNAMES=metrics", "WATCHDOG_USEC=400000"}, f)
	f.Close()

	ns.expect(t, "READY=1", 10*time.Second)
	ns.expect(t, "WATCHDOG=1", 5*time.Second)
	body := scrapeUnix(t, sock)
	for _, want := range []string{"aegisbpf_enforcement_active 1", "aegisbpf_watchdog_enabled 1", "aegisbpf_watchdog_timeout_seconds 0.4"} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape over the activated socket lacks %q", want)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ns.expect(t, "STOPPING=1", 5*time.Second)
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("the activated socket file was removed by the agent: %v", err)
	}
}

// TestSecondSignalForcesExit: a stop that hangs (here: Start ignoring its
// context) ends at the second signal.
func TestSecondSignalForcesExit(t *testing.T) {
	noWatchdog(t)
	ns := listenNotify(t)
	cmd := agentProcess(t, "hang", nil)
	ns.expect(t, "STATUS=starting", 10*time.Second)
	exited := make(chan int, 1)
	go func() { exited <- exitCode(cmd.Wait()) }()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case code := <-exited:
		t.Fatalf("exited (%d) on the first signal although Start hangs", code)
	case <-time.After(300 * time.Millisecond):
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case code := <-exited:
		if code != exitForced {
			t.Fatalf("exit code %d after a second signal, want %d", code, exitForced)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after a second signal")
	}
	if ns.seen("READY=1") {
		t.Error("READY=1 from an agent that never enforced")
	}
}

// exitCode is the exit code of a waited-for process, -1 when it did not
// exit normally.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
