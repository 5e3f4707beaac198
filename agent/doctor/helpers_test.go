package doctor

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/policy/keys"
	"github.com/aegisbpf/aegisbpf/policy/sign"
)

// now is the fake hosts' clock.
var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// fakeHost is a host tree under a temporary directory.
type fakeHost struct {
	t    *testing.T
	root string
	priv ed25519.PrivateKey
	free uint64
	h    Host
}

// write creates the host file p with content and mode.
func (f *fakeHost) write(p, content string, mode os.FileMode) {
	f.t.Helper()
	full := filepath.Join(f.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		f.t.Fatal(err)
	}
	os.Remove(full) // a read-only file is replaced, not rewritten
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Chmod(full, mode); err != nil { // past the umask
		f.t.Fatal(err)
	}
}

// remove deletes the host path p and everything below it.
func (f *fakeHost) remove(p string) {
	f.t.Helper()
	if err := os.RemoveAll(filepath.Join(f.root, p)); err != nil {
		f.t.Fatal(err)
	}
}

// sized creates the host file p with an apparent size of n bytes (sparse).
func (f *fakeHost) sized(p string, n int64) {
	f.t.Helper()
	f.write(p, "", 0o644)
	if err := os.Truncate(filepath.Join(f.root, p), n); err != nil {
		f.t.Fatal(err)
	}
}

const (
	goodRelease = "6.12.0-26-amd64"
	goodLSM     = "lockdown,capability,landlock,bpf"
	goodMounts  = `/dev/vda / erofs ro,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
bpf /sys/fs/bpf bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0
/dev/vdb /var ext4 rw,relatime 0 0
`
	enforcePolicy = `version = 1
mode = "enforce"
serial = 3

[[file]]
id = "protect-shadow"
paths = ["/etc/shadow"]
`
)

// newFakeHost returns a host on which every check passes: the appliance
// as it boots, with a signed policy.
func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	f := &fakeHost{t: t, root: t.TempDir(), free: 1 << 30}
	f.write("/proc/sys/kernel/osrelease", goodRelease+"\n", 0o444)
	f.write("/proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/vda ro lsm="+goodLSM+" console=ttyS0\n", 0o444)
	f.write("/proc/mounts", goodMounts, 0o444)
	f.write("/proc/1/comm", "systemd\n", 0o444)
	f.write("/proc/filesystems", "nodev\tsysfs\nnodev\tbpf\n\text4\n\terofs\n", 0o444)
	f.write("/sys/kernel/btf/vmlinux", "\x9f\xeb\x01\x00 BTF", 0o444)
	f.write("/sys/kernel/security/lsm", goodLSM, 0o444)
	f.write("/sys/module/dm_verity/initstate", "live\n", 0o444)
	f.write("/usr/lib/systemd/libsystemd-shared-252.so", "", 0o644)
	f.write("/usr/bin/systemd-sysext", "#!/bin/true\n", 0o755)
	f.write("/usr/sbin/veritysetup", "#!/bin/true\n", 0o755)

	pub, priv, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	f.priv = priv
	pem, err := keys.MarshalPublic(pub)
	if err != nil {
		t.Fatal(err)
	}
	f.write("/usr/lib/aegisbpf/keys/build.pub", string(pem), 0o644)
	f.policy(enforcePolicy, 3, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0))

	f.h = Host{
		Root:         f.root,
		Now:          func() time.Time { return now },
		BuildTime:    now.AddDate(0, -2, 0),
		TrustedUID:   uint32(os.Getuid()),
		FreeBytes:    func(string) (uint64, error) { return f.free, nil },
		ProbeRingBuf: func() error { return nil },
	}
	return f
}

// policy installs src and its signature by the trusted key.
func (f *fakeHost) policy(src string, serial uint64, notBefore, notAfter time.Time) {
	f.t.Helper()
	sig, err := sign.Sign(f.priv, []byte(src), serial, notBefore, notAfter)
	if err != nil {
		f.t.Fatal(err)
	}
	f.write("/usr/share/aegisbpf/policy.toml", src, 0o644)
	f.write("/usr/share/aegisbpf/policy.toml.sig", string(sig), 0o644)
}

// check runs the named check on the fake host.
func (f *fakeHost) check(name string) Result {
	f.t.Helper()
	for _, r := range f.h.Run() {
		if r.Name == name {
			return r
		}
	}
	f.t.Fatalf("no check %q", name)
	return Result{}
}

// expect fails the test unless r has status want and its detail and fix
// hold every string of contains (matched against "detail | fix").
func expect(t *testing.T, r Result, want Status, contains ...string) {
	t.Helper()
	text := r.Detail + " | " + r.Fix
	if r.Status != want {
		t.Errorf("%s: status %s, want %s: %s", r.Name, r.Status, want, text)
	}
	for _, c := range contains {
		if !strings.Contains(text, c) {
			t.Errorf("%s: %q does not contain %q", r.Name, text, c)
		}
	}
	if r.Status != OK && r.Fix == "" {
		t.Errorf("%s: %s without a fix: %s", r.Name, r.Status, r.Detail)
	}
}
