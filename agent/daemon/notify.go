package daemon

import (
	"log/slog"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifier sends sd_notify messages (NOTIFY_SOCKET; nothing when unset).
// A failing socket is logged when it starts failing and when it recovers,
// not at every watchdog round.
type notifier struct {
	log *slog.Logger

	mu      sync.Mutex
	failing bool
}

// send sends state, e.g. "READY=1\nSTATUS=...", as one datagram and
// reports whether it was delivered.
func (n *notifier) send(state string) bool {
	ok, err := daemon.SdNotify(false, state)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		if !n.failing {
			n.log.Warn("notifying systemd", "err", err)
		}
		n.failing = true
		return false
	}
	if n.failing {
		n.log.Info("notifying systemd works again")
		n.failing = false
	}
	return ok
}

// status sends STATUS=line, with state lines before it.
func (n *notifier) status(line string, states ...string) bool {
	return n.send(strings.Join(append(states, "STATUS="+statusText(line)), "\n"))
}

// statusText keeps a STATUS value on one line and of a size systemctl
// status shows.
func statusText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}
