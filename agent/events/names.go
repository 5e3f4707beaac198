package events

// Values of enum aegis_hook, enum aegis_action, enum aegis_access and enum
// aegis_stat in bpf/abi.h (bpf2go generates structs, not enums);
// TestNamesMatchABI parses abi.h so that they cannot drift.
const (
	HookFileOpen     uint8 = 0
	HookExec         uint8 = 1
	HookMmapExec     uint8 = 2
	HookMprotectExec uint8 = 3
	HookRename       uint8 = 4
	HookUnlink       uint8 = 5
	HookLink         uint8 = 6
	// HookProtect: policy protections (ptrace, module loading) and ptrace
	// of the agent; Access holds the protection kind (ProtectName).
	HookProtect uint8 = 7
	HookConnect uint8 = 8
	HookSendmsg uint8 = 9
	// HookSignal: a signal to the agent; Ino is the target PID, Dev the
	// signal number.
	HookSignal uint8 = 10
	// HookBPF: bpf() access to the agent's objects; Access is the object
	// kind (1 map, 2 link), Ino its id, Dev the bpf command.
	HookBPF    uint8 = 11
	HookUmount uint8 = 12
	// HookMax bounds the hook values: the decisions map has HookMax*ActionMax slots.
	HookMax uint8 = 16

	ActionAllow      uint8 = 0
	ActionDeny       uint8 = 1
	ActionAudit      uint8 = 2
	ActionUnresolved uint8 = 3
	ActionMax        uint8 = 4

	AccessRead  uint8 = 0
	AccessWrite uint8 = 1
	AccessExec  uint8 = 2
	AccessMax   uint8 = 3

	StatRingbufDrops uint32 = 0
	StatUnresolved   uint32 = 1
	StatMax          uint32 = 4

	// NoRule is the rule index of a decision no rule made (AEGIS_NO_RULE).
	NoRule uint32 = 0xffffffff
)

const unknownName = "unknown"

// Address families and IP protocols of network events.
const (
	familyInet  = 2  // AF_INET
	familyInet6 = 10 // AF_INET6
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

// HookName returns the name of an enum aegis_hook value, "unknown" for a
// value this build does not know. The names are the values of the hook
// label in metrics and of AEGIS_HOOK in the journal.
func HookName(h uint8) string {
	switch h {
	case HookFileOpen:
		return "file_open"
	case HookExec:
		return "exec"
	case HookMmapExec:
		return "mmap_exec"
	case HookMprotectExec:
		return "mprotect_exec"
	case HookRename:
		return "rename"
	case HookUnlink:
		return "unlink"
	case HookLink:
		return "link"
	case HookProtect:
		return "protect"
	case HookConnect:
		return "connect"
	case HookSendmsg:
		return "sendmsg"
	case HookSignal:
		return "signal"
	case HookBPF:
		return "bpf"
	case HookUmount:
		return "umount"
	}
	return unknownName
}

// ActionName returns the name of an enum aegis_action value: allow, deny
// (enforced, -EPERM), audit (allowed, would have been denied), unresolved
// (the object could not be resolved within the walk bound; denied in
// enforce mode), or "unknown".
func ActionName(a uint8) string {
	switch a {
	case ActionAllow:
		return "allow"
	case ActionDeny:
		return "deny"
	case ActionAudit:
		return "audit"
	case ActionUnresolved:
		return "unresolved"
	}
	return unknownName
}

// AccessName returns the name of an enum aegis_access value, or "unknown".
func AccessName(a uint8) string {
	switch a {
	case AccessRead:
		return "read"
	case AccessWrite:
		return "write"
	case AccessExec:
		return "exec"
	}
	return unknownName
}

// Protection kinds (enum aegis_protect), the access of HookProtect events.
const (
	ProtectPtrace     uint8 = 1
	ProtectModuleLoad uint8 = 2
	ProtectAgent      uint8 = 3
)

// ProtectName names a protection kind: ptrace, module_load, agent (ptrace
// of the agent), or "unknown".
func ProtectName(k uint8) string {
	switch k {
	case ProtectPtrace:
		return "ptrace"
	case ProtectModuleLoad:
		return "module_load"
	case ProtectAgent:
		return "agent"
	}
	return unknownName
}

// ProtocolName names the IP protocols network events carry.
func ProtocolName(p uint8) string {
	switch p {
	case 0:
		return ""
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case protoICMP:
		return "icmp"
	case protoICMPv6:
		return "icmpv6"
	case protoSCTP:
		return "sctp"
	}
	return unknownName
}
