package infra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireBinaries skips the test when a server is not installed, unless
// AEGISBPF_FLEET is set (make test-fleet), where that is a failure.
func requireBinaries(t *testing.T) {
	t.Helper()
	for _, bin := range []string{registryBin, nginxBin, prometheusBin} {
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("AEGISBPF_FLEET") != "" {
				t.Fatalf("%s missing (tests/deps.sh installs it): %v", bin, err)
			}
			t.Skipf("%s missing (tests/deps.sh installs it; AEGISBPF_FLEET=1 makes this a failure)", bin)
		}
	}
}

// syncWriter is a log several servers and the test share.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestServers(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	// Not t.Context(): that ends before cleanups, killing the servers
	// before Stop could end them itself.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	logFile, err := os.Create(filepath.Join(dir, "servers.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := &syncWriter{w: logFile}
	t.Cleanup(func() {
		logFile.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logFile.Name())
			t.Logf("servers' output:\n%s", data)
		}
	})
	stop := func(name string, f func() error) {
		t.Cleanup(func() {
			began := time.Now()
			if err := f(); err != nil {
				t.Errorf("stopping %s: %v", name, err)
			}
			t.Logf("%s stopped in %v", name, time.Since(began).Round(time.Millisecond))
		})
	}

	t.Run("registry", func(t *testing.T) {
		began := time.Now()
		reg, err := StartRegistry(ctx, filepath.Join(dir, "registry"), log)
		if err != nil {
			t.Fatal(err)
		}
		stop("registry", reg.Stop)
		t.Logf("registry on %s after %v", reg.Addr, time.Since(began).Round(time.Millisecond))
		if code, _ := get(t, "http://"+reg.Addr+"/v2/", nil); code != http.StatusOK {
			t.Errorf("GET /v2/: %d, want 200", code)
		}
		code, body := get(t, "http://"+reg.Addr+"/v2/_catalog", nil)
		var cat struct {
			Repositories []string `json:"repositories"`
		}
		if code != http.StatusOK || json.Unmarshal(body, &cat) != nil || len(cat.Repositories) != 0 {
			t.Errorf("GET /v2/_catalog: %d %q, want 200 and no repositories", code, body)
		}
	})

	t.Run("nginx", func(t *testing.T) {
		root := filepath.Join(dir, "pub")
		const content = "0123456789abcdef"
		if err := os.MkdirAll(filepath.Join(root, "a"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "a", "blob"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		web, err := StartStatic(ctx, filepath.Join(dir, "nginx"), root, log)
		if err != nil {
			t.Fatal(err)
		}
		stop("nginx", web.Stop)
		t.Logf("nginx on %s after %v", web.URL, time.Since(began).Round(time.Millisecond))

		tests := []struct {
			name, rng string
			code      int
			want      string
		}{
			{"whole", "", http.StatusOK, content},
			{"from offset", "bytes=3-", http.StatusPartialContent, content[3:]},
			{"span", "bytes=2-4", http.StatusPartialContent, content[2:5]},
			{"past the end", "bytes=100-", http.StatusRequestedRangeNotSatisfiable, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := http.Header{}
				if tt.rng != "" {
					h.Set("Range", tt.rng)
				}
				code, body := get(t, web.URL+"/a/blob", h)
				if code != tt.code || (tt.want != "" && string(body) != tt.want) {
					t.Errorf("GET /a/blob, Range %q: %d %q, want %d %q", tt.rng, code, body, tt.code, tt.want)
				}
			})
		}
		if code, _ := get(t, web.URL+"/missing", nil); code != http.StatusNotFound {
			t.Errorf("GET /missing: %d, want 404", code)
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		const n = 50
		targets := make([]string, n)
		for i := range targets {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/plain; version=0.0.4")
				fmt.Fprintln(w, "# TYPE fleet_test_up gauge")
				fmt.Fprintln(w, "fleet_test_up 1")
			}))
			t.Cleanup(srv.Close)
			targets[i] = srv.Listener.Addr().String()
		}
		began := time.Now()
		prom, err := StartPrometheus(ctx, filepath.Join(dir, "prometheus"), targets[:n/2], time.Second, log)
		if err != nil {
			t.Fatal(err)
		}
		stop("prometheus", prom.Stop)
		t.Logf("prometheus on %s after %v", prom.URL, time.Since(began).Round(time.Millisecond))
		// Half at start, the rest through the file_sd file.
		if err := prom.SetTargets(targets); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := prom.WaitTargets(wctx, n); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d targets up %v after start", n, time.Since(began).Round(time.Millisecond))

		q := prom.URL + "/api/v1/query?query=" + url.QueryEscape("count(fleet_test_up)")
		var got string
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if got = queryScalar(t, q); got == strconv.Itoa(n) || time.Now().After(deadline) {
				break
			}
		}
		if got != strconv.Itoa(n) {
			t.Errorf("count(fleet_test_up) = %q, want %d", got, n)
		}
	})
}

