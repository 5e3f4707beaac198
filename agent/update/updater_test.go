package update

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestApplyInWave(t *testing.T) {
	f := newFixture(t)
	u, h := f.updater(t, machineIn(t, "1.1.0", 0.05, true))
	p, err := u.Apply(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p.Target == nil || p.Target.Version != "1.1.0" || len(h.activated) != 1 {
		t.Fatalf("plan %+v, activated %v: want 1.1.0 installed", p, h.activated)
	}
	s := mustState(t, u.Dir)
	if s.LastCheck.Result != ResultInstalled || s.Current != "1.1.0" || s.Releases["1.1.0"].Installs != 1 || s.Channel.Serial != 1 {
		t.Errorf("state after install: %+v", s)
	}
	if _, err := os.Stat(filepath.Join(u.Dir, stagingDir, "1.1.0")); !os.IsNotExist(err) {
		t.Errorf("staging not cleared: %v", err)
	}
	// Up to date afterwards.
	if p, err = u.Apply(t.Context()); err != nil || p.Result != ResultUpToDate || len(h.activated) != 1 {
		t.Errorf("second apply: %v %+v, activated %v", err, p, h.activated)
	}
}

func TestApplyOutsideWave(t *testing.T) {
	f := newFixture(t)
	u, h := f.updater(t, machineIn(t, "1.1.0", 0.05, false))
	p, err := u.Apply(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p.Target != nil || p.Result != ResultWaiting || len(h.activated) != 0 {
		t.Fatalf("plan %+v, activated %v: want waiting", p, h.activated)
	}
	s := mustState(t, u.Dir)
	if s.Available != "1.1.0" || s.WaveOpen || s.Position < 0.05 {
		t.Errorf("state: available %q open %v position %v", s.Available, s.WaveOpen, s.Position)
	}
	if _, err := os.Stat(filepath.Join(u.Dir, stagingDir)); !os.IsNotExist(err) {
		t.Errorf("a host outside the wave downloaded something: %v", err)
	}
	// The next wave (25%) opens: a host between 5% and 25% installs.
	mid := ""
	for i := range 100000 {
		if p := Position(hex32(uint64(i)), "1.1.0"); p >= 0.05 && p < 0.25 {
			mid = hex32(uint64(i))
			break
		}
	}
	u2, h2 := f.updater(t, mid)
	if p, _ := u2.Apply(t.Context()); p.Result != ResultWaiting {
		t.Fatalf("before the second wave: %s", p.Result)
	}
	f.republish(t, func(c *Channel) { t0 := f.now.Add(-time.Minute); c.Releases[0].Waves[1].From = &t0 })
	if _, err := u2.Apply(t.Context()); err != nil || len(h2.activated) != 1 {
		t.Fatalf("after the second wave opened: %v, activated %v", err, h2.activated)
	}
}

func TestHoldAndPin(t *testing.T) {
	f := newFixture(t)
	u, h := f.updater(t, machineIn(t, "1.1.0", 0.05, true))
	must(t, u.Hold(t.Context(), true))
	if p, err := u.Apply(t.Context()); err != nil || p.Result != ResultHeld || len(h.activated) != 0 {
		t.Fatalf("held: %v %+v %v", err, p, h.activated)
	}
	must(t, u.Hold(t.Context(), false))

	// A host outside every open wave, pinned, installs.
	u2, h2 := f.updater(t, machineIn(t, "1.1.0", 0.25, false))
	must(t, u2.Pin(t.Context(), "1.1.0"))
	if p, err := u2.Apply(t.Context()); err != nil || p.Target == nil || len(h2.activated) != 1 {
		t.Fatalf("pinned: %v %+v %v", err, p, h2.activated)
	}
	if p, err := u2.Check(t.Context()); err != nil || p.Result != ResultUpToDate || !strings.Contains(p.Detail, "pinned to 1.1.0, which runs") {
		t.Fatalf("pinned, at the pin: %v %+v", err, p)
	}
	// Pinned to a version the channel lacks: waits, whatever the waves say.
	u3, h3 := f.updater(t, machineIn(t, "1.1.0", 0.05, true))
	must(t, u3.Pin(t.Context(), "9.9.9"))
	if p, err := u3.Apply(t.Context()); err != nil || p.Result != ResultWaiting || len(h3.activated) != 0 {
		t.Fatalf("pinned to a missing version: %v %+v %v", err, p, h3.activated)
	}
	if err := u3.Pin(t.Context(), "Not A Version"); err == nil {
		t.Error("pin accepted a malformed version")
	}
}

func TestRolledBackNotRetried(t *testing.T) {
	f := newFixture(t)
	u, h := f.updater(t, machineIn(t, "1.1.0", 0.05, true))
	h.verdict = Outcome{Detail: "agent failed on probation (result watchdog)"}
	if _, err := u.Apply(t.Context()); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("apply of a failing release: %v", err)
	}
	s := mustState(t, u.Dir)
	if r := s.Releases["1.1.0"]; r == nil || r.Rollbacks != 1 || r.Bad == "" || s.LastCheck.Result != ResultRolledBack {
		t.Fatalf("state: %+v %+v", s.Releases["1.1.0"], s.LastCheck)
	}
	h.verdict = Outcome{Kept: true}
	if p, err := u.Apply(t.Context()); err != nil || p.Result != ResultUpToDate || len(h.activated) != 1 {
		t.Fatalf("the rolled-back release was offered again: %v %+v %v", err, p, h.activated)
	}
}

func TestHalted(t *testing.T) {
	f := newFixture(t)
	f.republish(t, func(c *Channel) { c.Releases[0].Halted = &Halt{Time: f.now, Reason: "rollbacks"} })
	u, h := f.updater(t, machineIn(t, "1.1.0", 0.05, true))
	if p, err := u.Apply(t.Context()); err != nil || p.Result != ResultUpToDate || len(h.activated) != 0 {
		t.Fatalf("halted release: %v %+v %v", err, p, h.activated)
	}
}

// TestChannelRefused: every refusal leaves the host's state as it was but
// for the last check, and installs nothing.
func TestChannelRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, f *fixture)
		result string
	}{
		{"bad signature", func(t *testing.T, f *fixture) { flip(t, filepath.Join(f.dir, ChannelFile), 30) }, ResultSignature},
		{"untrusted key", func(t *testing.T, f *fixture) {
			_, other := testKey("intruder")
			f.key = other
			f.republish(t, func(*Channel) {})
		}, ResultSignature},
		{"expired", func(t *testing.T, f *fixture) {
			f.republish(t, func(c *Channel) { c.Issued, c.Expires = f.now.Add(-48*time.Hour), f.now.Add(-time.Second) })
		}, ResultExpired},
		{"lower serial", func(t *testing.T, f *fixture) {
			old, oldSig := readTree(t, f.dir)
			f.republish(t, func(*Channel) {})
			f.republish(t, func(*Channel) {})
			f.applyAll(t)
			writeTree(t, f.dir, old, oldSig) // serial 1 replayed after 3
		}, ResultReplayed},
		{"same serial, other content", func(t *testing.T, f *fixture) {
			f.applyAll(t)
			f.ch.Serial-- // re-sign serial 1 with another expiry
			f.republish(t, func(c *Channel) { c.Expires = c.Expires.Add(time.Hour) })
		}, ResultReplayed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			u, h := f.updater(t, machineIn(t, "1.1.0", 0.05, true))
			f.hosts = []*Updater{u}
			tc.damage(t, f)
			before := mustState(t, u.Dir)
			activated := len(h.activated)
			_, err := u.Apply(t.Context())
			if err == nil {
				t.Fatal("apply accepted the channel")
			}
			s := mustState(t, u.Dir)
			if s.LastCheck.Result != tc.result {
				t.Errorf("result %q (%s), want %q", s.LastCheck.Result, s.LastCheck.Detail, tc.result)
			}
			if len(h.activated) != activated {
				t.Errorf("activated %v after a refused channel", h.activated)
			}
			if (before.Channel == nil) != (s.Channel == nil) || (s.Channel != nil && *s.Channel != *before.Channel) {
				t.Errorf("the accepted channel changed: %+v → %+v", before.Channel, s.Channel)
			}
			t.Logf("%s: %s", s.LastCheck.Result, s.LastCheck.Detail)
		})
	}
}

