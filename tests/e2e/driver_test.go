package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aegisbpf/aegisbpf/image/appliance"
)

func TestParseJournal(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		field string
		want  string
	}{
		{"string", `{"MESSAGE":"hello","_SYSTEMD_UNIT":"a.service"}`, "MESSAGE", "hello"},
		{"binary", `{"MESSAGE":[104,105,0,255]}`, "MESSAGE", "hi\x00\xff"},
		{"repeated", `{"X":["one","two"]}`, "X", "two"},
		{"repeated binary", `{"X":["one",[116,119,111]]}`, "X", "two"},
		{"null", `{"MESSAGE":null}`, "MESSAGE", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := parseJournal([]byte(tt.in + "\n\n"))
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != 1 || es[0][tt.field] != tt.want {
				t.Fatalf("entries = %q, want %s=%q", es, tt.field, tt.want)
			}
		})
	}
	es, _ := parseJournal([]byte(`{"_SYSTEMD_UNIT":"a.service"}` + "\n" + `{"UNIT":"b.service"}`))
	if len(es) != 2 || es[0].Unit() != "a.service" || es[1].Unit() != "b.service" {
		t.Errorf("Unit() on %q", es)
	}
	if _, err := parseJournal([]byte("{not json}\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad line: %v", err)
	}
}

func TestQemuArgs(t *testing.T) {
	a := &appliance.Appliance{Dir: "/a", Root: "root.erofs", Var: "var.img", Kernel: "vmlinuz", Initrd: "initrd.img",
		Cmdline: "console=ttyS0 root=/dev/vda lsm=bpf"}
	cfg := Config{Appliance: a, WorkDir: "/w", ExtraCmdline: "systemd.log_level=debug"}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	args := strings.Join(qemuArgs(cfg, "/w/var.img", "/w/ctl.sock", "/w/qmp.sock"), " ")
	for _, want := range []string{
		"-accel tcg,thread=single -cpu max -smp 2 -m 2048",
		"-kernel /a/vmlinuz -initrd /a/initrd.img",
		"-append console=ttyS0 root=/dev/vda lsm=bpf systemd.log_level=debug",
		"file=/a/root.erofs,if=virtio,format=raw,readonly=on",
		"file=/w/var.img,if=virtio,format=raw,cache=unsafe",
		"socket,id=ctl,path=/w/ctl.sock,server=on,wait=off",
		"virtserialport,bus=vser0.0,chardev=ctl,name=org.aegisbpf.ctl",
		"-qmp unix:/w/qmp.sock,server=on,wait=off",
		"-serial stdio",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu args lack %q:\n%s", want, args)
		}
	}
	if strings.Contains(args, "-no-reboot") {
		t.Error("-no-reboot would turn guest reboots into exits")
	}
	cfg.Interactive = true
	if args := strings.Join(qemuArgs(cfg, "v", "c", "q"), " "); !strings.Contains(args, "-serial mon:stdio") {
		t.Errorf("interactive args: %s", args)
	}
	if _, err := Start(t.Context(), Config{}); err == nil {
		t.Error("Start without an appliance succeeded")
	}
}

func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	f.Truncate(size)
	f.WriteAt([]byte("head"), 0)
	f.WriteAt(bytes.Repeat([]byte("m"), 8192), 32<<20)
	f.WriteAt([]byte("tail"), size-4)
	f.Close()
	if err := copySparse(src, dst); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	if !bytes.Equal(a, b) {
		t.Fatal("the copy differs")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dst, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 8<<20 {
		t.Errorf("the copy uses %d bytes on disk, the holes were filled", used)
	}
}
