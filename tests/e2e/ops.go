package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aegisbpf/aegisbpf/tests/e2e/internal/wire"
)

// pingInterval is how often WaitReady asks whether the agent is up.
const pingInterval = time.Second

// Boot returns the boot the guest agent last answered from.
func (v *VM) Boot() BootInfo {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.boot
}

// WaitReady waits until the guest agent answers, and returns its boot.
// It fails early, with the console's tail, when qemu exits or the kernel
// panics.
func (v *VM) WaitReady(ctx context.Context) (BootInfo, error) {
	return v.waitBoot(ctx, "")
}

// WaitNextBoot waits until the agent answers from a boot other than prev:
// after Reboot, Reset, or a reboot the guest started itself.
func (v *VM) WaitNextBoot(ctx context.Context, prev BootInfo) (BootInfo, error) {
	return v.waitBoot(ctx, prev.ID)
}

func (v *VM) waitBoot(ctx context.Context, notID string) (BootInfo, error) {
	for {
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, pingInterval)
		resp, err := v.ch.call(pctx, &wire.Request{Op: wire.OpPing})
		cancel()
		if err == nil && resp.Boot != "" && resp.Boot != notID {
			v.mu.Lock()
			b := BootInfo{ID: resp.Boot, Ready: time.Since(v.resetAt), Uptime: time.Duration(resp.UptimeMS) * time.Millisecond}
			v.boot = b
			v.mu.Unlock()
			v.log.Info("e2e: guest agent ready", "boot", b.ID, "after", b.Ready.Round(time.Millisecond), "uptime", b.Uptime)
			return b, nil
		}
		// An answer from the boot we wait to end, or a quick failure: do
		// not spin.
		if rest := pingInterval/2 - time.Since(start); rest > 0 {
			select {
			case <-time.After(rest):
			case <-ctx.Done():
			}
		}
		switch {
		case v.Exited():
			return BootInfo{}, fmt.Errorf("qemu exited before the guest agent answered (%v); console:\n%s", v.exitErr, v.ConsoleTail(40))
		case v.con.contains("Kernel panic"):
			return BootInfo{}, fmt.Errorf("the guest kernel panicked; console:\n%s", v.ConsoleTail(40))
		case ctx.Err() != nil:
			return BootInfo{}, fmt.Errorf("waiting for the guest agent: %w; console:\n%s", ctx.Err(), v.ConsoleTail(40))
		}
	}
}

// WaitSystem waits until systemd has finished booting (systemctl
// is-system-running --wait) and returns the state: "running", or
// "degraded" when units failed. Other states are errors.
func (v *VM) WaitSystem(ctx context.Context) (string, error) {
	r, err := v.Exec(ctx, "systemctl is-system-running --wait")
	if err != nil {
		return "", err
	}
	state := strings.TrimSpace(string(r.Stdout))
	switch state {
	case "running", "degraded":
		return state, nil
	}
	jobs, _ := v.Exec(ctx, "systemctl list-jobs --no-pager")
	var pending string
	if jobs != nil {
		pending = strings.TrimSpace(string(jobs.Stdout))
	}
	return state, fmt.Errorf("the guest system is %q, not running; jobs:\n%s", state, pending)
}

// Result is what a command did in the guest.
type Result struct {
	Cmd      string
	Stdout   []byte
	Stderr   []byte
	Exit     int  // the exit status; 128+N when killed by signal N
	TimedOut bool // killed at the context's deadline
	Took     time.Duration
}

// Err returns nil when the command exited 0, else an error naming the
// command, its status and its stderr.
func (r *Result) Err() error {
	switch {
	case r.TimedOut:
		return fmt.Errorf("guest command %q timed out after %s; stderr: %s", r.Cmd, r.Took.Round(time.Millisecond), clip(r.Stderr))
	case r.Exit != 0:
		return fmt.Errorf("guest command %q exited %d; stderr: %s", r.Cmd, r.Exit, clip(r.Stderr))
	}
	return nil
}

func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	if s == "" {
		return "(empty)"
	}
	return s
}

// Exec runs cmd with /bin/sh -c in the guest, as root, and returns what it
// did. The error is about the channel only (the guest went away, ctx
// ended); a command that fails is a Result with a non-zero Exit. A
// deadline on ctx also limits the command in the guest, which kills its
// process group when it passes. WaitReady must have succeeded first.
func (v *VM) Exec(ctx context.Context, cmd string) (*Result, error) {
	return v.ExecInput(ctx, cmd, nil)
}

