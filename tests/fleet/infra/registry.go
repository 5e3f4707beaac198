package infra

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
)

// registryBin is Debian's docker-registry: distribution 2.8.
const registryBin = "/usr/bin/docker-registry"

// Registry is a CNCF distribution registry (Debian's docker-registry) on
// loopback, storing in a temp dir. Its methods are safe for concurrent use.
type Registry struct {
	Addr string // "127.0.0.1:PORT", what an image reference names
	p    *proc
}

// StartRegistry writes a configuration into dir (created if missing), with
// the blobs under dir/data, starts docker-registry on a free loopback port
// with its output to log, and returns once GET /v2/ answers 200. The
// registry takes no authentication, logs warnings and errors only (no
// access log), and allows deletes.
func StartRegistry(ctx context.Context, dir string, log io.Writer) (*Registry, error) {
	dir, err := absDir(dir)
	if err != nil {
		return nil, err
	}
	s := server{
		name: "registry",
		launch: func(port int) ([]string, error) {
			cfg := filepath.Join(dir, "config.yml")
			data, err := registryConfig(filepath.Join(dir, "data"), port)
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(cfg, data, 0o644); err != nil {
				return nil, err
			}
			return []string{registryBin, "serve", cfg}, nil
		},
		ready: func(ctx context.Context, c *http.Client, port int) error {
			resp, _, err := httpGet(ctx, c, port, "/v2/")
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-Api-Version") != "registry/2.0" {
				return fmt.Errorf("GET /v2/: %s, API version %q", resp.Status, resp.Header.Get("Docker-Distribution-Api-Version"))
			}
			return nil
		},
	}
	p, err := start(ctx, dir, s, log)
	if err != nil {
		return nil, err
	}
	return &Registry{Addr: "127.0.0.1:" + strconv.Itoa(p.port), p: p}, nil
}

// Stop kills the registry and waits for it to exit. Its storage stays in
// dir. The error says whether it had exited on its own before.
func (r *Registry) Stop() error { return r.p.Stop() }

// registryConfig is the registry's configuration, as JSON, which its YAML
// parser reads as well. The storage driver's health check is off (it
// would only stat the root every 10 s) and redirects are disabled (the
// filesystem driver has none, but a client must never be sent elsewhere).
func registryConfig(root string, port int) ([]byte, error) {
	secret := make([]byte, 16)
	rand.Read(secret)
	type m = map[string]any
	cfg := m{
		"version": "0.1",
		"log": m{
			"level":     "warn",
			"formatter": "text",
			"accesslog": m{"disabled": true},
		},
		"storage": m{
			"filesystem":  m{"rootdirectory": root},
			"cache":       m{"blobdescriptor": "inmemory"},
			"delete":      m{"enabled": true},
			"redirect":    m{"disable": true},
			"maintenance": m{"uploadpurging": m{"enabled": false}},
		},
		"http": m{
			"addr":    "127.0.0.1:" + strconv.Itoa(port),
			"secret":  fmt.Sprintf("%x", secret), // else a warning that it made one up
			"headers": m{"X-Content-Type-Options": []string{"nosniff"}},
		},
		"health": m{"storagedriver": m{"enabled": false}},
	}
	return json.MarshalIndent(cfg, "", "  ")
}