func TestDigestMismatch(t *testing.T) {
	f := newFixture(t)
	u, h := f.updater(t, machineIn(t, "1.1.0", 0.05, true))
	erofs := filepath.Join(f.dir, "releases", "1.1.0", "aegisbpf_1.1.0.erofs")
	flip(t, erofs, 5000)
	_, err := u.Apply(t.Context())
	if !errors.Is(err, ErrDigest) {
		t.Fatalf("apply of a tampered file: %v", err)
	}
	s := mustState(t, u.Dir)
	if s.LastCheck.Result != ResultDigest || len(h.activated) != 0 {
		t.Errorf("result %q, activated %v", s.LastCheck.Result, h.activated)
	}
	if _, err := os.Stat(filepath.Join(u.Dir, stagingDir, "1.1.0", "aegisbpf_1.1.0.erofs.part")); !os.IsNotExist(err) {
		t.Errorf("the tampered download was kept: %v", err)
	}
}

func TestNoSpace(t *testing.T) {
	f := newFixture(t)
	u, h := f.updater(t, machineIn(t, "1.1.0", 0.05, true))
	u.Reserve = 1 << 62
	_, err := u.Apply(t.Context())
	if !errors.Is(err, ErrSpace) || len(h.activated) != 0 {
		t.Fatalf("apply with no room: %v, activated %v", err, h.activated)
	}
	entries, _ := os.ReadDir(filepath.Join(u.Dir, stagingDir, "1.1.0"))
	if len(entries) != 0 {
		t.Errorf("downloaded %d files without room", len(entries))
	}
}