// ExecInput is Exec with stdin for the command.
func (v *VM) ExecInput(ctx context.Context, cmd string, stdin []byte) (*Result, error) {
	boot := v.Boot()
	if boot.ID == "" {
		return nil, errors.New("e2e: no guest boot known yet: call WaitReady first")
	}
	start := time.Now()
	resp, err := v.ch.call(ctx, &wire.Request{Op: wire.OpExec, Boot: boot.ID, Cmd: cmd, Stdin: stdin})
	if err != nil {
		return nil, fmt.Errorf("running %q in the guest: %w", cmd, err)
	}
	if resp.Err != "" {
		return nil, fmt.Errorf("running %q in the guest: %s", cmd, resp.Err)
	}
	return &Result{Cmd: cmd, Stdout: resp.Stdout, Stderr: resp.Stderr, Exit: resp.Exit,
		TimedOut: resp.TimedOut, Took: time.Since(start)}, nil
}

// Run runs cmd like Exec and returns its stdout; a non-zero exit is an
// error that carries stderr.
func (v *VM) Run(ctx context.Context, cmd string) (string, error) {
	r, err := v.Exec(ctx, cmd)
	if err != nil {
		return "", err
	}
	return string(r.Stdout), r.Err()
}

// WriteFile writes data to the guest file p with mode, atomically (a
// temporary file in the same directory, fsync, rename). The directory
// must exist and be writable: the root is read-only, /var, /run and /tmp
// are not.
func (v *VM) WriteFile(ctx context.Context, p string, data []byte, mode os.FileMode) error {
	if err := v.fileOp(ctx, &wire.Request{Op: wire.OpWrite, Path: p, Data: data, Mode: uint32(mode.Perm())}, nil); err != nil {
		return fmt.Errorf("writing %s in the guest: %w", p, err)
	}
	return nil
}

// CopyIn copies the host file src to the guest path dst, keeping its mode.
func (v *VM) CopyIn(ctx context.Context, src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	return v.WriteFile(ctx, dst, data, fi.Mode())
}

// ReadFile returns the contents of the guest file p.
func (v *VM) ReadFile(ctx context.Context, p string) ([]byte, error) {
	var data []byte
	if err := v.fileOp(ctx, &wire.Request{Op: wire.OpRead, Path: p}, &data); err != nil {
		return nil, fmt.Errorf("reading %s in the guest: %w", p, err)
	}
	return data, nil
}

func (v *VM) fileOp(ctx context.Context, req *wire.Request, data *[]byte) error {
	req.Boot = v.Boot().ID
	if req.Boot == "" {
		return errors.New("no guest boot known yet: call WaitReady first")
	}
	resp, err := v.ch.call(ctx, req)
	if err != nil {
		return err
	}
	if resp.Err != "" {
		return errors.New(resp.Err)
	}
	if data != nil {
		*data = resp.Data
	}
	return nil
}

// Reboot asks systemd to reboot the guest and waits for the next boot's
// agent.
func (v *VM) Reboot(ctx context.Context) (BootInfo, error) {
	prev := v.Boot()
	if err := v.systemctl(ctx, "reboot"); err != nil {
		return BootInfo{}, err
	}
	return v.WaitNextBoot(ctx, prev)
}

// Reset hard-resets the guest through QMP system_reset, as a power cut
// followed by power-on would: nothing in the guest gets to run first.
// Requests in flight fail with ErrGuestGone. Call WaitNextBoot to wait for
// the next boot.
func (v *VM) Reset(ctx context.Context) error {
	if _, err := v.qmp.execute(ctx, "system_reset", nil); err != nil {
		return fmt.Errorf("resetting the guest: %w", err)
	}
	return nil
}

// Poweroff asks systemd to power the guest off and waits for qemu to exit.
func (v *VM) Poweroff(ctx context.Context) error {
	if err := v.systemctl(ctx, "poweroff"); err != nil {
		return err
	}
	if err := v.Wait(ctx); err != nil {
		return fmt.Errorf("powering off: %w", err)
	}
	return nil
}

// systemctl starts a reboot or poweroff job without waiting for it; the
// port may close before the answer comes, which is success too.
func (v *VM) systemctl(ctx context.Context, verb string) error {
	r, err := v.Exec(ctx, "systemctl --no-block "+verb)
	if errors.Is(err, ErrGuestGone) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	return nil
}
