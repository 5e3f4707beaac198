// Command guestagent is the guest end of the e2e control channel. It runs
// in the appliance as aegisbpf-e2e-agent.service, started by the arrival of
// the virtio-serial port /dev/virtio-ports/org.aegisbpf.ctl, and serves the
// host driver's requests (tests/e2e/internal/guest) until the port goes.
//
// It is a test tool: it runs any command the host sends, as root. It is
// added to an appliance only by the e2e driver, never by the base recipe.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aegisbpf/aegisbpf/tests/e2e/internal/guest"
	"github.com/aegisbpf/aegisbpf/tests/e2e/internal/wire"
)

func main() {
	port := flag.String("port", "/dev/virtio-ports/"+wire.PortName, "the virtio-serial port to serve")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, *port, log); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "guestagent: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, port string, log *slog.Logger) error {
	boot, err := guest.ReadBootID()
	if err != nil {
		return err
	}
	srv := &guest.Server{BootID: boot, Uptime: uptime, Log: log}
	log.Info("serving the e2e control channel", "port", port, "boot", boot)
	for ctx.Err() == nil {
		err := serveOnce(ctx, srv, port)
		// EOF means the host side is not connected; anything else is logged.
		// Either way, open the port again shortly.
		if err != nil && !errors.Is(err, io.EOF) {
			log.Warn("control channel", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return ctx.Err()
}

func serveOnce(ctx context.Context, srv *guest.Server, port string) error {
	f, err := os.OpenFile(port, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", port, err)
	}
	defer f.Close()
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	return srv.Serve(ctx, f, f)
}

// uptime reads CLOCK_BOOTTIME from /proc/uptime.
func uptime() time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0
	}
	f, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}
