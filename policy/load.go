package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/aegisbpf/aegisbpf/policy/keys"
	"github.com/aegisbpf/aegisbpf/policy/sign"
)

// ErrRollback is wrapped by the error CheckSerial returns.
var ErrRollback = errors.New("policy serial rollback")

// ErrUnsigned is wrapped by the error LoadVerified returns for an unsigned
// policy that enforces.
var ErrUnsigned = errors.New("policy is not signed")

// CheckSerial refuses a policy whose serial is lower than the last one
// applied on this host. An equal serial is accepted: it is the same policy
// applied again, e.g. after a restart.
func CheckSerial(serial, lastApplied uint64) error {
	if serial < lastApplied {
		return fmt.Errorf("%w: policy serial %d is lower than the last applied serial %d", ErrRollback, serial, lastApplied)
	}
	return nil
}

// Loaded is a policy that LoadVerified accepted.
type Loaded struct {
	Compiled *Compiled
	// Signature is the verified statement, or nil for an unsigned policy.
	Signature *sign.Statement
	// Warnings holds what the agent should log: today only that an
	// audit-only policy runs unsigned.
	Warnings []string
}

// LoadVerified reads, verifies and compiles the policy at policyPath, as
// the agent does at start-up. sigPath is its detached signature; when
// empty it is policyPath + ".sig". now is the current time and lastSerial
// the serial of the last policy applied on this host.
//
// A policy whose rules all run in audit mode may be unsigned (no signature
// file): it is loaded with a warning. A policy with any rule in enforce
// mode must be signed. A signature file that exists is always verified,
// whatever the mode, and any failure refuses the policy; it is verified
// before the policy is parsed, so unauthenticated bytes reach the parser
// only when there is no signature at all.
func LoadVerified(policyPath, sigPath string, ring keys.Ring, now time.Time, lastSerial uint64) (*Loaded, error) {
	if sigPath == "" {
		sigPath = policyPath + ".sig"
	}
	src, err := ReadFile(policyPath)
	if err != nil {
		return nil, err
	}
	// Authenticate the bytes before parsing them, when they are signed.
	var st *sign.Statement
	envelope, err := sign.ReadFile(sigPath)
	switch {
	case err == nil:
		if st, err = sign.VerifyBytes(envelope, src, ring, now); err != nil {
			return nil, fmt.Errorf("verifying %s: %w", sigPath, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	p, err := Parse(policyPath, src)
	if err != nil {
		return nil, fmt.Errorf("policy %s is invalid:\n%w", policyPath, err)
	}
	if st != nil {
		if err := st.CheckSerial(p.Serial()); err != nil {
			return nil, fmt.Errorf("verifying %s: %w", sigPath, err)
		}
	}
	if err := CheckSerial(p.Serial(), lastSerial); err != nil {
		return nil, fmt.Errorf("loading policy %s: %w", policyPath, err)
	}
	c := Compile(p)
	if st != nil {
		return &Loaded{Compiled: c, Signature: st}, nil
	}
	if c.Enforces() {
		return nil, fmt.Errorf("loading policy %s: %w: %s does not exist, and an enforcing policy must be signed (aegisbpf policy sign)",
			policyPath, ErrUnsigned, sigPath)
	}
	return &Loaded{Compiled: c, Warnings: []string{
		fmt.Sprintf("policy %s is not signed (no %s); running it because every rule is in audit mode", policyPath, sigPath),
	}}, nil
}
