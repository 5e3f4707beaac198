package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/image/appliance"
)

func TestApplianceBoots(t *testing.T) {
	RequireE2E(t)
	// Units that may fail in the bare appliance without failing the test,
	// each with the reason. Empty: the appliance boots to "running".
	degradedAllowed := map[string]string{}
	t0 := time.Now()
	a := BuildT(t, appliance.Config{})
	t.Logf("appliance built in %s: kernel %s, cmdline %q", time.Since(t0).Round(time.Millisecond), a.KernelRelease, a.Cmdline)

	t1 := time.Now()
	vm := StartT(t, a, Config{})
	boot := vm.Boot()
	t.Logf("guest agent answered %s after qemu started (guest uptime %s)", boot.Ready.Round(time.Millisecond), boot.Uptime.Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	state, err := vm.WaitSystem(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("system %s %s after qemu started", state, time.Since(t1).Round(time.Millisecond))
	if out, err := vm.Run(ctx, "systemd-analyze time; systemd-analyze blame --no-pager | head -8"); err == nil {
		t.Logf("systemd-analyze:\n%s", strings.TrimSpace(out))
	}
	switch state {
	case "running":
	case "degraded":
		failed, err := vm.Run(ctx, "systemctl list-units --failed --no-legend --plain | cut -d' ' -f1")
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range strings.Fields(failed) {
			if why, ok := degradedAllowed[u]; ok {
				t.Logf("unit %s failed, allowed: %s", u, why)
				continue
			}
			status, _ := vm.Exec(ctx, "systemctl status --no-pager -l -n 20 "+shellQuote(u))
			t.Errorf("unit %s failed:\n%s", u, status.Stdout)
		}
	}

	checks := []struct {
		name string
		cmd  string
		want []string // substrings of stdout
	}{
		{"bpf is an active LSM", "cat /sys/kernel/security/lsm", []string{"bpf"}},
		{"command line", "cat /proc/cmdline", []string{"lsm=lockdown,capability,landlock,bpf", "console=ttyS0"}},
		{"root is read-only erofs", "findmnt -n -o FSTYPE,OPTIONS /", []string{"erofs", "ro"}},
		{"root refuses writes", "touch /usr/e2e-probe 2>&1; echo rc=$?", []string{"Read-only file system", "rc=1"}},
		{"var is writable ext4", "findmnt -n -o FSTYPE,OPTIONS,SOURCE /var && echo probe >/var/tmp/e2e-probe && cat /var/tmp/e2e-probe",
			[]string{"ext4", "rw", "/dev/vdb", "probe"}},
		{"tmp is tmpfs", "findmnt -n -o FSTYPE /tmp", []string{"tmpfs"}},
		{"systemd-sysext is enabled", "systemctl is-enabled systemd-sysext.service", []string{"enabled"}},
		{"bpffs is mounted", "findmnt -n -o FSTYPE /sys/fs/bpf", []string{"bpf"}},
		{"journal is persistent", "ls -d /var/log/journal/$(cat /etc/machine-id)", []string{"/var/log/journal/"}},
		{"erofs and dm-verity load", "modprobe dm-verity && modprobe loop && grep -E '^(erofs|dm_verity|loop) ' /proc/modules | cut -d' ' -f1 | sort | tr '\\n' ' '",
			[]string{"dm_verity", "erofs", "loop"}},
		{"veritysetup is there", "veritysetup --version", []string{"veritysetup"}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			out, err := vm.Run(ctx, c.cmd)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s: output %q lacks %q", c.cmd, strings.TrimSpace(out), w)
				}
			}
		})
	}

	t.Run("journal read-back", func(t *testing.T) {
		if _, err := vm.Run(ctx, "echo 'hello from e2e' | systemd-cat -t e2e-probe"); err != nil {
			t.Fatal(err)
		}
		var found bool
		for try := 0; try < 20 && !found; try++ {
			entries, err := vm.Journal(ctx, "-b", "-t", "e2e-probe")
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				found = found || e.Message() == "hello from e2e"
			}
			if !found {
				time.Sleep(250 * time.Millisecond)
			}
		}
		if !found {
			t.Error("the journal has no e2e-probe entry")
		}
	})

	t.Run("file copy", func(t *testing.T) {
		data := []byte("line one\n\x00binary\xff\n")
		if err := vm.WriteFile(ctx, "/run/e2e-copy", data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := vm.ReadFile(ctx, "/run/e2e-copy")
		if err != nil || string(got) != string(data) {
			t.Fatalf("ReadFile = %q, %v; want %q", got, err, data)
		}
		mode, _ := vm.Run(ctx, "stat -c %a /run/e2e-copy")
		if strings.TrimSpace(mode) != "600" {
			t.Errorf("mode %s, want 600", mode)
		}
	})

	t2 := time.Now()
	if err := vm.Poweroff(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("powered off in %s", time.Since(t2).Round(time.Millisecond))
}

func TestSysextMergeFromRun(t *testing.T) {
	RequireE2E(t)
	a := BuildT(t, appliance.Config{})
	vm := StartT(t, a, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if _, err := vm.WaitSystem(ctx); err != nil {
		t.Fatal(err)
	}

	ext := "/run/extensions/test"
	setup := strings.Join([]string{
		"mkdir -p " + ext + "/usr/lib/extension-release.d " + ext + "/usr/share/test",
		"echo ID=_any >" + ext + "/usr/lib/extension-release.d/extension-release.test",
		"echo hello >" + ext + "/usr/share/test/hello",
	}, " && ")
	steps := []struct {
		name, cmd string
		want      string // in stdout
	}{
		{"create the extension", setup, ""},
		{"nothing merged yet", "test -e /usr/share/test/hello && echo present || echo absent", "absent"},
		{"refresh merges it", "systemd-sysext refresh && systemd-sysext status --no-pager", "test"},
		{"its file is visible", "cat /usr/share/test/hello", "hello"},
		{"/usr is an overlay", "findmnt -n -o FSTYPE /usr", "overlay"},
		{"unmerge removes it", "systemd-sysext unmerge && (test -e /usr/share/test/hello && echo present || echo absent)", "absent"},
	}
	for _, s := range steps {
		out, err := vm.Run(ctx, s.cmd)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if !strings.Contains(out, s.want) {
			t.Fatalf("%s: %q: output %q lacks %q", s.name, s.cmd, strings.TrimSpace(out), s.want)
		}
	}
	if err := vm.Poweroff(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestResetAndReboot checks the driver's power-loss and reboot paths: a
// file synced to /var survives a QMP reset, the next boot gets a new boot
// id and can read the previous boot's journal, and a clean reboot comes
// back too.
func TestResetAndReboot(t *testing.T) {
	RequireE2E(t)
	a := BuildT(t, appliance.Config{})
	vm := StartT(t, a, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	first := vm.Boot()
	// Until the journal is flushed to /var, entries live in /run and die
	// with the power.
	if _, err := vm.WaitSystem(ctx); err != nil {
		t.Fatal(err)
	}
	// systemd-cat hands the line to journald over a stream socket, and
	// journald may serve the --sync request before it reads that socket:
	// wait until the entry is in the journal, then sync it to disk.
	if _, err := vm.Run(ctx, "echo survived >/var/tmp/e2e-reset && sync && echo 'before reset' | systemd-cat -t e2e-reset && "+
		"for i in $(seq 100); do journalctl -b -t e2e-reset -q -o cat | grep -q 'before reset' && break; sleep 0.1; done && journalctl --sync"); err != nil {
		t.Fatal(err)
	}
	// A command in flight when the power goes must fail at once, not at
	// its deadline.
	inflight := make(chan error, 1)
	go func() {
		_, err := vm.Exec(ctx, "sleep 600")
		inflight <- err
	}()
	time.Sleep(time.Second)
	if err := vm.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-inflight:
		if err == nil || !strings.Contains(err.Error(), ErrGuestGone.Error()) {
			t.Errorf("in-flight command after reset: err = %v, want ErrGuestGone", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("a command in flight at the reset did not fail within 10s")
	}
	second, err := vm.WaitNextBoot(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reset: next boot answered %s after the reset", second.Ready.Round(time.Millisecond))
	if second.ID == first.ID {
		t.Fatalf("boot id unchanged across the reset")
	}
	if got, err := vm.Run(ctx, "cat /var/tmp/e2e-reset"); err != nil || strings.TrimSpace(got) != "survived" {
		t.Errorf("after reset: /var/tmp/e2e-reset = %q, %v", got, err)
	}
	entries, err := vm.Journal(ctx, "-b", "-1", "-t", "e2e-reset")
	if err != nil || len(entries) == 0 {
		t.Errorf("the previous boot's journal: %d entries, %v", len(entries), err)
	}

	third, err := vm.Reboot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reboot: next boot answered %s after the reset", third.Ready.Round(time.Millisecond))
	if _, err := vm.WaitSystem(ctx); err != nil {
		t.Fatal(err)
	}
	if vm.Resets() != 2 {
		t.Errorf("Resets() = %d, want 2", vm.Resets())
	}
	if err := vm.Poweroff(ctx); err != nil {
		t.Fatal(err)
	}
}
