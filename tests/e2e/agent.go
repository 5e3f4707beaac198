package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/aegisbpf/aegisbpf/image/appliance"
)

// Where the guest agent lives in the appliance.
const (
	agentBinary = "/usr/lib/aegisbpf-e2e/guestagent"
	agentUnit   = "aegisbpf-e2e-agent.service"
	// portDevice is the systemd device unit of /dev/virtio-ports/org.aegisbpf.ctl
	// (systemd-escape --path): the agent is wanted by it, so it starts when
	// udev sees the port, early in boot, and not at all without the port.
	portDevice = `dev-virtio\x2dports-` + portName + ".device"
)

// agentUnitText is the guest agent's unit. It starts once the local file
// systems are mounted, so every command sees the writable /var, but has no
// other default dependencies: the channel works before basic.target and
// while a later part of the boot is stuck. It stops at shutdown like any
// service.
const agentUnitText = `[Unit]
Description=AegisBPF e2e guest agent (test control channel, runs host commands as root)
DefaultDependencies=no
BindsTo=` + portDevice + `
After=` + portDevice + ` local-fs.target systemd-journald.socket
Conflicts=shutdown.target
Before=shutdown.target

[Service]
ExecStart=` + agentBinary + `
Restart=always
RestartSec=1
`

// GuestAgentFiles builds the static guest agent into dir and returns the
// root files that install it in an appliance: the binary, its unit, and
// the link that starts it with the control port. It runs go build, so the
// working directory must be inside the module.
func GuestAgentFiles(ctx context.Context, dir string) ([]appliance.File, error) {
	bin := filepath.Join(dir, "guestagent")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin,
		"github.com/aegisbpf/aegisbpf/tests/e2e/guestagent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the guest agent: %w\n%s", err, out)
	}
	return []appliance.File{
		{Path: agentBinary, Mode: 0o755, Source: bin},
		{Path: "/usr/lib/systemd/system/" + agentUnit, Mode: 0o644, Data: []byte(agentUnitText)},
		{Path: "/etc/systemd/system/" + portDevice + ".wants/" + agentUnit, Mode: fs.ModeSymlink | 0o777,
			Target: "/usr/lib/systemd/system/" + agentUnit},
	}, nil
}

// BuildAppliance builds the appliance of cfg with the guest agent added to
// its root files. An empty cfg.Recipe means the repository's
// rootfs/appliance.
func BuildAppliance(ctx context.Context, cfg appliance.Config) (*appliance.Appliance, error) {
	if cfg.Recipe == "" {
		root, err := RepoRoot()
		if err != nil {
			return nil, err
		}
		cfg.Recipe = filepath.Join(root, "rootfs", "appliance")
	}
	tmp, err := os.MkdirTemp("", "aegisbpf-guestagent-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	files, err := GuestAgentFiles(ctx, tmp)
	if err != nil {
		return nil, err
	}
	cfg.RootFiles = append(append([]appliance.File(nil), cfg.RootFiles...), files...)
	return appliance.Build(ctx, cfg)
}

// RepoRoot finds the repository root: the nearest directory above the
// working directory whose go.mod declares the aegisbpf module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("module github.com/aegisbpf/aegisbpf")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding the repository root: no go.mod of github.com/aegisbpf/aegisbpf above the working directory")
		}
		dir = parent
	}
}
