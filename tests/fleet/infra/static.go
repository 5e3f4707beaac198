package infra

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// nginxBin is Debian's nginx (nginx-light pulls it in).
const nginxBin = "/usr/sbin/nginx"

// Static is nginx serving root read-only on loopback (HTTP/1.1, Range
// requests supported, which nginx does for static files). Its methods are
// safe for concurrent use.
type Static struct {
	URL string // "http://127.0.0.1:PORT", no trailing slash
	p   *proc
}

// StartStatic writes nginx.conf into dir (created if missing), with the pid
// file and temporary files there too, starts nginx on a free loopback port
// serving the files under root, with its error log to log, and returns
// once it answers GET /. It has two workers, no access log and sendfile;
// it answers only GET and HEAD. Run as root, the workers stay root so
// that they can read a root-owned temporary directory.
func StartStatic(ctx context.Context, dir, root string, log io.Writer) (*Static, error) {
	dir, err := absDir(dir)
	if err != nil {
		return nil, err
	}
	if root, err = absDir(root); err != nil {
		return nil, err
	}
	s := server{
		name: "nginx",
		launch: func(port int) ([]string, error) {
			for _, d := range []string{"tmp", "logs"} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					return nil, err
				}
			}
			cfg := filepath.Join(dir, "nginx.conf")
			if err := os.WriteFile(cfg, []byte(nginxConfig(dir, root, port, os.Geteuid() == 0)), 0o644); err != nil {
				return nil, err
			}
			// -e: the log for before the configuration is read; -p: the
			// prefix relative paths (logs/, the default access log) use.
			return []string{nginxBin, "-e", "stderr", "-p", dir + "/", "-c", cfg, "-g", "daemon off;"}, nil
		},
		ready: func(ctx context.Context, c *http.Client, port int) error {
			resp, _, err := httpGet(ctx, c, port, "/")
			if err != nil {
				return err
			}
			if !strings.HasPrefix(resp.Header.Get("Server"), "nginx") {
				return fmt.Errorf("GET /: %s from %q, not nginx", resp.Status, resp.Header.Get("Server"))
			}
			switch resp.StatusCode {
			case http.StatusOK, http.StatusForbidden, http.StatusNotFound:
				return nil
			}
			return fmt.Errorf("GET /: %s", resp.Status)
		},
	}
	p, err := start(ctx, dir, s, log)
	if err != nil {
		return nil, err
	}
	return &Static{URL: "http://127.0.0.1:" + strconv.Itoa(p.port), p: p}, nil
}

// Stop ends nginx, master and workers, and waits for the master to exit.
// The error says whether it had exited on its own before.
func (s *Static) Stop() error { return s.p.Stop() }

// nginxConfig is nginx.conf for serving root on 127.0.0.1:port, with every
// path nginx writes inside dir.
func nginxConfig(dir, root string, port int, asRoot bool) string {
	q := nginxQuote
	var b strings.Builder
	if asRoot {
		b.WriteString("user root root;\n")
	}
	fmt.Fprintf(&b, `worker_processes 2;
worker_rlimit_nofile 16384;
pid %s;
error_log stderr warn;

events {
	worker_connections 4096;
}

http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	server_tokens on;
	keepalive_requests 10000;
	default_type application/octet-stream;
	types {
		application/json json;
		text/plain txt;
	}
	client_body_temp_path %s;
	proxy_temp_path %s;
	fastcgi_temp_path %s;
	uwsgi_temp_path %s;
	scgi_temp_path %s;

	server {
		listen 127.0.0.1:%d;
		server_name localhost;
		root %s;
		location / {
			limit_except GET {
				deny all;
			}
		}
	}
}
`, q(filepath.Join(dir, "nginx.pid")),
		q(filepath.Join(dir, "tmp", "body")), q(filepath.Join(dir, "tmp", "proxy")),
		q(filepath.Join(dir, "tmp", "fastcgi")), q(filepath.Join(dir, "tmp", "uwsgi")),
		q(filepath.Join(dir, "tmp", "scgi")), port, q(root))
	return b.String()
}

// nginxQuote quotes s for nginx.conf.
func nginxQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
