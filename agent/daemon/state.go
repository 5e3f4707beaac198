package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/agent/atomicfile"
	"github.com/aegisbpf/aegisbpf/agent/events"
)

// StatusFile is the name of the agent status file in the state directory.
const StatusFile = "status.json"

const startsFile = "starts"

// Agent states in status.json.
const (
	StateStarting  = "starting"
	StateEnforcing = "enforcing"
	StateUnhealthy = "unhealthy" // enforcing, but a health check fails and watchdog pings stopped
	StateStopped   = "stopped"   // the process ended; pinned links keep enforcing
	StateFailed    = "failed"    // the process could not start enforcement
)

// AgentStatus is status.json: what the running agent says about itself,
// read by `aegisbpf status`.
type AgentStatus struct {
	PID     int       `json:"pid"`
	State   string    `json:"state"`
	Status  string    `json:"status"` // the last STATUS= line
	Updated time.Time `json:"updated"`
	// Policy is set once enforcing.
	Policy *PolicyStatus `json:"policy,omitempty"`
	// Watchdog is systemd's watchdog timeout, 0 when off.
	Watchdog          string `json:"watchdog,omitempty"`
	TimeToEnforcement string `json:"time_to_enforcement,omitempty"`
	Starts            uint64 `json:"starts,omitempty"` // agent starts since boot
	Version           string `json:"version,omitempty"`
}

// PolicyStatus identifies the applied policy.
type PolicyStatus struct {
	Digest string `json:"digest"`
	Serial uint64 `json:"serial"`
	Mode   string `json:"mode"`
	Rules  int    `json:"rules"`
}

// ReadStatus reads dir/status.json.
func ReadStatus(dir string) (*AgentStatus, error) {
	b, err := os.ReadFile(filepath.Join(dir, StatusFile))
	if err != nil {
		return nil, err
	}
	var st AgentStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", filepath.Join(dir, StatusFile), err)
	}
	return &st, nil
}

// writeStatus replaces dir/status.json atomically; nothing when dir is "".
func writeStatus(dir string, st *AgentStatus) error {
	if dir == "" {
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, StatusFile), append(b, '\n'), 0o644)
}

// bumpStarts increments and returns the start counter in dir (0 when dir
// is ""). The directory is on tmpfs: the count is per boot.
func bumpStarts(dir string) (uint64, error) {
	if dir == "" {
		return 0, nil
	}
	path := filepath.Join(dir, startsFile)
	var n uint64
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		n, err = strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
		if err != nil {
			n = 0 // a damaged counter restarts; it is only a metric
		}
	case !errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Errorf("reading the start counter: %w", err)
	}
	n++
	if err := atomicfile.Write(path, []byte(strconv.FormatUint(n, 10)+"\n"), 0o644); err != nil {
		return 0, fmt.Errorf("writing the start counter: %w", err)
	}
	return n, nil
}

// userHZ is the unit of /proc/<pid>/stat times: USER_HZ, 100 on every
// Linux architecture Go supports.
const userHZ = 100

// processAge returns how long ago this process started, from its start
// time in /proc/self/stat (clock ticks after boot) and CLOCK_BOOTTIME.
func processAge() (time.Duration, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which may hold spaces and parens.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("parsing /proc/self/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	const starttime = 22 - 3 // field 22, counted after pid and comm
	if len(f) <= starttime {
		return 0, errors.New("parsing /proc/self/stat: too few fields")
	}
	ticks, err := strconv.ParseUint(f[starttime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing /proc/self/stat start time: %w", err)
	}
	start := time.Duration(ticks) * time.Second / userHZ
	return max(events.BootClock()-start, 0), nil
}

// cpuTime returns the CPU time (user + system) this process used so far.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PolicySerialFile, in the state directory, holds the serial of the last
// policy the agent applied: the floor below which it refuses a policy.
// The slots lower it on a rollback (agent/slot).
const PolicySerialFile = "policy-serial"

// ReadPolicySerial returns the serial in dir's PolicySerialFile; a
// missing file is 0.
func ReadPolicySerial(dir string) (uint64, error) {
	data, err := os.ReadFile(filepath.Join(dir, PolicySerialFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", filepath.Join(dir, PolicySerialFile), err)
	}
	return n, nil
}

// WritePolicySerial records serial in dir's PolicySerialFile, creating
// dir when missing.
func WritePolicySerial(dir string, serial uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, PolicySerialFile), []byte(strconv.FormatUint(serial, 10)+"\n"), 0o644)
}