// TestResume cuts the first download of the erofs image short; the next
// run asks for the rest with a Range request and installs.
func TestResume(t *testing.T) {
	f := newFixture(t)
	var cut atomic.Bool
	var ranges atomic.Int32
	files := http.FileServer(http.Dir(f.dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			ranges.Add(1)
		}
		if strings.HasSuffix(r.URL.Path, ".erofs") && !cut.Swap(true) {
			data, _ := os.ReadFile(filepath.Join(f.dir, r.URL.Path))
			w.Header().Set("Content-Length", "999999999")
			w.Write(data[:len(data)/2])
			return // the client sees the body end early
		}
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	f.srv = srv
	u, h := f.updater(t, machineIn(t, "1.1.0", 0.05, true))
	if _, err := u.Apply(t.Context()); err == nil || mustState(t, u.Dir).LastCheck.Result != ResultFetch {
		t.Fatalf("first apply: %v, want a fetch failure", err)
	}
	if _, err := u.Apply(t.Context()); err != nil || len(h.activated) != 1 {
		t.Fatalf("second apply: %v, activated %v", err, h.activated)
	}
	if ranges.Load() != 1 {
		t.Errorf("%d range requests, want 1 (the resumed erofs image)", ranges.Load())
	}
}

func TestStateRefusesGarbage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, data, err string }{
		{"not json", "{", "decoding"},
		{"unknown field", `{"format":1,"x":1}`, "unknown field"},
		{"format", `{"format":2}`, "format 2"},
		{"bad version", `{"format":1,"pin":"A B"}`, "version"},
		{"position", `{"format":1,"position":1.5}`, "position"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, os.WriteFile(filepath.Join(dir, stateFile), []byte(tc.data), 0o644))
			if _, err := LoadState(dir); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("LoadState: %v, want %q", err, tc.err)
			}
		})
	}
}

// TestCompletePartFinished: a download complete but not yet renamed (the
// run stopped between the two) is checked and kept, not fetched again
// (a range from its end gets 416 from registries).
func TestCompletePartFinished(t *testing.T) {
	f := newFixture(t)
	u, h := f.updater(t, machineIn(t, "1.1.0", 0.05, true))
	dir := filepath.Join(u.Dir, stagingDir, "1.1.0")
	must(t, os.MkdirAll(dir, 0o700))
	name := "aegisbpf_1.1.0.erofs"
	data, err := os.ReadFile(filepath.Join(f.dir, "releases", "1.1.0", name))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, name+".part"), data, 0o600))
	if _, err := u.Apply(t.Context()); err != nil || len(h.activated) != 1 {
		t.Fatalf("apply: %v, activated %v", err, h.activated)
	}
}

// TestSignatureRetried: a static tree caught between its two writes (a
// signature of another edition) is fetched once more before refusing.
func TestSignatureRetried(t *testing.T) {
	f := newFixture(t)
	_, oldSig := readTree(t, f.dir)
	f.republish(t, func(*Channel) {})
	var served atomic.Int32
	files := http.FileServer(http.Dir(f.dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/"+ChannelSignatureFile && served.Add(1) == 1 {
			w.Write(oldSig)
			return
		}
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	f.srv = srv
	u, h := f.updater(t, machineIn(t, "1.1.0", 0.05, true))
	if _, err := u.Apply(t.Context()); err != nil || len(h.activated) != 1 || served.Load() != 2 {
		t.Fatalf("apply: %v, activated %v, %d signature fetches", err, h.activated, served.Load())
	}
}
