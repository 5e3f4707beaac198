package infra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// readyTimeout bounds how long a Start waits for its server to answer.
	readyTimeout = 30 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// portTries is how many ports a Start tries when the one FreePort gave
	// was taken before the server could bind it.
	portTries = 3
	// tailLines is how much of a server's output an error carries.
	tailLines = 20
)

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// server says how to run one kind of server.
type server struct {
	name string // for errors and log lines: "registry", "nginx", "prometheus"
	// launch writes the configuration for port into the server's directory
	// and returns the command line.
	launch func(port int) ([]string, error)
	// ready returns nil once the server on port answers as it should.
	ready func(ctx context.Context, c *http.Client, port int) error
}

// proc is one running server: the leader of its own process group.
type proc struct {
	name    string
	port    int
	cmd     *exec.Cmd
	out     *lineWriter
	done    chan struct{} // closed once the process has been waited for
	waitErr error         // cmd.Wait's result, set before done is closed
	ours    atomic.Bool   // the process was signalled by Stop or by ctx
	unwatch func() bool   // stops the ctx watch

	stopOnce sync.Once
	stopErr  error
}

// start runs s with its output to log and waits until it is ready, trying
// another port when the chosen one was taken meanwhile.
func start(ctx context.Context, dir string, s server, log io.Writer) (*proc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("starting %s: %w", s.name, err)
	}
	var err error
	for range portTries {
		var port int
		if port, err = FreePort(); err != nil {
			return nil, fmt.Errorf("starting %s: %w", s.name, err)
		}
		var p *proc
		if p, err = launch(ctx, dir, s, port, log); err != nil {
			return nil, err
		}
		if err = p.waitReady(ctx, s); err == nil {
			return p, nil
		}
		p.Stop()
		if ctx.Err() != nil || !strings.Contains(strings.ToLower(p.out.tail(tailLines)), "address already in use") {
			break
		}
	}
	return nil, err
}

// launch starts s on port without waiting for it to answer.
func launch(ctx context.Context, dir string, s server, port int, log io.Writer) (*proc, error) {
	argv, err := s.launch(port)
	if err != nil {
		return nil, fmt.Errorf("configuring %s: %w", s.name, err)
	}
	if log == nil {
		log = io.Discard
	}
	p := &proc{name: s.name, port: port, out: newLineWriter(s.name+": ", log), done: make(chan struct{})}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// Its own group, so Stop reaches nginx's workers too; killed if the test
	// process dies without Stop (strictly, if the thread that started it
	// ends, which Go does only to a thread a goroutine exited locked to).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", s.name, err)
	}
	p.cmd = cmd
	go func() {
		p.waitErr = cmd.Wait()
		p.out.flush()
		close(p.done)
	}()
	p.unwatch = context.AfterFunc(ctx, func() { p.signal(syscall.SIGKILL) })
	return p, nil
}

// serverEnv is the test's environment less REGISTRY_* (the registry reads
// its configuration from those too).
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady polls s.ready until it succeeds, the process exits, ctx ends
// or readyTimeout passes.
func (p *proc) waitReady(ctx context.Context, s server) error {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = s.ready(ctx, c, p.port); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready: %v; its output ends:\n%s", p.name, p.waitErr, p.out.tail(tailLines))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready on 127.0.0.1:%d after %v: %w (last: %v); its output ends:\n%s",
				p.name, p.port, time.Since(began).Round(time.Millisecond), context.Cause(ctx), last, p.out.tail(tailLines))
		case <-tick.C:
		}
	}
}

// signal sends sig to the process group, marking the exit as ours.
func (p *proc) signal(sig syscall.Signal) {
	p.ours.Store(true)
	syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Stop ends the process group: SIGTERM, then SIGKILL after stopGrace. It
// waits for the process and returns an error only if it had exited on its
// own before. Stop may be called more than once.
func (p *proc) Stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop() })
	return p.stopErr
}

func (p *proc) stop() error {
	p.unwatch()
	select {
	case <-p.done:
		if !p.ours.Load() {
			return fmt.Errorf("%s had exited on its own: %v; its output ends:\n%s", p.name, p.waitErr, p.out.tail(tailLines))
		}
		return nil
	default:
	}
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		p.signal(syscall.SIGKILL)
		<-p.done
	}
	p.waitGroup()
	if errors.Is(p.waitErr, exec.ErrWaitDelay) {
		return fmt.Errorf("stopping %s: %w", p.name, p.waitErr)
	}
	return nil
}

// waitGroup waits, a second at most, for the rest of the process group
// (nginx's workers) to be gone once the leader is, so that no port stays
// bound.
func (p *proc) waitGroup() {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if !groupRunning(p.cmd.Process.Pid) {
			return
		}
	}
}

// groupRunning reports whether a process of group pgid is running.
// kill(-pgid, 0) cannot tell: it counts zombies, and the orphans init
// inherits may stay zombies for seconds.
func groupRunning(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// "pid (comm) state ppid pgrp ...", and comm may hold anything.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

// httpGet GETs path on 127.0.0.1:port and returns the response with its
// body read.
func httpGet(ctx context.Context, c *http.Client, port int, path string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body, err
}

// absDir returns dir made absolute, for configuration files.
func absDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", dir, err)
	}
	return abs, nil
}
