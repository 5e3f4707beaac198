package update

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/image/layer/layertest"
	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// fixture is a published static tree with real layers, served over HTTP.
type fixture struct {
	dir    string // the tree
	layers map[string]string
	key    ed25519.PrivateKey
	ring   keys.Ring
	srv    *httptest.Server
	now    time.Time
	ch     *Channel
	hosts  []*Updater
}

var (
	layersOnce sync.Once
	layersDir  string
	layersErr  error
)

// buildLayers builds versions 1.0.0 (serial 1) and 1.1.0 (serial 2) once
// per test binary.
func buildLayers(t *testing.T) map[string]string {
	t.Helper()
	layersOnce.Do(func() {
		layersDir, layersErr = osMkdirTemp()
		if layersErr != nil {
			return
		}
		for i, v := range []string{"1.0.0", "1.1.0"} {
			if _, _, layersErr = layertest.Build(context.Background(), filepath.Join(layersDir, v), layertest.Config{Version: v, Serial: uint64(i + 1), AgentSize: 64 << 10}); layersErr != nil {
				return
			}
		}
	})
	if layersErr != nil {
		t.Fatalf("building test layers: %v", layersErr)
	}
	return map[string]string{"1.0.0": filepath.Join(layersDir, "1.0.0", "layer"), "1.1.0": filepath.Join(layersDir, "1.1.0", "layer")}
}

// newFixture publishes 1.1.0 with waves 5%, 25%, 100% (the first open) to
// a static tree served by a test HTTP server.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), layers: buildLayers(t), now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	pub, priv := layertest.Key(layertest.DefaultSeed)
	f.key, f.ring = priv, keys.Ring{keys.ID(pub): pub}
	r, src, err := NewRelease(f.layers["1.1.0"], f.ring, []float64{0.05, 0.25, 1}, f.now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f.ch = &Channel{FormatVersion: ChannelFormat, Name: "stable", Serial: 1, Issued: f.now.Add(-time.Hour), Expires: f.now.Add(24 * time.Hour), Releases: []Release{*r}}
	if err := Publish(t.Context(), f.ch, f.key, Outputs{Dir: f.dir}, map[string]string{"1.1.0": src}); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(http.FileServer(http.Dir(f.dir)))
	t.Cleanup(f.srv.Close)
	return f
}

// republish signs the next edition after edit changed it.
func (f *fixture) republish(t *testing.T, edit func(c *Channel)) {
	t.Helper()
	edit(f.ch)
	f.ch.Serial++
	if err := Publish(t.Context(), f.ch, f.key, Outputs{Dir: f.dir}, nil); err != nil {
		t.Fatal(err)
	}
}

// fakeHost records activations and answers with a fixed verdict.
type fakeHost struct {
	installed Installed
	verdict   Outcome
	activated []string
}

func (h *fakeHost) Installed(context.Context) (Installed, error) { return h.installed, nil }

func (h *fakeHost) Activate(_ context.Context, dir string, r *Release) (Outcome, error) {
	h.activated = append(h.activated, r.Version)
	if h.verdict.Kept {
		h.installed.Version, h.installed.Serial = r.Version, r.Serial
	} else {
		h.installed.Bad = append(h.installed.Bad, r.Version)
	}
	return h.verdict, nil
}

// machineIn returns a machine id whose position for version is below
// (in) or at least (out) fraction.
func machineIn(t *testing.T, version string, fraction float64, in bool) string {
	t.Helper()
	for i := range 100000 {
		id := hex32(uint64(i))
		if (Position(id, version) < fraction) == in {
			return id
		}
	}
	t.Fatal("no machine id found")
	return ""
}

func hex32(i uint64) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 32)
	for j := range b {
		b[31-j] = digits[i&15]
		i >>= 4
	}
	return string(b)
}

// updater returns an updater of a fresh host running 1.0.0.
func (f *fixture) updater(t *testing.T, machine string) (*Updater, *fakeHost) {
	t.Helper()
	src, err := NewSource(f.srv.URL+"/channel.json", f.srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHost{installed: Installed{Version: "1.0.0", Serial: 1, Floor: 1}, verdict: Outcome{Kept: true, Detail: "probation passed"}}
	return &Updater{Dir: t.TempDir(), Source: src, Ring: f.ring, MachineID: machine, Host: h, Now: func() time.Time { return f.now }}, h
}

func osMkdirTemp() (string, error) { return os.MkdirTemp("", "aegisbpf-update-test-") }

func TestMain(m *testing.M) {
	code := m.Run()
	if layersDir != "" {
		os.RemoveAll(layersDir)
	}
	os.Exit(code)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustState(t *testing.T, dir string) *State {
	t.Helper()
	s, err := LoadState(dir)
	must(t, err)
	return s
}

func flip(t *testing.T, p string, off int64) {
	t.Helper()
	data, err := os.ReadFile(p)
	must(t, err)
	data[off] ^= 0x20
	must(t, os.WriteFile(p, data, 0o644))
}

func testKey(seed string) (ed25519.PublicKey, ed25519.PrivateKey) { return layertest.Key(seed) }

func readTree(t *testing.T, dir string) ([]byte, []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ChannelFile))
	must(t, err)
	sig, err := os.ReadFile(filepath.Join(dir, ChannelSignatureFile))
	must(t, err)
	return data, sig
}

func writeTree(t *testing.T, dir string, data, sig []byte) {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(dir, ChannelFile), data, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, ChannelSignatureFile), sig, 0o644))
}

// applyAll runs a check on every host of the fixture, so they remember
// the current edition.
func (f *fixture) applyAll(t *testing.T) {
	t.Helper()
	for _, u := range f.hosts {
		if _, err := u.Check(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}