// get GETs u with header h and returns the status and body.
func get(t *testing.T, u string, h http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp.StatusCode, body
}

// queryScalar runs an instant query whose answer is one sample and returns
// its value, or "" when there is none.
func queryScalar(t *testing.T, u string) string {
	t.Helper()
	code, body := get(t, u, nil)
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &r) != nil || r.Status != "success" {
		t.Fatalf("GET %s: %d %s", u, code, body)
	}
	if len(r.Data.Result) != 1 {
		return ""
	}
	v, _ := r.Data.Result[0].Value[1].(string)
	return v
}

// TestStartStop checks the lifecycle every server shares, with shell
// scripts standing in for the servers.
func TestStartStop(t *testing.T) {
	t.Parallel()
	alwaysReady := func(context.Context, *http.Client, int) error { return nil }
	never := func(context.Context, *http.Client, int) error { return errors.New("not yet") }
	script := func(sh string) func(int) ([]string, error) {
		return func(int) ([]string, error) { return []string{"/bin/sh", "-c", sh}, nil }
	}
	tests := []struct {
		name    string
		s       server
		timeout time.Duration
		// startErr and stopErr are parts of the errors wanted, "" for none.
		startErr, stopErr string
		settle            time.Duration // between start and Stop
	}{
		{
			name:     "exits before ready",
			s:        server{name: "boom", launch: script("echo config is bad >&2; exit 3"), ready: never},
			startErr: "boom exited before it was ready: exit status 3; its output ends:\nconfig is bad",
		},
		{
			name:     "never ready",
			s:        server{name: "mute", launch: script("echo waiting; exec sleep 60"), ready: never},
			timeout:  300 * time.Millisecond,
			startErr: "mute not ready on 127.0.0.1:",
		},
		{
			name: "port taken, then free",
			s: func() server {
				tries := 0
				return server{name: "retry", launch: func(int) ([]string, error) {
					if tries++; tries == 1 {
						return []string{"/bin/sh", "-c", "echo 'bind() failed (98: Address already in use)'; exit 1"}, nil
					}
					return []string{"/bin/sleep", "60"}, nil
				}, ready: func(context.Context, *http.Client, int) error {
					if tries < 2 {
						return errors.New("not yet")
					}
					return nil
				}}
			}(),
		},
		{
			name:    "crashes after ready",
			s:       server{name: "crash", launch: script("sleep 0.1; echo panic >&2; exit 2"), ready: alwaysReady},
			settle:  500 * time.Millisecond,
			stopErr: "crash had exited on its own: exit status 2; its output ends:\npanic",
		},
		{
			name: "ignores SIGTERM",
			// The trap is inherited by sleep: only SIGKILL ends either.
			s:      server{name: "stubborn", launch: script("trap '' TERM; sleep 60 & sleep 60"), ready: alwaysReady},
			settle: 200 * time.Millisecond, // for the trap to be set
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			var out syncWriter
			out.w = io.Discard
			p, err := start(ctx, t.TempDir(), tt.s, &out)
			if tt.startErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.startErr) {
					t.Fatalf("start: %v, want an error with %q", err, tt.startErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			time.Sleep(tt.settle)
			err = p.Stop()
			if (tt.stopErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.stopErr)) {
				t.Errorf("Stop: %v, want an error with %q", err, tt.stopErr)
			}
			if groupRunning(p.cmd.Process.Pid) {
				t.Errorf("process group %d still runs after Stop", p.cmd.Process.Pid)
			}
			if err2 := p.Stop(); fmt.Sprint(err2) != fmt.Sprint(err) {
				t.Errorf("second Stop: %v, want %v again", err2, err)
			}
		})
	}
}
