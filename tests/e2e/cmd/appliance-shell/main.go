// Command appliance-shell boots the AegisBPF appliance under qemu with its
// serial console on this terminal, logged in as root: the "make
// demo-shell" experience. It builds the bare appliance (cached base root)
// unless -appliance names one already built, e.g. by the demo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aegisbpf/aegisbpf/image/appliance"
	"github.com/aegisbpf/aegisbpf/tests/e2e"
)

func main() {
	dir := flag.String("appliance", "", "boot the appliance built in `DIR` (default: build the bare appliance into a temporary directory)")
	timeout := flag.Duration("timeout", 8*time.Hour, "power the VM off after this long")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, *dir, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "appliance-shell: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir string, timeout time.Duration) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var a *appliance.Appliance
	var err error
	if dir != "" {
		a, err = appliance.Load(dir)
	} else {
		out, merr := os.MkdirTemp("", "aegisbpf-appliance-")
		if merr != nil {
			return merr
		}
		defer os.RemoveAll(out)
		fmt.Fprintln(os.Stderr, "appliance-shell: building the appliance (the first build runs mmdebstrap: minutes; then seconds)")
		a, err = e2e.BuildAppliance(ctx, appliance.Config{OutDir: out, Log: log})
	}
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "aegisbpf-shell-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	fmt.Fprintf(os.Stderr, "appliance-shell: booting %s under qemu (TCG: about a minute to the shell).\n"+
		"  You will be root on the serial console. Quit with 'poweroff', or Ctrl-A x.\n\n", a.KernelRelease)
	vm, err := e2e.Start(ctx, e2e.Config{Appliance: a, WorkDir: work, Interactive: true, Timeout: timeout})
	if err != nil {
		return err
	}
	defer vm.Close()
	if err := vm.Wait(ctx); err != nil && !errors.Is(err, context.Canceled) {
		var ee interface{ ExitCode() int }
		if errors.As(err, &ee) {
			return fmt.Errorf("qemu exited %d", ee.ExitCode())
		}
		return err
	}
	return nil
}
