package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves /metrics of a gatherer on any number of listeners.
type Server struct {
	srv  *http.Server
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// NewServer returns a Server for g. Scrapes run at most two at a time and
// time out after 10 s; a failing collector yields a partial scrape and is
// logged, never a 500.
func NewServer(g prometheus.Gatherer, log *slog.Logger) *Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            slogPrinter{log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 2,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "aegisbpf: metrics at /metrics")
	})
	return &Server{srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
}

// Serve starts serving each listener on its own goroutine and returns.
// The Server owns the listeners from then on.
func (s *Server) Serve(ls []net.Listener) {
	for _, l := range ls {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.mu.Lock()
				s.errs = append(s.errs, fmt.Errorf("serving metrics on %s: %w", l.Addr(), err))
				s.mu.Unlock()
			}
		}()
	}
}

// Shutdown stops accepting, waits for scrapes in flight until ctx ends and
// closes the listeners (a socket-activated one stays open in systemd, which
// holds its own copy). It returns the errors that ended serving, if any.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close() // scrapes still running after ctx: cut them
	}
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(append([]error{err}, s.errs...)...)
}

// slogPrinter adapts a slog.Logger to promhttp's Logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("serving metrics", "err", fmt.Sprint(v...)) }
