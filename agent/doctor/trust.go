package doctor

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/daemon"
	"github.com/aegisbpf/aegisbpf/policy"
	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// expiryWarning is how long before a policy signature expires doctor warns.
const expiryWarning = 30 * 24 * time.Hour

// ownerProblem says what is wrong with the owner and mode of the host path
// p, "" when it is owned by TrustedUID and not writable by group or others.
func (h *Host) ownerProblem(p string) string {
	fi, err := os.Stat(h.path(p))
	if err != nil {
		return err.Error()
	}
	var problems []string
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != h.TrustedUID {
		problems = append(problems, fmt.Sprintf("owned by uid %d", st.Uid))
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		problems = append(problems, fmt.Sprintf("mode %04o is writable by group or others", perm))
	}
	if len(problems) == 0 {
		return ""
	}
	return p + " is " + strings.Join(problems, " and ")
}

func (h *Host) checkTrustedKeys() Result {
	const name = "trusted-keys"
	dir := h.KeysDir
	install := fmt.Sprintf("install the build host's public keys (*.pub from 'aegisbpf keygen') in %s in the base OS image: owned by root, mode 0644, directories 0755", dir)
	fi, err := os.Stat(h.path(dir))
	if err != nil {
		return fail(name, install, "no trusted key directory: %v", err)
	}
	if !fi.IsDir() {
		return fail(name, install, "%s is not a directory", dir)
	}
	// Whoever can write the directory or an ancestor can replace the keys.
	var problems []string
	for p := dir; ; p = path.Dir(p) {
		if pr := h.ownerProblem(p); pr != "" {
			problems = append(problems, pr)
		}
		if p == "/" || p == "." {
			break
		}
	}
	entries, _ := os.ReadDir(h.path(dir))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".pub") {
			if pr := h.ownerProblem(path.Join(dir, e.Name())); pr != "" {
				problems = append(problems, pr)
			}
		}
	}
	if len(problems) > 0 {
		return fail(name, "chown root:root and chmod go-w each of them: whoever can write them can make the host trust any layer or policy",
			"%s", strings.Join(problems, "; "))
	}
	ring, err := keys.LoadRing(h.path(dir))
	if err != nil {
		return fail(name, install, "%v", err)
	}
	ids := strings.Join(ring.IDs(), ", ")
	ms, err := h.mounts()
	if err != nil {
		return warn(name, "run doctor with /proc mounted", "%d key(s) in %s (%s), root-owned; cannot tell whether they are on a read-only file system: %v", len(ring), dir, ids, err)
	}
	if m, ro := readOnly(ms, dir); !ro {
		return warn(name, "ship the keys in the read-only base OS (e.g. a read-only /usr); root can replace keys on a writable file system",
			"%d key(s) in %s (%s), root-owned, but %s is mounted read-write at %s", len(ring), dir, ids, m.fstype, m.point)
	}
	return ok(name, "%d key(s) in %s (%s), root-owned, on a read-only file system", len(ring), dir, ids)
}

func (h *Host) checkPolicy() Result {
	const name = "policy"
	file := h.PolicyFile
	check := fmt.Sprintf("check it with 'aegisbpf policy check %s' and 'aegisbpf policy verify --keys %s %s'", file, h.KeysDir, file)
	if _, err := os.Stat(h.path(file)); err != nil {
		return fail(name, "activate a layer that carries it ('aegisbpf slot activate', docs/SLOTS.md), or install the policy and its signature there",
			"no installed policy: %v", err)
	}
	ring, ringErr := keys.LoadRing(h.path(h.KeysDir))
	last, err := daemon.ReadPolicySerial(h.path(daemon.DefaultStateDir))
	if err != nil {
		return fail(name, "remove the unreadable file; the agent writes it again", "reading the last applied policy serial: %v", err)
	}
	loaded, err := policy.LoadVerified(h.path(file), "", ring, h.Now(), last)
	if err != nil {
		detail := oneLine(err.Error())
		fix := check
		switch {
		case errors.Is(err, policy.ErrUnsigned):
			fix = "sign it on the build host: aegisbpf policy sign --key KEY " + file
		case errors.Is(err, policy.ErrRollback):
			fix = "install a layer whose policy serial is at least the last applied one, or roll back with 'aegisbpf slot rollback'"
		case ringErr != nil:
			detail += fmt.Sprintf(" (trusted keys: %s)", oneLine(ringErr.Error()))
		}
		return fail(name, fix, "the agent would refuse %s: %s", file, detail)
	}
	c := loaded.Compiled
	what := fmt.Sprintf("%s: serial %d, mode %s, %d rule(s)", file, c.Serial, c.Mode, len(c.Rules))
	st := loaded.Signature
	if st == nil {
		return warn(name, "sign it before any rule enforces: aegisbpf policy sign --key KEY "+file,
			"%s, not signed (allowed only because every rule is in audit mode)", what)
	}
	if left := st.NotAfterTime().Sub(h.Now()); left < expiryWarning {
		return warn(name, "sign it again with a later --not-after and ship it in a new layer",
			"%s, signed by key %s, but the signature expires on %s (in %s)", what, st.KeyID, st.NotAfter, left.Round(time.Hour))
	}
	return ok(name, "%s, signed by key %s, valid until %s", what, st.KeyID, st.NotAfter)
}

// oneLine joins a multi-line message (joined errors, policy problems).
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
