package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeRecipe writes a valid recipe into a temporary directory, with files
// overridden (or removed, when the value is "-") by edits.
func writeRecipe(t *testing.T, edits map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"suite":              "bookworm\n",
		"packages":           "# base\nsystemd\nlinux-image-cloud-amd64 # kernel\n\nbusybox\n",
		"sources.list":       "deb http://deb.debian.org/debian bookworm main\n",
		"customize.sh":       "#!/bin/sh\ntrue\n",
		"cmdline":            "console=ttyS0 root=/dev/vda ro lsm=lockdown,capability,bpf\n",
		"machine-id":         "0123456789abcdef0123456789abcdef\n",
		"files/etc/hostname": "aegisbpf\n",
		"files/etc/motd":     "hi\n",
	}
	for k, v := range edits {
		if v == "-" {
			delete(files, k)
		} else {
			files[k] = v
		}
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadRecipe(t *testing.T) {
	r, err := LoadRecipe(writeRecipe(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if r.Suite != "bookworm" || strings.Join(r.Packages, ",") != "systemd,linux-image-cloud-amd64,busybox" ||
		r.MachineID != "0123456789abcdef0123456789abcdef" || !strings.Contains(r.Cmdline, "lsm=") {
		t.Errorf("recipe = %+v", r)
	}
}

func TestLoadRecipeRefuses(t *testing.T) {
	tests := []struct {
		name  string
		edits map[string]string
		want  string
	}{
		{"unknown entry", map[string]string{"package": "x\n"}, `unknown entry "package"`},
		{"two suites", map[string]string{"suite": "bookworm\ntrixie\n"}, "exactly one line"},
		{"bad suite", map[string]string{"suite": "Bookworm!\n"}, "not a Debian suite"},
		{"bad package", map[string]string{"packages": "systemd\nrm -rf\n"}, "not a package name"},
		{"duplicate package", map[string]string{"packages": "systemd\nsystemd\n"}, "listed twice"},
		{"no packages", map[string]string{"packages": "# none\n"}, "no packages"},
		{"no bpf", map[string]string{"cmdline": "root=/dev/vda lsm=lockdown,capability\n"}, "does not enable bpf"},
		{"no lsm", map[string]string{"cmdline": "root=/dev/vda\n"}, "does not enable bpf"},
		{"no root", map[string]string{"cmdline": "lsm=bpf\n"}, "no root="},
		{"bad machine id", map[string]string{"machine-id": "xyz\n"}, "32 lowercase hex"},
		{"no customize", map[string]string{"customize.sh": "-"}, "customize.sh is missing"},
		{"no sources", map[string]string{"sources.list": "-"}, "sources.list is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadRecipe(writeRecipe(t, tt.edits))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadRecipe() = %v, want an error with %q", err, tt.want)
			}
		})
	}
	t.Run("machine id is optional", func(t *testing.T) {
		r, err := LoadRecipe(writeRecipe(t, map[string]string{"machine-id": "-"}))
		if err != nil || r.MachineID != "" {
			t.Fatalf("LoadRecipe() = %+v, %v", r, err)
		}
	})
}

func TestRecipeKey(t *testing.T) {
	opts := []string{"builder=1"}
	key := func(t *testing.T, dir string, opts []string) string {
		t.Helper()
		r, err := LoadRecipe(dir)
		if err != nil {
			t.Fatal(err)
		}
		k, err := r.Key(opts)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := key(t, writeRecipe(t, nil), opts)
	if len(base) != 64 {
		t.Fatalf("key %q is not a hex SHA-256", base)
	}
	if again := key(t, writeRecipe(t, nil), opts); again != base {
		t.Errorf("the same recipe in another directory gave another key")
	}
	tests := []struct {
		name    string
		edits   map[string]string
		opts    []string
		changes bool
	}{
		{"package added", map[string]string{"packages": "systemd\nlinux-image-cloud-amd64\nbusybox\nprocps\n"}, opts, true},
		{"baked file changed", map[string]string{"files/etc/motd": "hello\n"}, opts, true},
		{"baked file added", map[string]string{"files/etc/issue": "x\n"}, opts, true},
		{"hook changed", map[string]string{"customize.sh": "#!/bin/sh\nfalse\n"}, opts, true},
		{"builder option changed", nil, []string{"builder=2"}, true},
		{"command line changed", map[string]string{"cmdline": "root=/dev/vda lsm=bpf quiet\n"}, opts, false},
		{"machine id changed", map[string]string{"machine-id": "ffffffffffffffffffffffffffffffff\n"}, opts, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := key(t, writeRecipe(t, tt.edits), tt.opts)
			if (got != base) != tt.changes {
				t.Errorf("key changed = %v, want %v", got != base, tt.changes)
			}
		})
	}
	t.Run("executable bit", func(t *testing.T) {
		dir := writeRecipe(t, nil)
		if err := os.Chmod(filepath.Join(dir, "customize.sh"), 0o755); err != nil {
			t.Fatal(err)
		}
		if key(t, dir, opts) == base {
			t.Error("making customize.sh executable kept the key")
		}
	})
}

// TestRepositoryRecipe loads the real recipe, so a broken edit of
// rootfs/appliance fails the unit tests rather than a VM run.
func TestRepositoryRecipe(t *testing.T) {
	r, err := LoadRecipe(filepath.Join("..", "..", "rootfs", "appliance"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"systemd", "linux-image-cloud-amd64", "initramfs-tools", "cryptsetup-bin"} {
		found := false
		for _, q := range r.Packages {
			found = found || q == p
		}
		if !found {
			t.Errorf("the recipe lacks %s", p)
		}
	}
	mods, err := os.ReadFile(filepath.Join(r.Dir, "files", "etc", "initramfs-tools", "modules"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"erofs", "dm-verity", "dm-mod", "loop", "virtio_blk", "ext4"} {
		if !strings.Contains(string(mods), "\n"+m+"\n") {
			t.Errorf("initramfs modules lack %s", m)
		}
	}
}
