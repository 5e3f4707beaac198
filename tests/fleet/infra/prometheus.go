package infra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/atomicfile"
)

// prometheusBin is Debian's Prometheus server (2.42 in bookworm).
const prometheusBin = "/usr/bin/prometheus"

// targetsFile is the file_sd file, in the server's directory.
const targetsFile = "targets.json"

// Prometheus is a Prometheus server scraping targets listed in a file_sd
// JSON file it re-reads. Its methods are safe for concurrent use, but
// concurrent SetTargets race on which list is last.
type Prometheus struct {
	URL string // "http://127.0.0.1:PORT", for the HTTP API
	p   *proc
	dir string
	c   *http.Client
}

// StartPrometheus starts it with scrape_interval and evaluation_interval =
// interval, one job "aegisbpf" whose targets come from file_sd file
// <dir>/targets.json (written initially with targets, each
// "127.0.0.1:PORT"), storage in dir, --web.listen-address on a free
// loopback port, and returns once GET /-/ready answers 200.
//
// scrape_timeout is four fifths of interval, so a slow scrape is
// abandoned before the next is due. The storage is dir/data, kept a day.
// To open a connection per target, for a
// thousand of them, StartPrometheus raises the test process's soft limit
// of open files to its hard limit, which Prometheus then inherits.
func StartPrometheus(ctx context.Context, dir string, targets []string, interval time.Duration, log io.Writer) (*Prometheus, error) {
	if interval < time.Millisecond {
		return nil, fmt.Errorf("starting prometheus: scrape interval %v is under 1ms", interval)
	}
	dir, err := absDir(dir)
	if err != nil {
		return nil, err
	}
	if err := raiseNoFile(); err != nil {
		return nil, fmt.Errorf("starting prometheus: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("starting prometheus: %w", err)
	}
	pr := &Prometheus{dir: dir, c: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second}}
	if err := pr.SetTargets(targets); err != nil {
		return nil, fmt.Errorf("starting prometheus: %w", err)
	}
	s := server{
		name: "prometheus",
		launch: func(port int) ([]string, error) {
			cfg := filepath.Join(dir, "prometheus.yml")
			data, err := prometheusConfig(filepath.Join(dir, targetsFile), interval)
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(cfg, data, 0o644); err != nil {
				return nil, err
			}
			return []string{prometheusBin,
				"--config.file=" + cfg,
				"--storage.tsdb.path=" + filepath.Join(dir, "data"),
				"--storage.tsdb.retention.time=1d",
				"--web.listen-address=127.0.0.1:" + strconv.Itoa(port),
				"--web.max-connections=4096",
				"--log.level=warn",
			}, nil
		},
		ready: func(ctx context.Context, c *http.Client, port int) error {
			resp, _, err := httpGet(ctx, c, port, "/-/ready")
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET /-/ready: %s", resp.Status)
			}
			return nil
		},
	}
	if pr.p, err = start(ctx, dir, s, log); err != nil {
		return nil, err
	}
	pr.URL = "http://127.0.0.1:" + strconv.Itoa(pr.p.port)
	return pr, nil
}

// SetTargets replaces the targets, each "127.0.0.1:PORT", by writing
// targets.json anew and renaming it into place. Prometheus notices the
// rename at once, but applies new targets only on its next reload of
// discovered targets, every 5 s.
func (p *Prometheus) SetTargets(targets []string) error {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels,omitempty"`
	}
	groups := []group{}
	if len(targets) > 0 {
		groups = append(groups, group{Targets: targets})
	}
	data, err := json.Marshal(groups)
	if err != nil {
		return fmt.Errorf("setting targets: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(p.dir, targetsFile), data, 0o644); err != nil {
		return fmt.Errorf("setting targets: %w", err)
	}
	return nil
}

// WaitTargets waits until Prometheus reports n active targets with health
// "up" (GET /api/v1/targets), or ctx ends.
func (p *Prometheus) WaitTargets(ctx context.Context, n int) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		st, err := p.targets(ctx)
		switch {
		case err != nil:
			last = err.Error()
		case st.up == n && st.active == n:
			return nil
		default:
			last = fmt.Sprintf("%d active, %d up", st.active, st.up)
			if st.lastError != "" {
				last += "; a scrape failed: " + st.lastError
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d targets up: %w (last: %s)", n, context.Cause(ctx), last)
		case <-p.p.done:
			return fmt.Errorf("waiting for %d targets up: prometheus exited: %v", n, p.p.waitErr)
		case <-tick.C:
		}
	}
}

// targetState sums up /api/v1/targets.
type targetState struct {
	active, up int
	lastError  string // of one target that is not up
}

func (p *Prometheus) targets(ctx context.Context) (targetState, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/targets?state=active", nil)
	if err != nil {
		return targetState{}, err
	}
	resp, err := p.c.Do(req)
	if err != nil {
		return targetState{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return targetState{}, fmt.Errorf("GET /api/v1/targets: %s", resp.Status)
	}
	var body struct {
		Status string `json:"status"`
		Data   struct {
			ActiveTargets []struct {
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return targetState{}, fmt.Errorf("decoding /api/v1/targets: %w", err)
	}
	if body.Status != "success" {
		return targetState{}, errors.New("GET /api/v1/targets: status " + body.Status)
	}
	st := targetState{active: len(body.Data.ActiveTargets)}
	for _, t := range body.Data.ActiveTargets {
		if t.Health == "up" {
			st.up++
		} else if t.LastError != "" {
			st.lastError = t.LastError
		}
	}
	return st, nil
}

// Stop ends Prometheus and waits for it to exit. Its storage and
// targets.json stay in dir. The error says whether it had exited on its
// own before.
func (p *Prometheus) Stop() error { return p.p.Stop() }

// prometheusConfig is prometheus.yml as JSON, which YAML reads as well.
func prometheusConfig(targets string, interval time.Duration) ([]byte, error) {
	type m = map[string]any
	cfg := m{
		"global": m{
			"scrape_interval":     promDuration(interval),
			"scrape_timeout":      promDuration(max(interval*4/5, time.Millisecond)),
			"evaluation_interval": promDuration(interval),
		},
		"scrape_configs": []m{{
			"job_name": "aegisbpf",
			"file_sd_configs": []m{{
				"files": []string{targets},
				// A rename is seen at once; this is the fallback.
				"refresh_interval": promDuration(max(interval, 5*time.Second)),
			}},
		}},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// promDuration formats d as Prometheus reads durations: "1500ms", not
// Go's "1.5s".
func promDuration(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// raiseNoFile raises the soft limit of open files to the hard limit. Go
// has done so for itself at start already, but restores the limit it
// found in the processes it starts, unless the program sets the limit.
func raiseNoFile() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading the open files limit: %w", err)
	}
	lim.Cur = lim.Max // even if it is already: see above
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raising the open files limit to %d: %w", lim.Max, err)
	}
	return nil
}
