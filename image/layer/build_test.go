package layer_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/image/layer"
	"github.com/aegisbpf/aegisbpf/image/layer/layertest"
)

// requireTools skips a test that runs mkfs.erofs and veritysetup on a host
// without them.
func requireTools(t testing.TB) {
	t.Helper()
	for _, p := range []struct{ prog, pkg string }{{"mkfs.erofs", "erofs-utils"}, {"veritysetup", "cryptsetup-bin"}} {
		if _, err := exec.LookPath(p.prog); err != nil {
			t.Skipf("needs %s (Debian package %s, installed by make deps): %v", p.prog, p.pkg, err)
		}
	}
}

// buildLayer builds the layertest layer under a new temporary directory.
func buildLayer(t testing.TB, c layertest.Config) (*layer.BuildResult, *layertest.Inputs) {
	t.Helper()
	requireTools(t)
	res, in, err := layertest.Build(context.Background(), t.TempDir(), c)
	if err != nil {
		t.Fatalf("building layer: %v", err)
	}
	return res, in
}

func sha256File(t testing.TB, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256Bytes(data)
}

func sha256Bytes(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func outputs(res *layer.BuildResult) []string {
	return []string{res.ErofsPath, res.VerityPath, res.ManifestPath, res.SignaturePath}
}

// TestReproducible builds the same inputs twice, in different directories,
// with different umasks, input file times and modes, and a different clock
// (a second apart at least), and wants the same bytes.
func TestReproducible(t *testing.T) {
	requireTools(t)
	variants := []struct {
		umask     int
		mtime     time.Time
		fileMode  os.FileMode // policy, its signature, the units
		agentMode os.FileMode
	}{
		{umask: 0o022, mtime: time.Unix(1000000000, 0), fileMode: 0o644, agentMode: 0o755},
		{umask: 0o077, mtime: time.Unix(2000000000, 123), fileMode: 0o600, agentMode: 0o700},
	}
	var sums [][]string
	for i, v := range variants {
		dir := t.TempDir()
		in, err := layertest.WriteInputs(filepath.Join(dir, "in"), layertest.Config{})
		if err != nil {
			t.Fatal(err)
		}
		files := []string{in.Options.Policy, in.Options.Policy + ".sig"}
		for name := range layertest.Units {
			files = append(files, filepath.Join(in.Options.Units, name))
		}
		for _, p := range files {
			if err := os.Chmod(p, v.fileMode); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(in.Options.Agent, v.agentMode); err != nil {
			t.Fatal(err)
		}
		for _, p := range append(files, in.Options.Agent, in.Options.Units) {
			if err := os.Chtimes(p, v.mtime, v.mtime); err != nil {
				t.Fatal(err)
			}
		}
		in.Options.OutputDir = filepath.Join(dir, "out", "nested")
		if i > 0 {
			time.Sleep(1100 * time.Millisecond) // another second on the clock
		}
		old := syscall.Umask(v.umask)
		res, err := layer.Build(context.Background(), in.Options)
		syscall.Umask(old)
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		var s []string
		for _, p := range outputs(res) {
			s = append(s, filepath.Base(p)+" "+sha256File(t, p))
		}
		sums = append(sums, s)
	}
	for j := range sums[0] {
		if sums[0][j] != sums[1][j] {
			t.Errorf("builds differ:\n  %s\n  %s", sums[0][j], sums[1][j])
		} else {
			t.Logf("both builds: sha256 %s", sums[0][j])
		}
	}
}

func TestBuildManifestContents(t *testing.T) {
	res, in := buildLayer(t, layertest.Config{Version: "2.3.4", Serial: 7})
	m := res.Manifest
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path+" "+f.Mode)
	}
	want := []string{
		"/usr/bin/aegisbpf 0755",
		"/usr/lib/extension-release.d/extension-release.aegisbpf 0644",
		"/usr/lib/systemd/system/aegisbpf-metrics.socket 0644",
		"/usr/lib/systemd/system/aegisbpf.service 0644",
		"/usr/share/aegisbpf/policy.toml 0644",
		"/usr/share/aegisbpf/policy.toml.sig 0644",
	}
	if strings.Join(paths, "\n") != strings.Join(want, "\n") {
		t.Errorf("layer files:\n%s\nwant:\n%s", strings.Join(paths, "\n"), strings.Join(want, "\n"))
	}
	if got := sha256File(t, in.Options.Agent); m.AgentSHA256 != got {
		t.Errorf("agent_sha256 %s, the agent has %s", m.AgentSHA256, got)
	}
	if got := sha256File(t, in.Options.Policy); m.PolicySHA256 != got {
		t.Errorf("policy_sha256 %s, the policy has %s", m.PolicySHA256, got)
	}
	if want, _ := layertest.FakeValidator("", []byte(layertest.Policy), layertest.PolicySignature([]byte(layertest.Policy))); m.PolicyDigest != want {
		t.Errorf("policy_digest %q, want %q", m.PolicyDigest, want)
	}
	if m.Serial != 7 || m.Version != "2.3.4" || m.Architecture != "x86-64" || m.BuildTime != "2023-11-14T22:13:20Z" {
		t.Errorf("serial %d version %q architecture %q build_time %q", m.Serial, m.Version, m.Architecture, m.BuildTime)
	}
	for _, p := range outputs(res) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %04o, want 0644", p, fi.Mode().Perm())
		}
	}
	entries, err := os.ReadDir(in.Options.OutputDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("build left %s behind in the output directory", e.Name())
		}
	}
}

