package hostcmd

import (
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{
			name: "mmdebstrap",
			args: Mmdebstrap{Suite: "bookworm", Sources: "/r/sources.list", Variant: "minbase",
				Include: []string{"systemd", "udev"}, DpkgOpts: []string{"path-exclude=/usr/share/man/*"},
				CustomizeHooks: []string{`sh '/r/customize.sh' "$1"`}, Output: "/c/base.tar"}.Args(),
			want: []string{"--mode=root --format=tar --variant=minbase --include=systemd,udev",
				"--dpkgopt=path-exclude=/usr/share/man/*", `--customize-hook=sh '/r/customize.sh' "$1"`,
				"bookworm /c/base.tar /r/sources.list"},
		},
		{
			name: "untar",
			args: UntarArgs("/c/base.tar", "/s/root"),
			want: []string{"--extract --file /c/base.tar --directory /s/root --numeric-owner --same-permissions --xattrs"},
		},
		{
			name: "erofs",
			args: Erofs{Image: "/o/root.erofs", Dir: "/s/root", UUID: "u"}.Args(),
			want: []string{"--quiet -Uu /o/root.erofs /s/root"},
		},
		{
			name: "ext4",
			args: Ext4{Image: "/o/var.img", Dir: "/s/var", Label: "aegisvar", UUID: "u", SizeMiB: 512}.Args(),
			want: []string{"-t ext4 -L aegisvar -d /s/var", "lazy_itable_init=0", "-U u /o/var.img 512M"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(tt.args, " ")
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("args %q lack %q", got, w)
				}
			}
		})
	}
}

func TestTail(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 40; i++ {
		b.WriteString("line\n")
	}
	got := tail(b.String(), 3)
	if got != "    ...\n    line\n    line\n    line" {
		t.Errorf("tail = %q", got)
	}
}
