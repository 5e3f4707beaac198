package events

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// Journal message ids (sd-id128, generated once with `systemd-id128 new`;
// never change them: operators filter on them, e.g.
// `journalctl MESSAGE_ID=ef60429a610b4c96b92c4c9dff7d4d42`).
const (
	// MessageID marks an aggregated security event (KindEvent).
	MessageID = "ef60429a610b4c96b92c4c9dff7d4d42"
	// MessageIDOverflow marks the summary of events not itemized in an
	// interval because it held MaxKeys distinct events (KindOverflow).
	MessageIDOverflow = "eb6d838a1d3248e4905e910274cce232"
)

// Journal fields of an entry, beside MESSAGE_ID, MESSAGE and PRIORITY.
const (
	FieldRule      = "AEGIS_RULE"
	FieldAction    = "AEGIS_ACTION"
	FieldHook      = "AEGIS_HOOK"
	FieldAccess    = "AEGIS_ACCESS"
	FieldPID       = "AEGIS_PID" // process id (tgid) of the first event
	FieldTID       = "AEGIS_TID"
	FieldPPID      = "AEGIS_PPID"
	FieldUID       = "AEGIS_UID"
	FieldComm      = "AEGIS_COMM"
	FieldPath      = "AEGIS_PATH"
	FieldInode     = "AEGIS_INODE"
	FieldDev       = "AEGIS_DEV"
	FieldCgroupID  = "AEGIS_CGROUP_ID"
	FieldAddr      = "AEGIS_ADDR"
	FieldProtocol  = "AEGIS_PROTOCOL"
	FieldCount     = "AEGIS_COUNT"
	FieldFirstUsec = "AEGIS_FIRST_USEC" // wall clock, microseconds since the epoch
	FieldLastUsec  = "AEGIS_LAST_USEC"
	FieldInterval  = "AEGIS_INTERVAL"
	FieldMaxKeys   = "AEGIS_MAX_KEYS"
	FieldKind      = "AEGIS_KIND"
)

// syslogIdentifier tags every entry, so `journalctl -t aegisbpf` finds them.
const syslogIdentifier = "aegisbpf"

// Priority is the journal priority of a record: warning for denials and
// unresolved objects and for overflow (something was not itemized), notice
// for audit (would-block) events.
func (r *Record) Priority() journal.Priority {
	if r.Kind == KindEvent && r.Action == ActionName(ActionAudit) {
		return journal.PriNotice
	}
	return journal.PriWarning
}

// JournalFields returns r's journal fields, MESSAGE_ID included; MESSAGE
// and PRIORITY are journal.Send's arguments (Message, Priority).
func (r *Record) JournalFields() map[string]string {
	f := map[string]string{
		"SYSLOG_IDENTIFIER": syslogIdentifier,
		FieldKind:           r.Kind,
		FieldCount:          strconv.FormatUint(r.Count, 10),
		FieldFirstUsec:      strconv.FormatInt(r.First.UnixMicro(), 10),
		FieldLastUsec:       strconv.FormatInt(r.Last.UnixMicro(), 10),
	}
	if r.Interval != 0 {
		f[FieldInterval] = time.Duration(r.Interval).String()
	}
	if r.Kind == KindOverflow {
		f["MESSAGE_ID"] = MessageIDOverflow
		f[FieldMaxKeys] = strconv.Itoa(r.MaxKeys)
		return f
	}
	f["MESSAGE_ID"] = MessageID
	set := func(k, v string) {
		if v != "" {
			f[k] = v
		}
	}
	num := func(k string, v uint64) {
		if v != 0 {
			f[k] = strconv.FormatUint(v, 10)
		}
	}
	set(FieldRule, r.Rule)
	set(FieldAction, r.Action)
	set(FieldHook, r.Hook)
	set(FieldAccess, r.Access)
	set(FieldComm, r.Comm)
	set(FieldPath, r.Path)
	set(FieldAddr, r.Addr)
	set(FieldProtocol, r.Protocol)
	num(FieldPID, uint64(r.PID))
	num(FieldTID, uint64(r.TID))
	num(FieldPPID, uint64(r.PPID))
	num(FieldInode, r.Inode)
	num(FieldDev, uint64(r.Dev))
	num(FieldCgroupID, r.CgroupID)
	if r.UID != nil {
		f[FieldUID] = strconv.FormatUint(uint64(*r.UID), 10)
	}
	return f
}

