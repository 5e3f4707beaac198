package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/tests/e2e/internal/guest"
	"github.com/aegisbpf/aegisbpf/tests/e2e/internal/wire"
)

// pipeVM returns a VM whose control channel is served in process by the
// guest server, as the guest agent would serve it, for boot "boot-1".
func pipeVM(t *testing.T) (*VM, *channel) {
	t.Helper()
	host, guestEnd := net.Pipe()
	srv := &guest.Server{BootID: "boot-1", Uptime: func() time.Duration { return 3 * time.Second }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ctx, guestEnd, guestEnd)
	}()
	ch := newChannel(host)
	v := &VM{log: testLogger(t), ch: ch, exited: make(chan struct{}), con: &console{done: make(chan struct{})}, resetAt: time.Now()}
	t.Cleanup(func() {
		cancel()
		host.Close()
		guestEnd.Close()
		<-done
	})
	return v, ch
}

func TestChannelExec(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("needs /bin/sh")
	}
	v, _ := pipeVM(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := v.Exec(ctx, "true"); err == nil {
		t.Fatal("Exec before WaitReady succeeded")
	}
	b, err := v.WaitReady(ctx)
	if err != nil || b.ID != "boot-1" || b.Uptime != 3*time.Second {
		t.Fatalf("WaitReady = %+v, %v", b, err)
	}
	tests := []struct {
		name       string
		cmd        string
		stdin      string
		exit       int
		stdout     string
		stderr     string
		timeoutSec int
		timedOut   bool
	}{
		{name: "output", cmd: "echo out; echo err >&2", stdout: "out\n", stderr: "err\n"},
		{name: "exit status", cmd: "exit 7", exit: 7},
		{name: "signal", cmd: "kill -9 $$", exit: 128 + 9},
		{name: "stdin", cmd: "tr a-z A-Z", stdin: "hello", stdout: "HELLO"},
		{name: "binary output", cmd: `printf 'a\000b\377'`, stdout: "a\x00b\xff"},
		{name: "environment", cmd: `echo "$SYSTEMD_PAGER|$LANG"`, stdout: "|C.UTF-8\n"},
		{name: "timeout kills the group", cmd: "sleep 30 & sleep 30", timeoutSec: 2, timedOut: true, exit: -1},
		{name: "background child does not hold the answer", cmd: "sleep 30 &", exit: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctx
			if tt.timeoutSec > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Duration(tt.timeoutSec)*time.Second)
				defer cancel()
			}
			start := time.Now()
			r, err := v.ExecInput(ctx, tt.cmd, []byte(tt.stdin))
			if err != nil {
				t.Fatal(err)
			}
			if r.Exit != tt.exit || string(r.Stdout) != tt.stdout || string(r.Stderr) != tt.stderr || r.TimedOut != tt.timedOut {
				t.Errorf("got exit=%d stdout=%q stderr=%q timedOut=%v; want %d %q %q %v",
					r.Exit, r.Stdout, r.Stderr, r.TimedOut, tt.exit, tt.stdout, tt.stderr, tt.timedOut)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("took %s", took)
			}
			if (r.Err() == nil) != (tt.exit == 0 && !tt.timedOut) {
				t.Errorf("Err() = %v", r.Err())
			}
		})
	}
	t.Run("concurrent", func(t *testing.T) {
		slow := make(chan error, 1)
		go func() {
			_, err := v.Run(ctx, "sleep 1; echo slow")
			slow <- err
		}()
		start := time.Now()
		if out, err := v.Run(ctx, "echo fast"); err != nil || out != "fast\n" {
			t.Fatalf("Run = %q, %v", out, err)
		}
		if time.Since(start) > 900*time.Millisecond {
			t.Error("a quick command waited for a slow one")
		}
		if err := <-slow; err != nil {
			t.Fatal(err)
		}
	})
}

func TestChannelFiles(t *testing.T) {
	v, _ := pipeVM(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := v.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "f")
	data := []byte("x\x00y\n")
	if err := v.WriteFile(ctx, p, data, 0o640); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("stat = %v, %v", fi, err)
	}
	got, err := v.ReadFile(ctx, p)
	if err != nil || string(got) != string(data) {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
	if _, err := v.ReadFile(ctx, p+".missing"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("reading a missing file: %v", err)
	}
	if err := v.WriteFile(ctx, "relative", data, 0o644); err == nil {
		t.Error("a relative path was written")
	}
}

func TestChannelRefusesStaleBoot(t *testing.T) {
	v, ch := pipeVM(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := v.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// As if the guest had rebooted since the host last saw it.
	v.mu.Lock()
	v.boot.ID = "boot-0"
	v.mu.Unlock()
	marker := filepath.Join(t.TempDir(), "ran")
	_, err := v.Exec(ctx, "touch "+marker)
	if !errors.Is(err, ErrGuestGone) {
		t.Fatalf("Exec for an old boot: err = %v, want ErrGuestGone", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a command for an old boot ran")
	}
	// A response nobody waits for is dropped; the channel stays usable.
	if _, err := ch.call(ctx, &wire.Request{Op: wire.OpPing}); err != nil {
		t.Fatal(err)
	}
}

func TestChannelFailsPendingOnReset(t *testing.T) {
	v, _ := pipeVM(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := v.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := v.Exec(ctx, "sleep 5")
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	v.onEvent(qmpEvent{Event: "RESET", Data: []byte(`{"guest":false}`)})
	select {
	case err := <-errc:
		if !errors.Is(err, ErrGuestGone) || !strings.Contains(err.Error(), "reset") {
			t.Fatalf("err = %v, want ErrGuestGone naming the reset", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the request in flight did not fail at the reset")
	}
	if v.Resets() != 1 {
		t.Errorf("Resets() = %d", v.Resets())
	}
}

func TestWireSkipsBadLines(t *testing.T) {
	r := wire.NewReader(strings.NewReader("{\"id\":1,\"op\":\"pi\n}garbage\n{\"id\":2,\"op\":\"ping\"}\n"))
	var req wire.Request
	if err := r.Read(&req); !errors.Is(err, wire.ErrBadLine) {
		t.Fatalf("first read: %v, want ErrBadLine", err)
	}
	if err := r.Read(&req); !errors.Is(err, wire.ErrBadLine) {
		t.Fatalf("second read: %v, want ErrBadLine", err)
	}
	if err := r.Read(&req); err != nil || req.ID != 2 {
		t.Fatalf("third read: %+v, %v", req, err)
	}
}
