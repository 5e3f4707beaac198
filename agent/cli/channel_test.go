package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aegisbpf/aegisbpf/agent/update"
	"github.com/aegisbpf/aegisbpf/image/layer/layertest"
)

// TestChannelPublishAndHalt drives the channel verbs on a static tree:
// the first edition, a re-signed one, a refused duplicate, a halt.
func TestChannelPublishAndHalt(t *testing.T) {
	work := t.TempDir()
	_, in, err := layertest.Build(t.Context(), filepath.Join(work, "l1"), layertest.Config{Version: "1.0.0", Serial: 5, AgentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	layerDir := filepath.Join(work, "l1", "layer")
	pub := filepath.Join(work, "pub")
	edition := func() *update.Channel {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(pub, update.ChannelFile))
		if err != nil {
			t.Fatal(err)
		}
		c, err := update.ParseChannel(data)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := []string{"channel", "publish", "--key", in.KeyPath, "--dir", pub}
	if code, out, errOut := run(t, append(base, "--name", "stable", "--waves", "0.1,1", layerDir)...); code != 0 {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errOut)
	}
	c := edition()
	if c.Serial != 1 || len(c.Releases) != 1 || c.Releases[0].Serial != 5 || c.Releases[0].Path != "releases/1.0.0" {
		t.Fatalf("first edition: %+v", c)
	}
	for _, f := range c.Releases[0].Files {
		if _, err := os.Stat(filepath.Join(pub, "releases", "1.0.0", f.Name)); err != nil {
			t.Errorf("release file: %v", err)
		}
	}
	if code, out, errOut := run(t, base...); code != 0 || edition().Serial != 2 {
		t.Fatalf("re-sign: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := run(t, append(base, layerDir)...); code != 1 || !strings.Contains(errOut, "is in the channel already") || edition().Serial != 2 {
		t.Errorf("publishing a release twice: exit %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, "channel", "halt", "--key", in.KeyPath, "--dir", pub, "--release", "1.0.0"); code != 2 || !strings.Contains(errOut, "--reason") {
		t.Errorf("halt without a reason: exit %d: %s", code, errOut)
	}
	if code, out, errOut := run(t, "channel", "halt", "--key", in.KeyPath, "--dir", pub, "--release", "1.0.0", "--reason", "INC-1"); code != 0 {
		t.Fatalf("halt: exit %d\n%s%s", code, out, errOut)
	}
	if c := edition(); c.Serial != 3 || c.Releases[0].Halted == nil || c.Releases[0].Halted.Reason != "INC-1" {
		t.Errorf("after halt: %+v", c.Releases[0])
	}
	for _, args := range [][]string{
		{"channel", "publish", "--dir", pub},
		{"channel", "publish", "--key", in.KeyPath},
		{"channel", "advance", "--key", in.KeyPath, "--dir", pub},
		{"update", "pin", "--dir", work},
		{"update", "check", "--dir", work},
	} {
		if code, _, _ := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, code)
		}
	}
}
