package vmbench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/tests/bench/proc"
)

// Agent is a running aegisbpf, started the way systemd starts it: a
// notify socket, metrics on a unix socket, no journal.
type Agent struct {
	cmd     *exec.Cmd
	dir     string
	root    string // bpffs root of its pins
	metrics string
	exited  chan error
	log     lockedBuffer
}

// lockedBuffer collects the agent's log while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartAgent runs bin with the signed policy at policyPath and the trust
// store keys, pinning under root, in its own state directory under dir,
// with env added to its environment.
// When probe is set, a loop opening it runs from before the exec, and
// st.ToDeny is when it first failed with EPERM. It returns once the agent
// said READY=1.
func StartAgent(bin, policyPath, keys, root, dir, probe string, env []string, st *Start) (*Agent, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	notifyPath := filepath.Join(dir, "notify.sock")
	os.Remove(notifyPath)
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	defer notify.Close()
	a := &Agent{dir: dir, root: root, metrics: filepath.Join(dir, "metrics.sock"), exited: make(chan error, 1)}
	os.Remove(a.metrics)
	a.cmd = exec.Command(bin, "run", "--policy", policyPath, "--keys", keys, "--bpffs-root", root,
		"--metrics-listen", "unix:"+a.metrics, "--state-dir", filepath.Join(dir, "state"), "--slots-dir", "", "--no-journal")
	a.cmd.Env = append(append(os.Environ(), env...), "NOTIFY_SOCKET="+notifyPath)
	a.cmd.Stdout, a.cmd.Stderr = &a.log, &a.log

	// The probe: started before the exec, it notes the first EPERM and the
	// agent's CPU time at that moment.
	var pid atomic.Int64
	stop := make(chan struct{})
	probed := make(chan struct{})
	var deniedAt time.Time
	var deniedCPU time.Duration
	if probe != "" {
		go func() {
			defer close(probed)
			for {
				select {
				case <-stop:
					return
				default:
				}
				fd, err := unix.Open(probe, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err == nil {
					unix.Close(fd)
				} else if errors.Is(err, unix.EPERM) {
					deniedAt = time.Now()
					deniedCPU, _ = proc.CPU(int(pid.Load()))
					return
				}
				time.Sleep(50 * time.Microsecond)
			}
		}()
	} else {
		close(probed)
	}
	defer close(stop)

	t0 := time.Now()
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the agent: %w", err)
	}
	pid.Store(int64(a.cmd.Process.Pid))
	go func() { a.exited <- a.cmd.Wait() }()

	notify.SetReadDeadline(time.Now().Add(10 * time.Minute))
	buf := make([]byte, 4096)
	for ready := false; !ready; {
		n, err := notify.Read(buf)
		if err != nil {
			a.Kill()
			return nil, fmt.Errorf("waiting for READY=1: %v; agent log:\n%s", err, a.log.String())
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			ready = ready || line == "READY=1"
		}
	}
	st.ToReady = time.Since(t0)
	if probe != "" {
		select {
		case <-probed:
		case <-time.After(10 * time.Second):
		}
		if deniedAt.IsZero() {
			a.Kill()
			return nil, fmt.Errorf("READY=1 came, but %s still opened 10 s later", probe)
		}
		st.ToDeny, st.DenyCPU = deniedAt.Sub(t0), deniedCPU
	}
	return a, nil
}

// Pid is the agent's process id.
func (a *Agent) Pid() int { return a.cmd.Process.Pid }

// Log is what the agent has logged so far.
func (a *Agent) Log() string { return a.log.String() }

// Kill stops the agent at once.
func (a *Agent) Kill() {
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.exited
}

// Stop ends the agent with SIGTERM and removes its pins, so that nothing
// enforces afterwards.
func (a *Agent) Stop() error {
	a.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-a.exited:
	case <-time.After(2 * time.Minute):
		a.cmd.Process.Signal(syscall.SIGKILL)
		err = errors.Join(errors.New("the agent did not stop within 2 minutes of SIGTERM"), <-a.exited)
	}
	if rerr := os.RemoveAll(a.root); rerr != nil {
		err = errors.Join(err, fmt.Errorf("removing the pins: %w", rerr))
	}
	return err
}

// Metrics scrapes the agent's metrics endpoint.
func (a *Agent) Metrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", a.metrics)
	}}, Timeout: time.Minute}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping metrics: %w", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(bufio.NewReader(resp.Body))
}

// Sum adds every series of a counter or gauge family; 0 when absent.
func Sum(f map[string]*dto.MetricFamily, name string) float64 {
	var v float64
	if mf := f[name]; mf != nil {
		for _, m := range mf.Metric {
			switch {
			case m.Counter != nil:
				v += m.Counter.GetValue()
			case m.Gauge != nil:
				v += m.Gauge.GetValue()
			case m.Untyped != nil:
				v += m.Untyped.GetValue()
			}
		}
	}
	return v
}

var (
	logKV   = regexp.MustCompile(`(\w+)=("[^"]*"|\S+)`)
	logMsgs = map[string][]string{
		"policy verified":   {"preflight", "after"},
		"policy resolved":   {"after"},
		"instance attached": {"load", "fill", "attach"},
	}
)

// Phases reads the start-up steps from the agent's log: verify (reading,
// parsing, verifying and compiling the policy), resolve (the paths on this
// host), load (the programs, through the verifier), fill (the maps),
// attach.
func Phases(log string) map[string]time.Duration {
	got := map[string]time.Duration{}
	for _, line := range strings.Split(log, "\n") {
		kv := map[string]string{}
		for _, m := range logKV.FindAllStringSubmatch(line, -1) {
			kv[m[1]] = strings.Trim(m[2], `"`)
		}
		keys, ok := logMsgs[kv["msg"]]
		if !ok {
			continue
		}
		for _, k := range keys {
			d, err := time.ParseDuration(kv[k])
			if err != nil {
				continue
			}
			switch {
			case kv["msg"] == "policy verified" && k == "preflight":
				got["preflight"] = d
			case kv["msg"] == "policy verified":
				got["verify"] = d // until fixed up below
			case kv["msg"] == "policy resolved":
				got["resolve"] = d // until fixed up below
			default:
				got[k] = d
			}
		}
	}
	if r, ok := got["resolve"]; ok {
		got["resolve"] = r - got["verify"]
	}
	if v, ok := got["verify"]; ok {
		got["verify"] = v - got["preflight"]
	}
	return got
}

// MapMemory is one map's kernel memory.
type MapMemory struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Bytes uint64 `json:"bytes"`
}

// KernelMemory reads the memlock of every BPF map on the system (the
// kernel's own figure for each map's memory, ring buffer included), largest
// first.
func KernelMemory() ([]MapMemory, error) {
	var out []MapMemory
	var id ebpf.MapID
	for {
		var err error
		id, err = ebpf.MapGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("listing maps: %w", err)
		}
		m, err := ebpf.NewMapFromID(id)
		if errors.Is(err, os.ErrNotExist) {
			continue // freed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("opening map %d: %w", id, err)
		}
		info, err := m.Info()
		m.Close()
		if err != nil {
			return nil, fmt.Errorf("map %d: %w", id, err)
		}
		n, _ := info.Memlock()
		out = append(out, MapMemory{Name: info.Name, Type: info.Type.String(), Bytes: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bytes > out[j].Bytes })
	return out, nil
}
