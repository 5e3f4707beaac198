package appliance

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	// A merged-/usr layout: /lib is a relative link into the tree.
	if err := os.MkdirAll(filepath.Join(dir, "usr", "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/lib", filepath.Join(dir, "lib")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/self/mounts", filepath.Join(dir, "etc", "mtab")); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(src, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	files := []File{
		{Path: "/usr/lib/aegisbpf/keys/a.pub", Mode: 0o644, Data: []byte("key")},
		{Path: "/lib/aegisbpf/via-link", Mode: 0o600, Data: []byte("x")},
		{Path: "/usr/bin/tool", Mode: fs.ModeSetuid | 0o755, Source: src},
		{Path: "/etc/mtab", Mode: 0o644, Data: []byte("replaced a symlink")},
		{Path: "/etc", Mode: fs.ModeDir | 0o700},
		{Path: "/etc/systemd/system/x.wants", Mode: fs.ModeDir | 0o750},
		{Path: "/etc/systemd/system/x.wants/y.service", Mode: fs.ModeSymlink | 0o777, Target: "/usr/lib/systemd/system/y.service"},
	}
	if err := install(dir, files); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		mode fs.FileMode
		data string
	}{
		{"usr/lib/aegisbpf/keys/a.pub", 0o644, "key"},
		{"usr/lib/aegisbpf/keys", fs.ModeDir | 0o755, ""},
		{"usr/lib/aegisbpf/via-link", 0o600, "x"},
		{"usr/bin/tool", 0o755 | fs.ModeSetuid, "#!/bin/sh\n"},
		{"etc/mtab", 0o644, "replaced a symlink"},
		{"etc/systemd/system/x.wants", fs.ModeDir | 0o750, ""},
		{"etc", fs.ModeDir | 0o755, ""}, // existed: kept
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			fi, err := os.Lstat(filepath.Join(dir, tt.path))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tt.mode {
				t.Errorf("mode %v, want %v", fi.Mode(), tt.mode)
			}
			if tt.data != "" {
				if b, _ := os.ReadFile(filepath.Join(dir, tt.path)); string(b) != tt.data {
					t.Errorf("contents %q, want %q", b, tt.data)
				}
			}
		})
	}
	if target, err := os.Readlink(filepath.Join(dir, "etc/systemd/system/x.wants/y.service")); err != nil || target != "/usr/lib/systemd/system/y.service" {
		t.Errorf("symlink = %q, %v", target, err)
	}
}

func TestInstallRefuses(t *testing.T) {
	tests := []struct {
		name string
		file File
		want string
	}{
		{"relative path", File{Path: "etc/x", Mode: 0o644}, "clean absolute path"},
		{"unclean path", File{Path: "/etc/../x", Mode: 0o644}, "clean absolute path"},
		{"the root", File{Path: "/", Mode: fs.ModeDir | 0o755}, "clean absolute path"},
		{"symlink without target", File{Path: "/x", Mode: fs.ModeSymlink}, "without a target"},
		{"both sources", File{Path: "/x", Mode: 0o644, Source: "/etc/hostname", Data: []byte("x")}, "both Source and Data"},
		{"unix setuid bits", File{Path: "/x", Mode: 0o4755}, "use fs.ModeSetuid"},
		{"device", File{Path: "/x", Mode: fs.ModeDevice | 0o644}, "unsupported file type"},
		{"escape through an absolute link", File{Path: "/escape/passwd", Mode: 0o644, Data: []byte("x")}, "escapes"},
		{"file over a directory", File{Path: "/etc", Mode: 0o644, Data: []byte("x")}, "is a directory"},
		{"directory over a file", File{Path: "/etc/hostname", Mode: fs.ModeDir | 0o755}, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			outside := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
			os.WriteFile(filepath.Join(dir, "etc", "hostname"), []byte("h\n"), 0o644)
			if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
				t.Fatal(err)
			}
			err := install(dir, []File{tt.file})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("install() = %v, want an error with %q", err, tt.want)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("install wrote outside the tree: %v", ents)
			}
		})
	}
}

func TestFilesFromDir(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "slots", "a"), 0o700)
	os.WriteFile(filepath.Join(src, "slots", "a", "layer.erofs"), []byte("layer"), 0o640)
	os.Symlink("a", filepath.Join(src, "slots", "current"))
	files, err := FilesFromDir(src, "/var/lib/aegisbpf")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]File{}
	for _, f := range files {
		got[f.Path] = f
	}
	want := map[string]fs.FileMode{
		"/var/lib/aegisbpf/slots":               fs.ModeDir | 0o755,
		"/var/lib/aegisbpf/slots/a":             fs.ModeDir | 0o700,
		"/var/lib/aegisbpf/slots/a/layer.erofs": 0o640,
		"/var/lib/aegisbpf/slots/current":       fs.ModeSymlink | 0o777,
	}
	if len(got) != len(want) {
		t.Fatalf("FilesFromDir listed %d entries, want %d: %v", len(got), len(want), files)
	}
	for p, mode := range want {
		f, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s not listed", p)
		case p == "/var/lib/aegisbpf/slots" && f.Mode.IsDir():
			// permissions of a directory made by MkdirAll depend on the umask
		case f.Mode != mode:
			t.Errorf("%s: mode %v, want %v", p, f.Mode, mode)
		}
	}
	if got["/var/lib/aegisbpf/slots/current"].Target != "a" {
		t.Errorf("symlink target = %q", got["/var/lib/aegisbpf/slots/current"].Target)
	}
	if got["/var/lib/aegisbpf/slots/a/layer.erofs"].Source == "" {
		t.Error("regular file has no Source")
	}
	if _, err := FilesFromDir(src, "relative"); err == nil {
		t.Error("a relative guest directory was accepted")
	}
}

func TestCheckFiles(t *testing.T) {
	tests := []struct {
		name      string
		root, vfs []File
		want      string
	}{
		{"fine", []File{{Path: "/usr/lib/x"}, {Path: "/variable"}}, []File{{Path: "/var/lib/x"}}, ""},
		{"root file on /var", []File{{Path: "/var/lib/x"}}, nil, "list it in VarFiles"},
		{"var file off /var", nil, []File{{Path: "/etc/x"}}, "not below /var"},
		{"var file is /var", nil, []File{{Path: "/var"}}, "not below /var"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkFiles(tt.root, tt.vfs)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("checkFiles() = %v, want %q", err, tt.want)
			}
		})
	}
}
