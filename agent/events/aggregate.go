package events

import (
	"bytes"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// DefaultMaxKeys bounds the distinct entries an Aggregator keeps per
// interval, hence the journal entries per interval: 512 per 5 s is about
// 3,000 per 30 s, under journald's default per-service rate limit (10,000
// per 30 s), so journald never drops ours; what does not fit is counted in
// one overflow entry and in metrics. Two tables of this many entries
// (~380 bytes each) are allocated up front: about 0.5 MB with their maps.
const DefaultMaxKeys = 512

// Key is what makes two events "identical" for aggregation: the rule,
// hook, action and access; the task's comm, uid and cgroup; the object
// (path and inode, so that objects without a resolvable path are not
// merged) or the remote address. Pids are not part of it: a denial repeated
// by many short-lived processes is one entry with a sample pid.
//
// Key is plain memory without implicit padding, so its bytes are
// deterministic and can be hashed and compared as a block (keyBytes).
type Key struct {
	CgroupID uint64
	Ino      uint64
	Dev      uint32
	Rule     uint32
	UID      uint32
	Port     uint16
	Hook     uint8
	Action   uint8
	Access   uint8
	Family   uint8
	Protocol uint8
	Addr     [16]byte
	Comm     [16]byte
	Path     [256]byte
	pad      [5]byte // explicit, always zero: Key has no implicit padding
}

// setKey fills k from e and returns the length of its path. C strings are copied up to their NUL and the rest
// is zeroed: what follows the NUL in a ring buffer record is whatever the
// reservation held before, and must not split identical events.
func setKey(k *Key, e *bpf.AegisEvent) int {
	k.CgroupID = e.CgroupId
	k.Ino = e.Ino
	k.Dev = e.Dev
	k.Rule = e.Rule
	k.UID = e.Uid
	k.Port = e.Port
	k.Hook = e.Hook
	k.Action = e.Action
	k.Access = e.Access
	k.Family = e.Family
	k.Protocol = e.Protocol
	k.Addr = e.Addr
	n := copy(k.Comm[:], cstring(int8Bytes(e.Comm[:])))
	clear(k.Comm[n:])
	n = copy(k.Path[:], cstring(int8Bytes(e.Path[:])))
	clear(k.Path[n:])
	return n
}

// Entry is one aggregated event: Count identical events between FirstNs and
// LastNs (kernel boot-time nanoseconds), with the ids of the first one.
type Entry struct {
	Key
	Count   uint64
	FirstNs uint64
	LastNs  uint64
	Pid     uint32 // thread id of the first event
	Tgid    uint32 // process id of the first event
	Ppid    uint32
	pathLen uint16
	next    int32 // next entry with the same hash, -1 for none
}

// matches reports whether en's key has the significant bytes kb.
func (en *Entry) matches(kb []byte) bool {
	n := len(kb) - keyPathOffset
	return int(en.pathLen) == n && bytes.Equal(keyBytes(&en.Key, n), kb)
}

// count adds one event at boot time ns.
func (en *Entry) count(ns uint64) {
	en.Count++
	en.FirstNs = min(en.FirstNs, ns)
	en.LastNs = max(en.LastNs, ns)
}

// table is one interval's entries. index maps a key's hash to the first
// entry with that hash; entries with the same hash are chained by next.
type table struct {
	index    map[uint64]int32
	entries  []Entry
	last     int32 // the entry the previous Add counted, -1 for none: floods repeat one event
	overflow overflow
}

// overflow counts the events of an interval that found the table full.
type overflow struct {
	Count   uint64
	FirstNs uint64
	LastNs  uint64
}

func newTable(maxKeys int) *table {
	return &table{index: make(map[uint64]int32, maxKeys), entries: make([]Entry, 0, maxKeys), last: -1}
}

func (t *table) reset() {
	clear(t.index)
	t.entries = t.entries[:0]
	t.last = -1
	t.overflow = overflow{}
}

// keyBytes views the significant bytes of k: every field, and the path up
// to its NUL. setKey zeroes what follows the NUL, so two keys are equal
// exactly when these bytes are, and hashing them instead of all 328 bytes of
// Key makes a short path cheap.
func keyBytes(k *Key, pathLen int) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(k)), keyPathOffset+pathLen)
}

const keyPathOffset = int(unsafe.Offsetof(Key{}.Path))

// Aggregator folds identical events (same Key) into entries with a count.
// Add may be called from one goroutine while another calls Flush. Memory is
// fixed at construction: once an interval holds maxKeys distinct entries,
// further new keys are only counted (Overflow), never stored.
type Aggregator struct {
	maxKeys int

	seed maphash.Seed

	mu  sync.Mutex // guards cur and key
	cur *table
	key Key // scratch key: keeps a 328-byte value off the stack of every Add

	flushMu sync.Mutex // serializes Flush; guards spare
	spare   *table

	events   atomic.Uint64
	entries  atomic.Uint64
	overflow atomic.Uint64
	flushes  atomic.Uint64
}

