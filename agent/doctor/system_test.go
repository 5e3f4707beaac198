package doctor

import "testing"

func TestSystemd(t *testing.T) {
	for _, c := range []struct {
		name     string
		lib      string // "": none
		pid1     string
		want     Status
		contains []string
	}{
		{"252", "/usr/lib/systemd/libsystemd-shared-252.so", "systemd", OK, []string{"systemd 252"}},
		{"257 in a triplet directory", "/usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-257.so", "systemd", OK, []string{"systemd 257"}},
		{"fedora naming", "/usr/lib64/systemd/libsystemd-shared-256.11-1.fc41.so", "systemd", OK, []string{"systemd 256"}},
		{"249", "/usr/lib/systemd/libsystemd-shared-249.so", "systemd", Fail, []string{"older than 252", "upgrade"}},
		{"unknown version", "", "systemd", Warn, []string{"cannot tell the systemd version", "systemctl --version"}},
		{"not PID 1", "/usr/lib/systemd/libsystemd-shared-252.so", "bash", Fail, []string{`PID 1 is "bash"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeHost(t)
			f.remove("/usr/lib/systemd")
			if c.lib != "" {
				f.write(c.lib, "", 0o644)
			}
			f.write("/proc/1/comm", c.pid1+"\n", 0o444)
			expect(t, f.check("systemd"), c.want, c.contains...)
		})
	}
}

func TestSysext(t *testing.T) {
	expect(t, newFakeHost(t).check("sysext"), OK, "/usr/bin/systemd-sysext present")
	f := newFakeHost(t)
	f.remove("/usr/bin/systemd-sysext")
	expect(t, f.check("sysext"), Fail, "systemd-sysext not found")
	f.write("/usr/bin/systemd-sysext", "", 0o644) // not executable
	expect(t, f.check("sysext"), Fail, "systemd-sysext not found")
}

const modulesDir = "/usr/lib/modules/" + goodRelease

func TestDMVerity(t *testing.T) {
	for _, c := range []struct {
		name     string
		setup    func(f *fakeHost)
		want     Status
		contains []string
	}{
		{"loaded", func(f *fakeHost) {}, OK, []string{"module dm_verity loaded", "/usr/sbin/veritysetup present"}},
		{"built in, in sysfs", func(f *fakeHost) {
			f.remove("/sys/module/dm_verity/initstate")
			f.write("/sys/module/dm_verity/parameters/prefetch_cluster", "0\n", 0o444)
		}, OK, []string{"dm_verity built in"}},
		{"built in, in modules.builtin", func(f *fakeHost) {
			f.remove("/sys/module/dm_verity")
			f.write(modulesDir+"/modules.builtin", "kernel/drivers/md/dm-mod.ko\nkernel/drivers/md/dm-verity.ko\n", 0o644)
		}, OK, []string{"dm_verity built in"}},
		{"module not loaded", func(f *fakeHost) {
			f.remove("/sys/module/dm_verity")
			f.write("/lib/modules/"+goodRelease+"/modules.dep",
				"kernel/drivers/md/dm-verity.ko.xz: kernel/drivers/md/dm-bufio.ko.xz\nkernel/fs/erofs/erofs.ko.xz:\n", 0o644)
		}, Warn, []string{"available but not loaded", "module_load", "echo dm_verity > /etc/modules-load.d/aegisbpf.conf"}},
		{"no module", func(f *fakeHost) {
			f.remove("/sys/module/dm_verity")
			f.write(modulesDir+"/modules.dep", "kernel/drivers/md/dm-mod.ko.xz:\n", 0o644)
		}, Fail, []string{"no dm_verity module", "CONFIG_DM_VERITY"}},
		{"no veritysetup", func(f *fakeHost) { f.remove("/usr/sbin/veritysetup") }, Fail,
			[]string{"veritysetup not found", "apt-get install cryptsetup-bin"}},
		{"neither", func(f *fakeHost) {
			f.remove("/usr/sbin/veritysetup")
			f.remove("/sys/module/dm_verity")
		}, Fail, []string{"no dm_verity module; veritysetup not found", "CONFIG_DM_VERITY (Debian's have it as a module); apt-get"}},
		{"veritysetup in /sbin", func(f *fakeHost) {
			f.remove("/usr/sbin/veritysetup")
			f.write("/sbin/veritysetup", "", 0o755)
		}, OK, []string{"/sbin/veritysetup present"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeHost(t)
			c.setup(f)
			expect(t, f.check("dm-verity"), c.want, c.contains...)
		})
	}
}

func TestErofs(t *testing.T) {
	for _, c := range []struct {
		name     string
		setup    func(f *fakeHost)
		want     Status
		contains []string
	}{
		{"registered", func(f *fakeHost) {}, OK, []string{"/proc/filesystems"}},
		{"module not loaded", func(f *fakeHost) {
			f.write("/proc/filesystems", "nodev\tsysfs\n\text4\n", 0o444)
			f.write(modulesDir+"/modules.dep", "kernel/fs/erofs/erofs.ko.zst: kernel/lib/libcrc32c.ko.zst\n", 0o644)
		}, Warn, []string{"module erofs is available but not loaded", "echo erofs >"}},
		{"missing", func(f *fakeHost) {
			f.write("/proc/filesystems", "nodev\tsysfs\n\text4\n", 0o444)
		}, Fail, []string{"no erofs", "CONFIG_EROFS_FS"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeHost(t)
			c.setup(f)
			expect(t, f.check("erofs"), c.want, c.contains...)
		})
	}
}
