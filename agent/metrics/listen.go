package metrics

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
)

// ActivationName is the FileDescriptorName= of the metrics socket unit.
const ActivationName = "metrics"

// ActivatedListeners returns the listeners systemd passed under the name
// ActivationName (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES; nothing when the
// process was not socket-activated), and closes any passed under another
// name, which this agent does not expect. It consumes the LISTEN_*
// environment: call it once, early.
func ActivatedListeners() (mine []net.Listener, others []string, err error) {
	byName, err := activation.ListenersWithNames()
	if err != nil {
		return nil, nil, fmt.Errorf("taking socket-activated listeners: %w", err)
	}
	for name, ls := range byName {
		if name == ActivationName {
			mine = ls
			continue
		}
		others = append(others, name)
		for _, l := range ls {
			l.Close()
		}
	}
	return mine, others, nil
}

// Listen opens the listener of a --metrics-listen spec:
//
//	unix:/run/aegisbpf/metrics.sock   a unix socket (mode 0660; a stale socket file is replaced)
//	tcp:127.0.0.1:9464                TCP on a loopback address only
//
// Metrics tell an attacker which files are protected and how often access
// was denied, so they are never served beyond the host.
func Listen(spec string) (net.Listener, error) {
	network, addr, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, fmt.Errorf("metrics listen address %q: want unix:PATH or tcp:127.0.0.1:PORT", spec)
	}
	switch network {
	case "unix":
		return listenUnix(addr)
	case "tcp":
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return nil, fmt.Errorf("metrics listen address %q: want tcp:IP:PORT with a loopback IP: %w", spec, err)
		}
		if !ap.Addr().Unmap().IsLoopback() {
			return nil, fmt.Errorf("metrics listen address %q: %s is not a loopback address; metrics are only served on the host", spec, ap.Addr())
		}
		l, err := net.Listen("tcp", ap.String())
		if err != nil {
			return nil, fmt.Errorf("listening for metrics: %w", err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("metrics listen address %q: unknown network %q, want unix or tcp", spec, network)
}

func listenUnix(path string) (net.Listener, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("metrics socket path %q is not absolute", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("metrics socket path %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale metrics socket: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("metrics socket path: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening for metrics: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("setting the metrics socket mode: %w", err)
	}
	return l, nil
}
