package daemon

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// exitForced is the exit code after a second signal (128 + SIGINT, as
// shells report an interrupt).
const exitForced = 130

// handleSignals cancels on the first SIGTERM or SIGINT (graceful stop) and
// calls force on the second: a stop stuck in the kernel or a sink must not
// keep an operator waiting, and the pinned links enforce without us. The
// returned func stops handling.
func handleSignals(cancel func(), force func(int), log *slog.Logger) (stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case <-done:
				return
			case sig := <-ch:
				n++
				if n == 1 {
					log.Info("stopping: pinned links keep enforcing", "signal", sig.String())
					cancel()
					continue
				}
				log.Warn("second signal: exiting without a graceful stop; pinned links keep enforcing", "signal", sig.String())
				force(exitForced)
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
