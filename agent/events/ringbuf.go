package events

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// Ringbuf adapts a cilium ringbuf.Reader to RecordReader, Waker and
// Backlogger. Read reuses one record buffer (ReadInto), so reading does not
// allocate; the returned slice is valid until the next Read. Read must be
// called from one goroutine; Wake, Backlog and Close from any.
type Ringbuf struct {
	r   *ringbuf.Reader
	rec ringbuf.Record // owned by Read

	mu     sync.RWMutex // guards closed against Wake and Backlog
	closed bool
}

// OpenRingbuf returns a Ringbuf reading the BPF_MAP_TYPE_RINGBUF map m.
func OpenRingbuf(m *ebpf.Map) (*Ringbuf, error) {
	r, err := ringbuf.NewReader(m)
	if err != nil {
		return nil, fmt.Errorf("opening the event ring buffer: %w", err)
	}
	return &Ringbuf{r: r}, nil
}

// Read implements RecordReader. After Wake it returns ErrWoken once the
// records pending at that time are read; after Close, an error wrapping
// ErrClosed.
func (b *Ringbuf) Read() ([]byte, error) {
	if err := b.r.ReadInto(&b.rec); err != nil {
		if errors.Is(err, ringbuf.ErrFlushed) {
			return nil, ErrWoken
		}
		return nil, err
	}
	return b.rec.RawSample, nil
}

// Wake implements Waker with ringbuf.Reader.Flush.
func (b *Ringbuf) Wake() error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	return b.r.Flush()
}

// Backlog implements Backlogger: the bytes waiting in the ring buffer.
func (b *Ringbuf) Backlog() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return 0
	}
	return b.r.AvailableBytes()
}

// Close unblocks a pending Read and frees the reader. The ring buffer map
// itself belongs to the caller.
func (b *Ringbuf) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.r.Close()
}