// RecordFromJournal rebuilds a Record from the fields of a journal entry
// written by JournalSink (as `journalctl -o json` shows them).
func RecordFromJournal(f map[string]string) (Record, error) {
	var r Record
	switch f["MESSAGE_ID"] {
	case MessageID:
		r.Kind = KindEvent
	case MessageIDOverflow:
		r.Kind = KindOverflow
	default:
		return r, fmt.Errorf("journal entry has MESSAGE_ID %q, not an aegisbpf event", f["MESSAGE_ID"])
	}
	var errs []error
	u64 := func(k string) uint64 {
		s, ok := f[k]
		if !ok {
			return 0
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", k, err))
		}
		return v
	}
	u32 := func(k string) uint32 {
		s, ok := f[k]
		if !ok {
			return 0
		}
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", k, err))
		}
		return uint32(v)
	}
	usec := func(k string) time.Time {
		v := u64(k)
		if v == 0 {
			return time.Time{}
		}
		return time.UnixMicro(int64(v))
	}
	r.Count = u64(FieldCount)
	r.First = usec(FieldFirstUsec)
	r.Last = usec(FieldLastUsec)
	if s, ok := f[FieldInterval]; ok {
		if err := r.Interval.UnmarshalText([]byte(s)); err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", FieldInterval, err))
		}
	}
	if r.Kind == KindOverflow {
		r.MaxKeys = int(u32(FieldMaxKeys))
		return r, errors.Join(errs...)
	}
	r.Rule = f[FieldRule]
	r.Action = f[FieldAction]
	r.Hook = f[FieldHook]
	r.Access = f[FieldAccess]
	r.Comm = f[FieldComm]
	r.Path = f[FieldPath]
	r.Addr = f[FieldAddr]
	r.Protocol = f[FieldProtocol]
	r.PID = u32(FieldPID)
	r.TID = u32(FieldTID)
	r.PPID = u32(FieldPPID)
	r.Inode = u64(FieldInode)
	r.Dev = u32(FieldDev)
	r.CgroupID = u64(FieldCgroupID)
	if _, ok := f[FieldUID]; ok {
		uid := u32(FieldUID)
		r.UID = &uid
	}
	return r, errors.Join(errs...)
}

// JournalSink writes each entry of a batch as one structured journal entry
// (MESSAGE_ID=MessageID), and the batch's overflow as one more
// (MESSAGE_ID=MessageIDOverflow). It is used by one goroutine at a time.
type JournalSink struct {
	send func(message string, priority journal.Priority, vars map[string]string) error
}

// NewJournalSink returns a sink writing to the local journal socket
// (/run/systemd/journal/socket); JournalAvailable tells whether there is one.
func NewJournalSink() *JournalSink { return &JournalSink{send: journal.Send} }

// JournalAvailable reports whether the local journal accepts entries.
func JournalAvailable() bool { return journal.Enabled() }

// Name implements Sink.
func (*JournalSink) Name() string { return "journal" }

// Write implements Sink. It sends every entry even when some fail, and
// returns the first error with the number of entries lost.
func (s *JournalSink) Write(b *Batch) error {
	var first error
	failed, total := 0, 0
	emit := func(r *Record) {
		total++
		if err := s.send(r.Message(), r.Priority(), r.JournalFields()); err != nil {
			if first == nil {
				first = err
			}
			failed++
		}
	}
	for i := range b.Entries {
		r := RecordOf(b, &b.Entries[i])
		emit(&r)
	}
	if r, ok := OverflowRecord(b); ok {
		emit(&r)
	}
	if first != nil {
		return fmt.Errorf("sending %d of %d entries to the journal: %w", failed, total, first)
	}
	return nil
}
