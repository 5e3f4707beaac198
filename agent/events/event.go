package events

import (
	"net/netip"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// Event is a read-only view of a decoded bpf.AegisEvent with names for its
// enums and Go strings for its C strings. Convert with View; the methods that
// return strings allocate, so the hot path uses the raw fields instead.
type Event bpf.AegisEvent

// View returns e as an *Event without copying.
func View(e *bpf.AegisEvent) *Event { return (*Event)(e) }

// HookName names the LSM hook that decided (see HookName).
func (e *Event) HookName() string { return HookName(e.Hook) }

// ActionName names the decision (see ActionName).
func (e *Event) ActionName() string { return ActionName(e.Action) }

// AccessName names the access kind (see AccessName).
func (e *Event) AccessName() string { return AccessName(e.Access) }

// CommString returns the task's command name.
func (e *Event) CommString() string { return string(cstring(int8Bytes(e.Comm[:]))) }

// PathString returns the object's path as the kernel resolved it, empty for
// network events and for objects without a resolvable path.
func (e *Event) PathString() string { return string(cstring(int8Bytes(e.Path[:]))) }

// RuleID returns the id of the rule that decided, given the rule ids of the
// applied policy indexed by rule index; "" for NoRule (an unresolved
// object) and "#<index>" for an index outside rules.
func (e *Event) RuleID(rules []string) string { return ruleID(rules, e.Rule) }

// AddrPort returns the remote address of a network event; ok is false for
// other events.
func (e *Event) AddrPort() (ap netip.AddrPort, ok bool) {
	return addrPort(e.Family, &e.Addr, e.Port)
}

func addrPort(family uint8, addr *[16]uint8, port uint16) (netip.AddrPort, bool) {
	switch family {
	case familyInet:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr[:4])), port), true
	case familyInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(*addr), port), true
	}
	return netip.AddrPort{}, false
}
