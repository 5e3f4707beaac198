package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aegisbpf/aegisbpf/tests/e2e/internal/wire"
)

// Server answers requests for one boot.
type Server struct {
	// BootID is this boot's id (/proc/sys/kernel/random/boot_id).
	BootID string
	// Shell runs commands; empty means /bin/sh.
	Shell string
	// Env is the environment of commands; nil means DefaultEnv.
	Env []string
	// Uptime returns the time since boot; nil reports 0.
	Uptime func() time.Duration
	Log    *slog.Logger
}

// DefaultEnv is the environment commands run with: plain output, no pager,
// no colours.
func DefaultEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "LANG=C.UTF-8", "TERM=dumb",
		"SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "PAGER=cat",
	}
}

// Serve reads requests from r and writes responses to w until r fails or
// ctx ends. Bad lines are logged and skipped. It waits for the requests in
// flight before it returns.
func (s *Server) Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rd, wr := wire.NewReader(r), wire.NewWriter(w)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var req wire.Request
		err := rd.Read(&req)
		if errors.Is(err, wire.ErrBadLine) {
			log.Warn("skipping a bad line", "err", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("reading requests: %w", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := s.Handle(ctx, &req)
			if err := wr.Write(resp); err != nil {
				log.Warn("answering a request", "id", req.ID, "op", req.Op, "err", err)
			}
		}()
	}
}

// Handle carries out one request.
func (s *Server) Handle(ctx context.Context, req *wire.Request) *wire.Response {
	resp := &wire.Response{ID: req.ID, Boot: s.BootID}
	if req.Op != wire.OpPing && req.Boot != s.BootID {
		resp.Stale = true
		resp.Err = fmt.Sprintf("request %d is for boot %q, this is boot %q: refused", req.ID, req.Boot, s.BootID)
		return resp
	}
	var err error
	switch req.Op {
	case wire.OpPing:
		if s.Uptime != nil {
			resp.UptimeMS = s.Uptime().Milliseconds()
		}
	case wire.OpExec:
		err = s.exec(ctx, req, resp)
	case wire.OpWrite:
		err = writeFile(req.Path, req.Data, os.FileMode(req.Mode))
	case wire.OpRead:
		resp.Data, err = os.ReadFile(req.Path)
	default:
		err = fmt.Errorf("unknown operation %q", req.Op)
	}
	if err != nil {
		resp.Err = err.Error()
	}
	return resp
}

func (s *Server) exec(ctx context.Context, req *wire.Request, resp *wire.Response) error {
	if req.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	shell := s.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	cmd := exec.CommandContext(ctx, shell, "-c", req.Cmd)
	cmd.Env = s.Env
	if cmd.Env == nil {
		cmd.Env = DefaultEnv()
	}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A background child that keeps stdout open must not hold the answer.
	cmd.WaitDelay = 2 * time.Second
	cmd.Stdin = bytes.NewReader(req.Stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	resp.Stdout, resp.Stderr = stdout.Bytes(), stderr.Bytes()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil && req.TimeoutMS > 0:
		resp.TimedOut = true
		resp.Exit = -1
		return nil
	case errors.As(err, &ee):
		resp.Exit = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			resp.Exit = 128 + int(ws.Signal())
		}
		return nil
	case errors.Is(err, exec.ErrWaitDelay):
		return nil
	case err != nil:
		return fmt.Errorf("running the command: %w", err)
	}
	return nil
}

// writeFile writes data to p through a temporary file and a rename, so a
// reader never sees half a file.
func writeFile(p string, data []byte, mode os.FileMode) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("path %q is not absolute", p)
	}
	if mode == 0 {
		mode = 0o644
	}
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".e2e-tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode.Perm())
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode.Perm())
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// ReadBootID returns the kernel's boot id.
func ReadBootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("reading the boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