// NewAggregator returns an Aggregator keeping at most maxKeys distinct
// entries per interval (DefaultMaxKeys when maxKeys <= 0).
func NewAggregator(maxKeys int) *Aggregator {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Aggregator{
		maxKeys: maxKeys, seed: maphash.MakeSeed(),
		cur: newTable(maxKeys), spare: newTable(maxKeys),
	}
}

// Add counts e. It does not allocate and does not retain e.
func (a *Aggregator) Add(e *bpf.AegisEvent) {
	a.mu.Lock()
	a.add(e)
	a.mu.Unlock()
	a.events.Add(1)
}

// add counts e in the current table; a.mu is held.
func (a *Aggregator) add(e *bpf.AegisEvent) {
	k := &a.key
	kb := keyBytes(k, setKey(k, e))
	t := a.cur
	if t.last >= 0 && t.entries[t.last].matches(kb) {
		t.entries[t.last].count(e.TimeNs)
		return
	}
	h := maphash.Bytes(a.seed, kb)
	head, ok := t.index[h]
	if !ok {
		head = -1
	}
	for i := head; i >= 0; i = t.entries[i].next {
		if t.entries[i].matches(kb) {
			t.entries[i].count(e.TimeNs)
			t.last = i
			return
		}
	}
	if len(t.entries) < a.maxKeys {
		t.last = int32(len(t.entries))
		t.index[h] = t.last
		t.entries = append(t.entries, Entry{
			Key: *k, Count: 1, FirstNs: e.TimeNs, LastNs: e.TimeNs,
			Pid: e.Pid, Tgid: e.Tgid, Ppid: e.Ppid,
			pathLen: uint16(len(kb) - keyPathOffset), next: head,
		})
		return
	}
	o := &t.overflow
	if o.Count == 0 || e.TimeNs < o.FirstNs {
		o.FirstNs = e.TimeNs
	}
	o.LastNs = max(o.LastNs, e.TimeNs)
	o.Count++
	a.overflow.Add(1)
}

// Batch is one interval's aggregated events, handed to sinks. It and its
// Entries are valid only during the Sink's Write call.
type Batch struct {
	// Start and End bound the interval (wall clock).
	Start, End time.Time
	Entries    []Entry
	// Overflow counts the events that were not itemized because the
	// interval already held MaxKeys distinct entries.
	Overflow        uint64
	OverflowFirstNs uint64
	OverflowLastNs  uint64
	// MaxKeys is the table bound in force.
	MaxKeys int
	// Rules are the rule ids of the applied policy, by rule index.
	Rules []string
	// BootOffset converts the events' boot-time nanoseconds to wall time.
	BootOffset time.Duration
}

// Time converts a kernel boot-time timestamp (bpf_ktime_get_boot_ns) of
// the batch to wall-clock time.
func (b *Batch) Time(bootNs uint64) time.Time {
	return time.Unix(0, 0).Add(b.BootOffset + time.Duration(bootNs))
}

// RuleID returns the rule id of rule index i (see Event.RuleID).
func (b *Batch) RuleID(i uint32) string { return ruleID(b.Rules, i) }

// Empty reports whether the batch has nothing to write.
func (b *Batch) Empty() bool { return len(b.Entries) == 0 && b.Overflow == 0 }

// Flush ends the current interval: it swaps in an empty table and calls
// emit with the finished one, outside the lock that Add takes, so a slow
// sink never stalls the reader. b's Start, Rules and BootOffset are the
// caller's; Flush fills the rest. Concurrent Flush calls are serialized.
func (a *Aggregator) Flush(b *Batch, emit func(*Batch)) {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	a.mu.Lock()
	done := a.cur
	a.cur = a.spare
	a.mu.Unlock()
	a.spare = done

	b.Entries = done.entries
	b.Overflow = done.overflow.Count
	b.OverflowFirstNs = done.overflow.FirstNs
	b.OverflowLastNs = done.overflow.LastNs
	b.MaxKeys = a.maxKeys
	a.flushes.Add(1)
	a.entries.Add(uint64(len(done.entries)))
	if !b.Empty() {
		emit(b)
	}
	b.Entries = nil
	done.reset()
}

// AggregatorStats are an Aggregator's cumulative counters.
type AggregatorStats struct {
	Events   uint64 // events added
	Entries  uint64 // entries handed to sinks
	Overflow uint64 // events not itemized: the interval's table was full
	Flushes  uint64
	MaxKeys  int
}

// Stats returns the cumulative counters. Safe for concurrent use.
func (a *Aggregator) Stats() AggregatorStats {
	return AggregatorStats{
		Events:   a.events.Load(),
		Entries:  a.entries.Load(),
		Overflow: a.overflow.Load(),
		Flushes:  a.flushes.Load(),
		MaxKeys:  a.maxKeys,
	}
}
