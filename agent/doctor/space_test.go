package doctor

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestSlotSpace(t *testing.T) {
	const mb = 1 << 20
	installTwo := func(f *fakeHost) {
		f.sized("/var/lib/aegisbpf/slots/a/aegisbpf_1.erofs", 90*mb)
		f.sized("/var/lib/aegisbpf/slots/a/aegisbpf_1.verity", 1*mb)
		f.sized("/var/lib/aegisbpf/slots/b/aegisbpf_2.erofs", 99*mb)
		f.sized("/var/lib/aegisbpf/slots/b/aegisbpf_2.verity", 1*mb)
	}
	for _, c := range []struct {
		name     string
		setup    func(f *fakeHost)
		free     uint64
		want     Status
		contains []string
	}{
		{"new host", func(f *fakeHost) {}, 1 << 30, OK, []string{"1.0 GiB free at /var/lib", "assuming a 32.0 MiB layer"}},
		{"new host, little room", func(f *fakeHost) {}, 40 * mb, Warn, []string{"room for one more layer but not two"}},
		{"new host, no room", func(f *fakeHost) {}, 10 * mb, Fail, []string{"less than one layer", "free at least 54.0 MiB"}},
		{"two slots, room", installTwo, 250 * mb, OK, []string{"the largest installed layer, 100.0 MiB", "at /var/lib/aegisbpf"}},
		{"two slots, one layer of room", installTwo, 150 * mb, Warn, []string{"free at least 50.0 MiB on the file system of /var/lib/aegisbpf"}},
		{"two slots, no room", installTwo, 50 * mb, Fail, []string{"the next 'aegisbpf slot install' cannot copy it"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeHost(t)
			f.write("/var/lib/.keep", "", 0o644)
			c.setup(f)
			f.free = c.free
			expect(t, f.check("slot-space"), c.want, c.contains...)
		})
	}
	t.Run("statfs fails", func(t *testing.T) {
		f := newFakeHost(t)
		var asked string
		f.h.FreeBytes = func(p string) (uint64, error) { asked = p; return 0, errors.New("no such device") }
		expect(t, f.check("slot-space"), Fail, "measuring free space for /var/lib/aegisbpf: no such device")
		if asked != f.root { // nothing of /var exists: the host's root is measured
			t.Errorf("statfs of %s, want %s", asked, f.root)
		}
	})
	t.Run("measures the slots directory", func(t *testing.T) {
		f := newFakeHost(t)
		f.write("/var/lib/aegisbpf/state.json", "{}", 0o644)
		var asked string
		f.h.FreeBytes = func(p string) (uint64, error) { asked = p; return 1 << 30, nil }
		f.check("slot-space")
		if want := filepath.Join(f.root, "/var/lib/aegisbpf"); asked != want {
			t.Errorf("statfs of %s, want %s", asked, want)
		}
	})
}

func TestClock(t *testing.T) {
	for _, c := range []struct {
		name     string
		now      time.Time
		build    time.Time
		want     Status
		contains []string
	}{
		{"after the build", now, now.AddDate(0, -2, 0), OK, []string{"2026-06-01T12:00:00Z", "after the build, 2026-04-01"}},
		{"build time unknown", now, time.Time{}, OK, []string{"build time unknown"}},
		{"epoch", time.Unix(0, 0), time.Time{}, Fail, []string{"1970-01-01T00:00:00Z, before 2025", "timedatectl set-ntp true"}},
		{"before the build", now, now.AddDate(0, 1, 0), Fail, []string{"before this agent was built (2026-07-01T12:00:00Z)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeHost(t)
			f.h.Now = func() time.Time { return c.now }
			f.h.BuildTime = c.build
			expect(t, f.check("clock"), c.want, c.contains...)
		})
	}
}
