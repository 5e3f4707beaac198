package events

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kinds of Record.
const (
	KindEvent    = "event"    // Count identical events
	KindOverflow = "overflow" // Count events not itemized in an interval
)

// Record is one aggregated entry as sinks write it and `aegisbpf events`
// reads it back: the shape of a JSON line, and the source of the journal
// fields (JournalFields, RecordFromJournal).
type Record struct {
	Kind     string    `json:"kind"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	Count    uint64    `json:"count"`
	Rule     string    `json:"rule,omitempty"`
	Action   string    `json:"action,omitempty"`
	Hook     string    `json:"hook,omitempty"`
	Access   string    `json:"access,omitempty"`
	PID      uint32    `json:"pid,omitempty"` // process (tgid) of the first event
	TID      uint32    `json:"tid,omitempty"` // thread of the first event
	PPID     uint32    `json:"ppid,omitempty"`
	UID      *uint32   `json:"uid,omitempty"` // nil for overflow records
	Comm     string    `json:"comm,omitempty"`
	Path     string    `json:"path,omitempty"`
	Inode    uint64    `json:"inode,omitempty"`
	Dev      uint32    `json:"dev,omitempty"` // kernel dev_t: MAJOR<<20 | MINOR
	CgroupID uint64    `json:"cgroup_id,omitempty"`
	Addr     string    `json:"addr,omitempty"` // network events: address:port
	Protocol string    `json:"protocol,omitempty"`
	// MaxKeys is the per-interval bound, on overflow records.
	MaxKeys int `json:"max_keys,omitempty"`
	// Interval is the aggregation interval the record summarizes.
	Interval Duration `json:"interval,omitempty"`
}

// Duration is a time.Duration that marshals as its string form ("5s").
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// RecordOf returns the record of entry e of batch b.
func RecordOf(b *Batch, e *Entry) Record {
	uid := e.UID
	r := Record{
		Kind:     KindEvent,
		First:    b.Time(e.FirstNs),
		Last:     b.Time(e.LastNs),
		Count:    e.Count,
		Rule:     b.RuleID(e.Rule),
		Action:   ActionName(e.Action),
		Hook:     HookName(e.Hook),
		Access:   accessName(e.Hook, e.Access, e.Dev),
		PID:      e.Tgid,
		TID:      e.Pid,
		PPID:     e.Ppid,
		UID:      &uid,
		Comm:     string(cstring(e.Comm[:])),
		Path:     string(cstring(e.Path[:])),
		Inode:    e.Ino,
		Dev:      e.Dev,
		CgroupID: e.CgroupID,
		Interval: Duration(b.End.Sub(b.Start).Round(time.Millisecond)),
	}
	if ap, ok := addrPort(e.Family, &e.Addr, e.Port); ok {
		r.Addr = ap.String()
		r.Protocol = ProtocolName(e.Protocol)
		r.Access = "" // network events have no file access kind
	}
	return r
}

// accessName names the access field of an event of hook: the file access
// kind, the protection kind, the signal, or the bpf object kind.
func accessName(hook, access uint8, dev uint32) string {
	switch hook {
	case HookProtect:
		return ProtectName(access)
	case HookSignal:
		return "SIG" + strconv.FormatUint(uint64(dev), 10)
	case HookBPF:
		switch access {
		case 1:
			return "map"
		case 2:
			return "link"
		}
		return unknownName
	case HookUmount:
		return ""
	}
	return AccessName(access)
}

// OverflowRecord returns the summary record of b's overflow; ok is false
// when nothing overflowed.
func OverflowRecord(b *Batch) (r Record, ok bool) {
	if b.Overflow == 0 {
		return Record{}, false
	}
	return Record{
		Kind:     KindOverflow,
		First:    b.Time(b.OverflowFirstNs),
		Last:     b.Time(b.OverflowLastNs),
		Count:    b.Overflow,
		MaxKeys:  b.MaxKeys,
		Interval: Duration(b.End.Sub(b.Start).Round(time.Millisecond)),
	}, true
}

// Message is the one-line human form of r, the journal's MESSAGE.
func (r *Record) Message() string {
	if r.Kind == KindOverflow {
		return fmt.Sprintf("%d more events in %s not itemized: the interval already held %d distinct events",
			r.Count, time.Duration(r.Interval), r.MaxKeys)
	}
	var sb strings.Builder
	sb.WriteString(r.Action)
	sb.WriteByte(' ')
	sb.WriteString(r.Hook)
	if r.Access != "" {
		sb.WriteString(" (")
		sb.WriteString(r.Access)
		sb.WriteByte(')')
	}
	switch {
	case r.Hook == HookName(HookSignal) || (r.Hook == HookName(HookProtect) && r.Access == ProtectName(ProtectAgent)):
		fmt.Fprintf(&sb, " of agent pid %d", r.Inode)
	case r.Hook == HookName(HookBPF):
		fmt.Fprintf(&sb, " of agent %s id %d", r.Access, r.Inode)
	case r.Path != "":
		sb.WriteString(" of ")
		sb.WriteString(r.Path)
	case r.Addr != "":
		sb.WriteString(" to ")
		sb.WriteString(r.Addr)
		if r.Protocol != "" {
			sb.WriteString("/" + r.Protocol)
		}
	case r.Inode != 0:
		fmt.Fprintf(&sb, " of inode %d on dev %d:%d", r.Inode, r.Dev>>20, r.Dev&(1<<20-1))
	}
	fmt.Fprintf(&sb, " by %s[%d]", r.Comm, r.PID)
	if r.UID != nil {
		fmt.Fprintf(&sb, " uid %d", *r.UID)
	}
	if r.Rule != "" {
		fmt.Fprintf(&sb, " rule %s", r.Rule)
	}
	if r.Count > 1 {
		fmt.Fprintf(&sb, " (%d times in %s)", r.Count, r.Last.Sub(r.First).Round(time.Millisecond))
	}
	return sb.String()
}

func ruleID(rules []string, i uint32) string {
	if i == NoRule {
		return ""
	}
	if int64(i) < int64(len(rules)) {
		return rules[i]
	}
	return "#" + strconv.FormatUint(uint64(i), 10)
}
