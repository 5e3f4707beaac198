package doctor

import (
	"github.com/aegisbpf/aegisbpf/agent/slot"

	"strings"
	"testing"
)

func TestBPFFS(t *testing.T) {
	for _, c := range []struct {
		name, mounts string
		want         Status
		contains     []string
	}{
		{"mounted", goodMounts, OK, []string{"mounted at /sys/fs/bpf"}},
		{"not mounted", "/dev/vda / ext4 rw 0 0\n", Fail, []string{"no bpf file system mounted at /sys/fs/bpf", "mount -t bpf bpf /sys/fs/bpf"}},
		{"elsewhere", "/dev/vda / ext4 rw 0 0\nbpf /run/bpf bpf rw 0 0\n", Fail, []string{"(mounted at /run/bpf)"}},
		{"covered", goodMounts + "tmpfs /sys/fs/bpf tmpfs rw 0 0\n", Fail, []string{"is a tmpfs file system, not bpf"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeHost(t)
			f.write("/proc/mounts", c.mounts, 0o444)
			expect(t, f.check("bpffs"), c.want, c.contains...)
		})
	}
	t.Run("no mount table", func(t *testing.T) {
		f := newFakeHost(t)
		f.remove("/proc/mounts")
		expect(t, f.check("bpffs"), Fail, "reading the mount table")
	})
}

func TestCgroup2(t *testing.T) {
	hybrid := `/dev/vda / ext4 rw 0 0
tmpfs /sys/fs/cgroup tmpfs rw,mode=755 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0
`
	legacy := `/dev/vda / ext4 rw 0 0
tmpfs /sys/fs/cgroup tmpfs rw,mode=755 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0
`
	for _, c := range []struct {
		name, mounts string
		want         Status
		contains     []string
	}{
		{"unified", goodMounts, OK, []string{"unified hierarchy"}},
		{"hybrid", hybrid, Fail, []string{"hybrid hierarchy", "/sys/fs/cgroup/unified", "systemd.unified_cgroup_hierarchy=0"}},
		{"v1 only", legacy, Fail, []string{"no cgroup v2 mount"}},
		{"nothing", "/dev/vda / ext4 rw 0 0\n", Fail, []string{"nothing is mounted at /sys/fs/cgroup", "mount -t cgroup2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeHost(t)
			f.write("/proc/mounts", c.mounts, 0o444)
			expect(t, f.check("cgroup2"), c.want, c.contains...)
		})
	}
}

func TestMountTable(t *testing.T) {
	ms := []mount{
		{point: "/", options: []string{"ro"}},
		{point: "/usr", options: []string{"rw"}},
		{point: "/usr/lib/x", options: []string{"ro"}},
		{point: "/usr", options: []string{"ro"}},
	}
	for _, c := range []struct {
		path, point string
		ro          bool
	}{
		{"/usr/lib/aegisbpf/keys", "/usr", true}, // the later mount on /usr covers the first
		{"/usr/lib/xy", "/usr", true},
		{"/usr/lib/x/keys", "/usr/lib/x", true},
		{"/etc", "/", true},
	} {
		m, ro := readOnly(ms, c.path)
		if m.point != c.point || ro != c.ro {
			t.Errorf("readOnly(%s) = %s %v, want %s %v", c.path, m.point, ro, c.point, c.ro)
		}
	}
	if got := slot.UnescapeMount(`/mnt/with\040space\\`); got != `/mnt/with space\\` {
		t.Errorf("unescapeMount = %q", got)
	}
	if !strings.Contains(slot.UnescapeMount(`/a\011b`), "\t") {
		t.Error("unescapeMount did not decode a tab")
	}
}