func TestBuildRefuses(t *testing.T) {
	requireTools(t)
	tests := []struct {
		name   string
		change func(t *testing.T, o *layer.BuildOptions)
		want   string
	}{
		{"no epoch", func(t *testing.T, o *layer.BuildOptions) { o.SourceDateEpoch = 0 }, "SOURCE_DATE_EPOCH is required"},
		{"no serial", func(t *testing.T, o *layer.BuildOptions) { o.Serial = 0 }, "serial is required"},
		{"bad version", func(t *testing.T, o *layer.BuildOptions) { o.Version = "../1" }, `version "../1"`},
		{"no key", func(t *testing.T, o *layer.BuildOptions) { o.Key = nil }, "signing key is required"},
		{"no validator", func(t *testing.T, o *layer.BuildOptions) { o.ValidatePolicy = nil }, "policy validator is required"},
		{"invalid policy", func(t *testing.T, o *layer.BuildOptions) {
			write(t, o.Policy, "INVALID\n")
			write(t, o.Policy+".sig", string(layertest.PolicySignature([]byte("INVALID\n"))))
		}, "refused: policy.toml: line 1: INVALID is not a rule"},
		{"policy signature mismatch", func(t *testing.T, o *layer.BuildOptions) { write(t, o.Policy+".sig", "other\n") }, "policy signature does not match"},
		{"empty policy signature", func(t *testing.T, o *layer.BuildOptions) { write(t, o.Policy+".sig", "") }, "is empty"},
		{"missing policy signature", func(t *testing.T, o *layer.BuildOptions) { os.Remove(o.Policy + ".sig") }, "reading policy signature"},
		{"no service unit", func(t *testing.T, o *layer.BuildOptions) { os.Remove(filepath.Join(o.Units, "aegisbpf.service")) }, "has no aegisbpf.service"},
		{"agent not ELF", func(t *testing.T, o *layer.BuildOptions) { write(t, o.Agent, "#!/bin/sh\n") }, "agent binary is not an ELF file"},
		{"dynamic agent", func(t *testing.T, o *layer.BuildOptions) {
			if _, err := os.Stat("/usr/bin/true"); err != nil {
				t.Skip("no /usr/bin/true to use as a dynamic binary")
			}
			data, err := os.ReadFile("/usr/bin/true")
			if err != nil {
				t.Fatal(err)
			}
			write(t, o.Agent, string(data))
		}, "agent binary is dynamically linked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			in, err := layertest.WriteInputs(filepath.Join(dir, "in"), layertest.Config{})
			if err != nil {
				t.Fatal(err)
			}
			in.Options.OutputDir = filepath.Join(dir, "out")
			tt.change(t, &in.Options)
			_, err = layer.Build(context.Background(), in.Options)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Build: got %v, want an error containing %q", err, tt.want)
			}
			if entries, _ := os.ReadDir(in.Options.OutputDir); len(entries) != 0 {
				t.Errorf("a refused build left %d entries in the output directory", len(entries))
			}
		})
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkBuild10MiB builds a layer around a 10 MiB agent and reports the
// sizes of the image and the hash tree.
func BenchmarkBuild10MiB(b *testing.B) {
	requireTools(b)
	dir := b.TempDir()
	in, err := layertest.WriteInputs(filepath.Join(dir, "in"), layertest.Config{AgentSize: 10 << 20})
	if err != nil {
		b.Fatal(err)
	}
	in.Options.OutputDir = filepath.Join(dir, "out")
	var res *layer.BuildResult
	for b.Loop() {
		if res, err = layer.Build(context.Background(), in.Options); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(res.Manifest.Erofs().Size), "erofs-bytes")
	b.ReportMetric(float64(res.Manifest.VerityArtifact().Size), "verity-bytes")
}
