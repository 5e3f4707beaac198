package doctor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/policy/keys"
)

func TestTrustedKeys(t *testing.T) {
	for _, c := range []struct {
		name     string
		setup    func(f *fakeHost)
		want     Status
		contains []string
	}{
		{"read-only base OS", func(f *fakeHost) {}, OK, []string{"1 key(s) in /usr/lib/aegisbpf/keys", "read-only file system"}},
		{"writable file system", func(f *fakeHost) {
			f.write("/proc/mounts", strings.Replace(goodMounts, "erofs ro,", "ext4 rw,", 1), 0o444)
		}, Warn, []string{"ext4 is mounted read-write at /", "read-only base OS"}},
		{"own /usr mount", func(f *fakeHost) {
			f.write("/proc/mounts", goodMounts+"/dev/vdc /usr ext4 ro 0 0\n", 0o444)
		}, OK, nil},
		{"no directory", func(f *fakeHost) { f.remove("/usr/lib/aegisbpf/keys") }, Fail,
			[]string{"no trusted key directory", "install the build host's public keys"}},
		{"no keys", func(f *fakeHost) { f.remove("/usr/lib/aegisbpf/keys/build.pub") }, Fail,
			[]string{"no trusted keys (*.pub)"}},
		{"bad key", func(f *fakeHost) { f.write("/usr/lib/aegisbpf/keys/junk.pub", "not a key", 0o644) }, Fail,
			[]string{"junk.pub"}},
		{"group-writable key", func(f *fakeHost) { f.write("/usr/lib/aegisbpf/keys/build.pub", "x", 0o664) }, Fail,
			[]string{"/usr/lib/aegisbpf/keys/build.pub is mode 0664 is writable by group or others", "chmod go-w"}},
		{"world-writable parent", func(f *fakeHost) {
			if err := os.Chmod(filepath.Join(f.root, "/usr/lib/aegisbpf"), 0o777); err != nil {
				t.Fatal(err)
			}
		}, Fail, []string{"/usr/lib/aegisbpf is mode 0777"}},
		{"not root's", func(f *fakeHost) { f.h.TrustedUID = uint32(os.Getuid()) + 1 }, Fail,
			[]string{"/usr/lib/aegisbpf/keys is owned by uid", "chown root:root"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeHost(t)
			c.setup(f)
			expect(t, f.check("trusted-keys"), c.want, c.contains...)
		})
	}
}

func TestPolicy(t *testing.T) {
	audit := strings.Replace(enforcePolicy, `mode = "enforce"`, `mode = "audit"`, 1)
	for _, c := range []struct {
		name     string
		setup    func(f *fakeHost)
		want     Status
		contains []string
	}{
		{"signed", func(f *fakeHost) {}, OK, []string{"serial 3, mode enforce, 1 rule(s), signed by key", "valid until 2027-06-01"}},
		{"missing", func(f *fakeHost) { f.remove("/usr/share/aegisbpf") }, Fail,
			[]string{"no installed policy", "aegisbpf slot activate"}},
		{"unsigned, enforcing", func(f *fakeHost) { f.remove("/usr/share/aegisbpf/policy.toml.sig") }, Fail,
			[]string{"the agent would refuse", "must be signed", "aegisbpf policy sign --key KEY /usr/share/aegisbpf/policy.toml"}},
		{"unsigned, audit only", func(f *fakeHost) {
			f.policy(audit, 3, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0))
			f.remove("/usr/share/aegisbpf/policy.toml.sig")
		}, Warn, []string{"not signed", "sign it before any rule enforces"}},
		{"changed after signing", func(f *fakeHost) {
			f.write("/usr/share/aegisbpf/policy.toml", strings.Replace(enforcePolicy, "shadow", "gshadow", 2), 0o644)
		}, Fail, []string{"the agent would refuse", "aegisbpf policy verify --keys /usr/lib/aegisbpf/keys"}},
		{"untrusted signer", func(f *fakeHost) {
			_, other, _ := keys.Generate()
			f.priv = other
			f.policy(enforcePolicy, 3, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0))
		}, Fail, []string{"the agent would refuse"}},
		{"no trusted keys", func(f *fakeHost) { f.remove("/usr/lib/aegisbpf/keys") }, Fail,
			[]string{"the agent would refuse", "(trusted keys: reading trusted keys"}},
		{"invalid", func(f *fakeHost) {
			f.policy(strings.Replace(enforcePolicy, "paths", "pathz", 1), 3, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0))
		}, Fail, []string{"is invalid", `unknown key "pathz"`}},
		{"expired", func(f *fakeHost) {
			f.policy(enforcePolicy, 3, now.AddDate(-1, 0, 0), now.AddDate(0, 0, -1))
		}, Fail, []string{"the agent would refuse"}},
		{"expires soon", func(f *fakeHost) {
			f.policy(enforcePolicy, 3, now.AddDate(0, -1, 0), now.Add(10*24*time.Hour))
		}, Warn, []string{"expires on 2026-06-11T12:00:00Z (in 240h0m0s)", "--not-after"}},
		{"serial below the last applied", func(f *fakeHost) { f.write("/run/aegisbpf/policy-serial", "9\n", 0o644) }, Fail,
			[]string{"lower than the last applied serial 9", "aegisbpf slot rollback"}},
		{"serial equal to the last applied", func(f *fakeHost) { f.write("/run/aegisbpf/policy-serial", "3\n", 0o644) }, OK, nil},
		{"unreadable last serial", func(f *fakeHost) { f.write("/run/aegisbpf/policy-serial", "three\n", 0o644) }, Fail,
			[]string{"reading the last applied policy serial"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeHost(t)
			c.setup(f)
			expect(t, f.check("policy"), c.want, c.contains...)
		})
	}
}
