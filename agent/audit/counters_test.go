package audit

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCounters(t *testing.T) {
	c, err := ParseCounters(strings.NewReader(string(readTestdata(t, "metrics.txt"))))
	if err != nil {
		t.Fatal(err)
	}
	if c.Decisions != 1245128 || c.RuleAudit["protect-shadow"] != 70 || c.RuleDeny["protect-agent"] != 2 {
		t.Errorf("counters %+v", c)
	}
	for _, tc := range []struct{ name, text, want string }{
		{"not the agent's", "# TYPE up gauge\nup 1\n", "no aegisbpf_decisions_total"},
		{"not Prometheus", "aegisbpf_decisions_total{action=\"allow\" 1\n", "parsing metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseCounters(strings.NewReader(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// serveMetrics serves body as the agent's /metrics on a unix socket.
func serveMetrics(t *testing.T, body string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "m.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte(body))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestScrapeCounters(t *testing.T) {
	sock := serveMetrics(t, string(readTestdata(t, "metrics.txt")))
	c, err := ScrapeCounters(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	if c.Decisions != 1245128 {
		t.Errorf("decisions %d", c.Decisions)
	}
	if _, err := ScrapeCounters(context.Background(), filepath.Join(t.TempDir(), "none.sock")); err == nil ||
		!strings.Contains(err.Error(), "none.sock") {
		t.Errorf("error %v", err)
	}
}
