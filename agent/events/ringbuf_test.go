package events

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"
)

// TestRingbuf runs the adapter against a real ring buffer map. It needs
// permission to create BPF maps (root or CAP_BPF) and skips without it;
// records themselves can only come from a BPF program (VM tests).
func TestRingbuf(t *testing.T) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 4096})
	if err != nil {
		t.Skipf("cannot create a ring buffer map here (needs CAP_BPF): %v", err)
	}
	defer m.Close()
	rb, err := OpenRingbuf(m)
	if err != nil {
		t.Fatal(err)
	}
	var _ interface {
		RecordReader
		Waker
		Backlogger
	} = rb
	if n := rb.Backlog(); n != 0 {
		t.Errorf("Backlog of an empty ring = %d", n)
	}
	if err := rb.Wake(); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Read(); !errors.Is(err, ErrWoken) {
		t.Fatalf("Read after Wake = %v, want ErrWoken", err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := rb.Read()
		errc <- err
	}()
	if err := rb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Read across Close = %v, want ErrClosed", err)
	}
	if err := rb.Wake(); !errors.Is(err, ErrClosed) {
		t.Errorf("Wake after Close = %v", err)
	}
	if rb.Backlog() != 0 || rb.Close() != nil {
		t.Error("Backlog or a second Close after Close misbehave")
	}
}
