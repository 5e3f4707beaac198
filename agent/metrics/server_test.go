package metrics

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

func scrape(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return string(body)
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	t.Run("unix", func(t *testing.T) {
		path := filepath.Join(dir, "m.sock")
		for range 2 { // the second replaces the first's stale socket file
			l, err := Listen("unix:" + path)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != 0o660 {
				t.Fatalf("socket mode %v, %v", fi.Mode(), err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}
	})
	t.Run("tcp loopback", func(t *testing.T) {
		l, err := Listen("tcp:127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	})
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, nil, 0o600)
	for _, spec := range []string{
		"tcp:0.0.0.0:9464", "tcp:10.1.2.3:9464", "tcp::9464", "tcp:localhost:9464", "tcp:[::]:9464",
		"unix:relative.sock", "unix:" + regular, "udp:127.0.0.1:1", "127.0.0.1:9464", "",
	} {
		t.Run("refuses "+spec, func(t *testing.T) {
			if l, err := Listen(spec); err == nil {
				l.Close()
				t.Fatalf("Listen(%q) accepted", spec)
			}
		})
	}
}

func TestServer(t *testing.T) {
	reg := NewRegistry(staticSource(referenceSnapshot()), buildInfo)
	path := filepath.Join(t.TempDir(), "m.sock")
	l, err := Listen("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(reg, slog.New(slog.DiscardHandler))
	s.Serve([]net.Listener{l})
	body := scrape(t, unixClient(path), "http://metrics/metrics")
	if !strings.Contains(body, `aegisbpf_rule_decisions_total{action="deny",rule="protect-shadow"} 7`) {
		t.Fatalf("scrape lacks the rule counter:\n%s", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("own socket file left after Shutdown: %v", err)
	}
}

// TestActivation passes listening sockets the way systemd does: as fds 3
// and up, with LISTEN_FDS, LISTEN_FDNAMES, and LISTEN_PID set to the pid
// of the process that is exec'd (sh sets it to its own pid, then execs the
// test binary, keeping pid and descriptors).
func TestActivation(t *testing.T) {
	if os.Getenv("AEGIS_TEST_ACTIVATION") == "1" {
		activationChild()
		return
	}
	dir := t.TempDir()
	listen := func(name string) (*os.File, string) {
		path := filepath.Join(dir, name)
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		ul := l.(*net.UnixListener)
		ul.SetUnlinkOnClose(false)
		f, err := ul.File()
		if err != nil {
			t.Fatal(err)
		}
		l.Close() // f keeps the socket open
		return f, path
	}
	mf, mpath := listen("metrics.sock")
	of, opath := listen("other.sock")

	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, os.Args[0], "-test.run=^TestActivation$")
	cmd.Env = append(os.Environ(), "AEGIS_TEST_ACTIVATION=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=metrics:other")
	cmd.ExtraFiles = []*os.File{mf, of} // fds 3 and 4
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	mf.Close()
	of.Close()
	defer cmd.Wait()
	defer stdin.Close()

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready 1 [other]" {
		t.Fatalf("child said %q, %v", line, err)
	}
	body := scrape(t, unixClient(mpath), "http://metrics/metrics")
	if !strings.Contains(body, "aegisbpf_build_info{") {
		t.Fatalf("activated listener served:\n%s", body)
	}
	if c, err := net.Dial("unix", opath); err == nil {
		c.Close()
		t.Error("the socket passed under another name is still open in the child")
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if _, err := os.Stat(mpath); err != nil {
		t.Errorf("the activated socket file was removed: %v", err)
	}
}

// activationChild runs in the re-executed test binary.
func activationChild() {
	ls, others, err := ActivatedListeners()
	if err != nil {
		panic(err)
	}
	for _, k := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
		if os.Getenv(k) != "" {
			panic(k + " left in the environment")
		}
	}
	s := NewServer(NewRegistry(staticSource(Snapshot{}), buildInfo), slog.New(slog.DiscardHandler))
	s.Serve(ls)
	os.Stdout.WriteString("ready " + string(rune('0'+len(ls))) + " [" + strings.Join(others, ",") + "]\n")
	io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		panic(err)
	}
	os.Exit(0)
}
