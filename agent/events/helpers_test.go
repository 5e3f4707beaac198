package events

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// encode is Decode's inverse, for tests: struct event as the kernel writes it.
func encode(e *bpf.AegisEvent) []byte {
	b := make([]byte, RecordSize)
	le := binary.LittleEndian
	le.PutUint64(b[offTimeNs:], e.TimeNs)
	le.PutUint64(b[offCgroupID:], e.CgroupId)
	le.PutUint64(b[offIno:], e.Ino)
	le.PutUint32(b[offDev:], e.Dev)
	le.PutUint32(b[offPid:], e.Pid)
	le.PutUint32(b[offTgid:], e.Tgid)
	le.PutUint32(b[offPpid:], e.Ppid)
	le.PutUint32(b[offUID:], e.Uid)
	le.PutUint32(b[offRule:], e.Rule)
	b[offHook] = e.Hook
	b[offAction] = e.Action
	b[offAccess] = e.Access
	b[offFamily] = e.Family
	le.PutUint16(b[offPort:], e.Port)
	b[offProtocol] = e.Protocol
	b[offProtocol+1] = e.Pad0
	copy(b[offAddr:], e.Addr[:])
	copy(b[offComm:], int8Bytes(e.Comm[:]))
	copy(b[offPath:], int8Bytes(e.Path[:]))
	return b
}

// sample returns a denial of path by comm, at boot time ns.
func sample(comm, path string, ns uint64) bpf.AegisEvent {
	e := bpf.AegisEvent{
		TimeNs: ns, CgroupId: 4242, Ino: 131, Dev: 8<<20 | 1,
		Pid: 1001, Tgid: 1000, Ppid: 1, Uid: 1000, Rule: 0,
		Hook: HookFileOpen, Action: ActionDeny, Access: AccessRead,
	}
	copy(int8Bytes(e.Comm[:]), comm)
	copy(int8Bytes(e.Path[:]), path)
	return e
}

// fakeReader is a RecordReader and Waker fed through a channel.
type fakeReader struct {
	ch     chan []byte
	wake   chan struct{}
	closed chan struct{}
	once   sync.Once
	woken  bool // owned by Read
	fail   chan error
}

func newFakeReader(buf int) *fakeReader {
	return &fakeReader{
		ch: make(chan []byte, buf), wake: make(chan struct{}, 1),
		closed: make(chan struct{}), fail: make(chan error, 1),
	}
}

func (f *fakeReader) Read() ([]byte, error) {
	if f.woken {
		select {
		case b := <-f.ch:
			return b, nil
		default:
			f.woken = false
			return nil, ErrWoken
		}
	}
	select {
	case b := <-f.ch:
		return b, nil
	case <-f.wake:
		f.woken = true
		return f.Read()
	case err := <-f.fail:
		return nil, err
	case <-f.closed:
		return nil, fmt.Errorf("fake reader: %w", ErrClosed)
	}
}

func (f *fakeReader) Wake() error {
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return nil
}

func (f *fakeReader) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

// plainReader hides Wake: a reader that can only be closed.
type plainReader struct{ f *fakeReader }

func (p plainReader) Read() ([]byte, error) { return p.f.Read() }
func (p plainReader) Close() error          { return p.f.Close() }

// handlerFunc adapts a func to Handler.
type handlerFunc func(*bpf.AegisEvent)

func (h handlerFunc) Add(e *bpf.AegisEvent) { h(e) }

// memSink keeps records.
type memSink struct {
	mu      sync.Mutex
	records []Record
	batches int
}

func (*memSink) Name() string { return "mem" }

func (s *memSink) Write(b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	for i := range b.Entries {
		s.records = append(s.records, RecordOf(b, &b.Entries[i]))
	}
	if r, ok := OverflowRecord(b); ok {
		s.records = append(s.records, r)
	}
	return nil
}

func (s *memSink) snapshot() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}
