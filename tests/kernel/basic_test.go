package kernel

import (
	"log/slog"

	"github.com/cilium/ebpf/btf"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/engine"
)

// TestDenyExactFile: an exact file rule denies opening that file with EPERM
// while its sibling opens; releasing the instance restores access.
func TestDenyExactFile(t *testing.T) {
	e, dir := setup(t)
	secret, public := filepath.Join(dir, "secret"), filepath.Join(dir, "public")
	writeFile(t, secret, "s")
	writeFile(t, public, "p")

	inst := apply(t, e, true, engine.FileRule{ID: "secret", Path: secret, Access: engine.AccessRead})
	wantDenied(t, "open secret", openErr(secret))
	wantAllowed(t, "open public", openErr(public))

	if err := e.Release(inst.ID); err != nil {
		t.Fatal(err)
	}
	inst.Close()
	wantAllowed(t, "open secret after release", openErr(secret))
}

// TestLoadTime reports how long loading and attaching an instance takes in
// this guest (TCG inflates it; see docs/PERFORMANCE.md for the factor).
func TestLoadTime(t *testing.T) {
	e, dir := setup(t)
	e.Log = slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))
	writeFile(t, filepath.Join(dir, "f"), "x")
	tb := time.Now()
	if _, err := btf.LoadKernelSpec(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel BTF parse: %s", time.Since(tb))
	start := time.Now()
	apply(t, e, true, engine.FileRule{ID: "f", Path: filepath.Join(dir, "f"), Access: engine.AccessRead})
	t.Logf("resolve+load+attach: %s", time.Since(start))
}
