package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
)

// qmpEvent is an asynchronous QMP message, e.g. RESET or VSERPORT_CHANGE.
type qmpEvent struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

type qmpMessage struct {
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	ID     *uint64         `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	QMP json.RawMessage `json:"QMP"`
}

// qmp is a client of qemu's machine protocol. Commands may be sent from
// several goroutines; events go to onEvent, called from the read loop.
type qmp struct {
	conn    net.Conn
	onEvent func(qmpEvent)

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan qmpMessage
	err     error // set when the read loop ends
	enc     *json.Encoder
}

// newQMP negotiates capabilities on conn and starts the read loop.
func newQMP(conn net.Conn, onEvent func(qmpEvent)) (*qmp, error) {
	q := &qmp{conn: conn, onEvent: onEvent, pending: map[uint64]chan qmpMessage{}, enc: json.NewEncoder(conn)}
	dec := json.NewDecoder(conn)
	var greeting qmpMessage
	if err := dec.Decode(&greeting); err != nil || greeting.QMP == nil {
		return nil, fmt.Errorf("reading the QMP greeting: %v", err)
	}
	if err := q.enc.Encode(map[string]any{"execute": "qmp_capabilities"}); err != nil {
		return nil, fmt.Errorf("negotiating QMP: %w", err)
	}
	for {
		var m qmpMessage
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("negotiating QMP: %w", err)
		}
		if m.Error != nil {
			return nil, fmt.Errorf("negotiating QMP: %s", m.Error.Desc)
		}
		if m.Return != nil {
			break
		}
	}
	go q.readLoop(dec)
	return q, nil
}

func (q *qmp) readLoop(dec *json.Decoder) {
	for {
		var m qmpMessage
		if err := dec.Decode(&m); err != nil {
			q.mu.Lock()
			q.err = fmt.Errorf("QMP connection: %w", err)
			for id, ch := range q.pending {
				close(ch)
				delete(q.pending, id)
			}
			q.mu.Unlock()
			return
		}
		if m.Event != "" {
			if q.onEvent != nil {
				q.onEvent(qmpEvent{Event: m.Event, Data: m.Data})
			}
			continue
		}
		if m.ID == nil {
			continue
		}
		q.mu.Lock()
		ch := q.pending[*m.ID]
		delete(q.pending, *m.ID)
		q.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
}

// execute runs one QMP command and returns its "return" value.
func (q *qmp) execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	ch := make(chan qmpMessage, 1)
	q.mu.Lock()
	if q.err != nil {
		err := q.err
		q.mu.Unlock()
		return nil, err
	}
	q.next++
	id := q.next
	q.pending[id] = ch
	msg := map[string]any{"execute": command, "id": id}
	if args != nil {
		msg["arguments"] = args
	}
	err := q.enc.Encode(msg)
	q.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("sending QMP %s: %w", command, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("QMP %s: the connection closed", command)
		}
		if m.Error != nil {
			return nil, fmt.Errorf("QMP %s: %s: %s", command, m.Error.Class, m.Error.Desc)
		}
		return m.Return, nil
	case <-ctx.Done():
		q.mu.Lock()
		delete(q.pending, id)
		q.mu.Unlock()
		return nil, fmt.Errorf("QMP %s: %w", command, ctx.Err())
	}
}

func (q *qmp) close() error { return q.conn.Close() }
