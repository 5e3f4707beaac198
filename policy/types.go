package policy

import (
	"fmt"
	"strings"
)

// The enumerations below have fixed numeric values: they appear in the
// canonical encoding behind the policy digest and in the kernel's maps.
// Zero is never a valid value (except ProtoAny, which is IANA's "any"), so
// an unset field cannot pass for a real one.

// Mode says what a matching rule does: audit allows and reports, enforce
// denies (-EPERM) and reports.
type Mode uint8

// Modes.
const (
	ModeAudit   Mode = 1
	ModeEnforce Mode = 2
)

func (m Mode) String() string {
	switch m {
	case ModeAudit:
		return "audit"
	case ModeEnforce:
		return "enforce"
	}
	return invalidEnum(uint8(m))
}

// MarshalText implements encoding.TextMarshaler.
func (m Mode) MarshalText() ([]byte, error) { return marshalEnum(m.String()) }

func parseMode(s string) (Mode, bool) {
	switch s {
	case "audit":
		return ModeAudit, true
	case "enforce":
		return ModeEnforce, true
	}
	return 0, false
}

// Kind is the kind of a rule, named after its TOML array of tables.
type Kind uint8

// Rule kinds.
const (
	KindFile    Kind = 1
	KindExec    Kind = 2
	KindNetwork Kind = 3
	KindProtect Kind = 4
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindExec:
		return "exec"
	case KindNetwork:
		return "network"
	case KindProtect:
		return "protect"
	}
	return invalidEnum(uint8(k))
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) { return marshalEnum(k.String()) }

// Access is a bit mask of the file accesses a file rule denies.
type Access uint8

// Access bits; AccessAny is both.
const (
	AccessRead  Access = 1
	AccessWrite Access = 2
	AccessAny   Access = AccessRead | AccessWrite
)

func (a Access) String() string {
	switch a {
	case AccessRead:
		return "read"
	case AccessWrite:
		return "write"
	case AccessAny:
		return "any"
	}
	return invalidEnum(uint8(a))
}

// MarshalText implements encoding.TextMarshaler.
func (a Access) MarshalText() ([]byte, error) { return marshalEnum(a.String()) }

func parseAccess(s string) (Access, bool) {
	switch s {
	case "read":
		return AccessRead, true
	case "write":
		return AccessWrite, true
	case "any":
		return AccessAny, true
	}
	return 0, false
}

// Match says how a file or exec target matches.
type Match uint8

// Matches.
const (
	// MatchExact matches one file, whatever name reaches it.
	MatchExact Match = 1
	// MatchSubtree matches a directory and everything below it.
	MatchSubtree Match = 2
	// MatchInode matches one (device, inode) pair.
	MatchInode Match = 3
)

func (m Match) String() string {
	switch m {
	case MatchExact:
		return "exact"
	case MatchSubtree:
		return "subtree"
	case MatchInode:
		return "inode"
	}
	return invalidEnum(uint8(m))
}

// MarshalText implements encoding.TextMarshaler.
func (m Match) MarshalText() ([]byte, error) { return marshalEnum(m.String()) }

// Protocol is the transport protocol a network rule matches, as its IANA
// number; ProtoAny matches every protocol.
type Protocol uint8

// Protocols.
const (
	ProtoAny Protocol = 0
	ProtoTCP Protocol = 6
	ProtoUDP Protocol = 17
)

func (p Protocol) String() string {
	switch p {
	case ProtoAny:
		return "any"
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return invalidEnum(uint8(p))
}

// MarshalText implements encoding.TextMarshaler.
func (p Protocol) MarshalText() ([]byte, error) { return marshalEnum(p.String()) }

func parseProtocol(s string) (Protocol, bool) {
	switch s {
	case "any":
		return ProtoAny, true
	case "tcp":
		return ProtoTCP, true
	case "udp":
		return ProtoUDP, true
	}
	return 0, false
}

// ProtectKind is what a protect rule guards.
type ProtectKind uint8

// Protections.
const (
	// ProtectPtrace denies ptrace of another process (attach, seize, and
	// the access checks behind /proc/PID/mem and process_vm_readv).
	ProtectPtrace ProtectKind = 1
	// ProtectModuleLoad denies loading kernel modules (init_module,
	// finit_module, and request_module auto-loading).
	ProtectModuleLoad ProtectKind = 2
	// ProtectAgent denies bpf() access to the agent's maps, programs and
	// links, and signals aimed at the agent, except from the exempt PIDs.
	ProtectAgent ProtectKind = 3
)

func (p ProtectKind) String() string {
	switch p {
	case ProtectPtrace:
		return "ptrace"
	case ProtectModuleLoad:
		return "module_load"
	case ProtectAgent:
		return "agent"
	}
	return invalidEnum(uint8(p))
}

// MarshalText implements encoding.TextMarshaler.
func (p ProtectKind) MarshalText() ([]byte, error) { return marshalEnum(p.String()) }

func parseProtectKind(s string) (ProtectKind, bool) {
	switch s {
	case "ptrace":
		return ProtectPtrace, true
	case "module_load":
		return ProtectModuleLoad, true
	case "agent":
		return ProtectAgent, true
	}
	return 0, false
}

const invalidPrefix = "invalid("

func invalidEnum(v uint8) string { return fmt.Sprintf("%s%d)", invalidPrefix, v) }

func marshalEnum(s string) ([]byte, error) {
	if strings.HasPrefix(s, invalidPrefix) {
		return nil, fmt.Errorf("encoding enumeration: %s", s)
	}
	return []byte(s), nil
}

// choices formats spellings for messages: `"a", "b" or "c"`.
func choices(names ...string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
