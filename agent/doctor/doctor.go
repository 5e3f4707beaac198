package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/agent/slot"
	"github.com/aegisbpf/aegisbpf/image/layer"
)

// Status is the outcome of a check, ordered from best to worst.
type Status int

// The outcomes.
const (
	OK Status = iota
	Warn
	Fail
)

var statusNames = [...]string{OK: "OK", Warn: "WARN", Fail: "FAIL"}

func (s Status) String() string {
	if s < OK || s > Fail {
		return fmt.Sprintf("Status(%d)", int(s))
	}
	return statusNames[s]
}

// MarshalText writes the status in lower case: "ok", "warn", "fail".
func (s Status) MarshalText() ([]byte, error) {
	if s < OK || s > Fail {
		return nil, fmt.Errorf("unknown status %d", int(s))
	}
	return []byte(strings.ToLower(statusNames[s])), nil
}

// UnmarshalText reads what MarshalText writes.
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if strings.EqualFold(string(b), n) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("unknown status %q (ok, warn, fail)", b)
}

// Result is one check: its stable name, its outcome, what it saw and, when
// the outcome is not OK, what to do about it.
type Result struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix"`
}

func ok(name, format string, args ...any) Result {
	return Result{Name: name, Status: OK, Detail: fmt.Sprintf(format, args...)}
}

func warn(name, fix, format string, args ...any) Result {
	return Result{Name: name, Status: Warn, Detail: fmt.Sprintf(format, args...), Fix: fix}
}

func fail(name, fix, format string, args ...any) Result {
	return Result{Name: name, Status: Fail, Detail: fmt.Sprintf(format, args...), Fix: fix}
}

// Host is the host under examination. Paths are as the host sees them and
// are read below Root. The zero value of every field but Root has a
// default (Defaults).
type Host struct {
	// Root is where the host's file system is: "/" for the running host.
	Root string
	// PolicyFile is the installed policy; its signature is PolicyFile.sig.
	PolicyFile string
	// KeysDir holds the trusted public keys (*.pub).
	KeysDir string
	// SlotsDir holds state.json and slots/{a,b}.
	SlotsDir string
	// Now is the current time.
	Now func() time.Time
	// BuildTime is when this agent was built (its commit time); the clock
	// must not be before it. Zero when unknown.
	BuildTime time.Time
	// TrustedUID owns the trusted keys and their directories: 0 (root).
	TrustedUID uint32
	// FreeBytes returns the bytes available to root at path (statfs).
	FreeBytes func(path string) (uint64, error)
	// ProbeRingBuf creates a BPF ring buffer map on the running kernel; nil
	// when Root is not the running host, or probes are not wanted.
	ProbeRingBuf func() error
	// ProbeLSM loads a BPF LSM program on the running kernel; nil (the
	// check is left out) when Root is not the running host.
	ProbeLSM func() error
	// Root reports whether doctor runs as root (euid 0).
	IsRoot func() bool
}

// Defaults of a host.
const (
	DefaultRoot = "/"
	// MinKernelMajor.MinKernelMinor is the oldest kernel the agent runs
	// on (tested: 6.1 and 6.12).
	MinKernelMajor, MinKernelMinor = 6, 1
	// MinSystemd is the oldest systemd the units and the slots work with.
	MinSystemd = 252
)

// Defaults fills the unset fields with the host's defaults.
func (h Host) Defaults() Host {
	if h.Root == "" {
		h.Root = DefaultRoot
	}
	if h.PolicyFile == "" {
		h.PolicyFile = layer.PolicyFile
	}
	if h.KeysDir == "" {
		h.KeysDir = slot.DefaultKeysDir
	}
	if h.SlotsDir == "" {
		h.SlotsDir = slot.DefaultDir
	}
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.FreeBytes == nil {
		h.FreeBytes = statfsFree
	}
	if h.IsRoot == nil {
		h.IsRoot = func() bool { return os.Geteuid() == 0 }
	}
	return h
}

// statfsFree is the space available to root: free blocks, not just those
// available to unprivileged users, since every slot verb runs as root.
func statfsFree(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Bfree * uint64(st.Bsize), nil
}

// path returns the host path p below Root.
func (h *Host) path(p string) string { return filepath.Join(h.Root, p) }

// readFile reads the host file p, trimmed of surrounding white space.
func (h *Host) readFile(p string) (string, error) {
	b, err := os.ReadFile(h.path(p))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// Run runs every check, in a fixed order.
func (h Host) Run() []Result {
	h = h.Defaults()
	checks := []func() Result{h.checkKernel, h.checkBTF, h.checkLSM}
	if h.ProbeLSM != nil {
		checks = append(checks, h.checkLSMProgram)
	}
	checks = append(checks, h.checkBPFFS, h.checkCgroup2, h.checkRingBuf,
		h.checkSystemd, h.checkSysext, h.checkDMVerity, h.checkErofs,
		h.checkTrustedKeys, h.checkPolicy, h.checkSlotSpace, h.checkClock,
	)
	out := make([]Result, 0, len(checks))
	for _, c := range checks {
		out = append(out, c())
	}
	return out
}

// Worst is the worst status of results; OK for none.
func Worst(results []Result) Status {
	w := OK
	for _, r := range results {
		w = max(w, r.Status)
	}
	return w
}

// Count returns how many results have each status.
func Count(results []Result) map[Status]int {
	n := map[Status]int{OK: 0, Warn: 0, Fail: 0}
	for _, r := range results {
		n[r.Status]++
	}
	return n
}

// ReportFormat is the version of the JSON document; it changes only when a
// field changes meaning or goes away.
const ReportFormat = 1

// Report is the JSON document of `aegisbpf doctor --json`.
type Report struct {
	Format int      `json:"format"`
	Root   string   `json:"root"`
	Status Status   `json:"status"` // the worst check
	OK     int      `json:"ok"`
	Warn   int      `json:"warn"`
	Fail   int      `json:"fail"`
	Checks []Result `json:"checks"`
}

// NewReport summarizes results of the host at root.
func NewReport(root string, results []Result) Report {
	n := Count(results)
	return Report{Format: ReportFormat, Root: root, Status: Worst(results),
		OK: n[OK], Warn: n[Warn], Fail: n[Fail], Checks: results}
}

// WriteJSON writes the report as indented JSON and a final newline.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes one line per check: status, name, what was seen and,
// when not OK, the fix; then a summary line.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-4s  %-12s  %s", c.Status, c.Name, c.Detail)
		if c.Fix != "" {
			fmt.Fprintf(&b, "  fix: %s", c.Fix)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "doctor: %d OK, %d WARN, %d FAIL (root %s)\n", r.OK, r.Warn, r.Fail, r.Root)
	_, err := io.WriteString(w, b.String())
	return err
}
