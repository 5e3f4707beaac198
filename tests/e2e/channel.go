package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/aegisbpf/aegisbpf/tests/e2e/internal/wire"
)

// ErrGuestGone marks a request that cannot be answered because the guest
// reset, rebooted, powered off, or restarted its agent while the request
// was in flight, or because the request was for a boot that has ended.
var ErrGuestGone = errors.New("the guest went away")

// channel is the host end of the control channel: it sends requests over
// the qemu chardev socket and hands each response to the caller waiting
// for its ID. Responses nobody waits for (a ping that timed out, a request
// from before a reset) are dropped.
type channel struct {
	conn net.Conn

	wmu   sync.Mutex // serialises writes
	dirty bool       // a write was cut short: end the fragment before the next line

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan *wire.Response
	err     error // set when the read loop ends
}

func newChannel(conn net.Conn) *channel {
	c := &channel{conn: conn, pending: map[uint64]chan *wire.Response{}}
	go c.readLoop()
	return c
}

func (c *channel) readLoop() {
	rd := wire.NewReader(c.conn)
	for {
		var resp wire.Response
		err := rd.Read(&resp)
		if errors.Is(err, wire.ErrBadLine) {
			continue
		}
		if err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("control channel: %w", err)
			c.mu.Unlock()
			c.failPending(fmt.Errorf("%w: the control channel closed (qemu exited?)", ErrGuestGone))
			return
		}
		c.mu.Lock()
		ch := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- &resp
		}
	}
}

// failPending ends every request in flight with err.
func (c *channel) failPending(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, ch := range c.pending {
		ch <- &wire.Response{ID: id, Err: err.Error(), Stale: true}
		delete(c.pending, id)
	}
}

// call sends req (its ID is assigned here) and waits for the answer. A
// deadline on ctx also bounds the command in the guest.
func (c *channel) call(ctx context.Context, req *wire.Request) (*wire.Response, error) {
	ch := make(chan *wire.Response, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %v", ErrGuestGone, err)
	}
	c.next++
	req.ID = c.next
	c.pending[req.ID] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, req.ID)
		c.mu.Unlock()
	}
	if dl, ok := ctx.Deadline(); ok && req.Op == wire.OpExec {
		// Leave the guest a moment to report the timeout itself.
		if ms := time.Until(dl).Milliseconds() - 500; ms > 0 {
			req.TimeoutMS = ms
		} else {
			req.TimeoutMS = 1
		}
	}
	data, err := json.Marshal(req)
	if err != nil {
		forget()
		return nil, fmt.Errorf("encoding a request: %w", err)
	}
	if err := c.write(ctx, append(data, '\n')); err != nil {
		forget()
		return nil, err
	}
	select {
	case resp := <-ch:
		if resp.Stale {
			return nil, fmt.Errorf("%w: %s", ErrGuestGone, resp.Err)
		}
		return resp, nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

// write sends one line. qemu stops reading the socket while the guest has
// the port closed, so a write may block; ctx bounds it.
func (c *channel) write(ctx context.Context, line []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Time{}
	}
	c.conn.SetWriteDeadline(dl)
	if c.dirty {
		// The guest skips the fragment as one bad line.
		line = append([]byte{'\n'}, line...)
	}
	n, err := c.conn.Write(line)
	if n > 0 {
		c.dirty = n < len(line)
	}
	if err != nil {
		return fmt.Errorf("sending a request: %w", err)
	}
	return nil
}

func (c *channel) close() error { return c.conn.Close() }
