package wire

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// PortName is the virtio-serial port name; the guest sees the port as
// /dev/virtio-ports/PortName.
const PortName = "org.aegisbpf.ctl"

// Operations.
const (
	OpPing  = "ping"  // report the boot id; valid for any boot
	OpExec  = "exec"  // run Cmd with /bin/sh -c
	OpWrite = "write" // write Data to Path with Mode, atomically
	OpRead  = "read"  // return the contents of Path
)

// MaxLine bounds one message, base64 included.
const MaxLine = 256 << 20

// Request is one host-to-guest message.
type Request struct {
	ID   uint64 `json:"id"`
	Op   string `json:"op"`
	Boot string `json:"boot,omitempty"` // the boot id this request is for; empty only for ping

	Cmd       string `json:"cmd,omitempty"`
	Stdin     []byte `json:"stdin,omitempty"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"` // 0: no guest-side limit

	Path string `json:"path,omitempty"`
	Data []byte `json:"data,omitempty"`
	Mode uint32 `json:"mode,omitempty"`
}

// Response answers the Request with the same ID.
type Response struct {
	ID   uint64 `json:"id"`
	Boot string `json:"boot"` // the guest's boot id

	// Err says why the operation could not be carried out. A command that
	// ran and failed is not an Err: see Exit.
	Err   string `json:"err,omitempty"`
	Stale bool   `json:"stale,omitempty"` // refused: the request was for another boot

	Exit     int    `json:"exit"`
	TimedOut bool   `json:"timed_out,omitempty"`
	Stdout   []byte `json:"stdout,omitempty"`
	Stderr   []byte `json:"stderr,omitempty"`
	Data     []byte `json:"data,omitempty"`

	UptimeMS int64 `json:"uptime_ms,omitempty"` // ping: the guest's CLOCK_BOOTTIME
}

// Writer writes messages; it is safe for concurrent use.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write sends one message as one line.
func (w *Writer) Write(msg any) error {
	data, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encoding a message: %w", err)
	}
	data = append(data, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.w.Write(data); err != nil {
		return fmt.Errorf("sending a message: %w", err)
	}
	return nil
}

// Reader reads messages. It is not safe for concurrent use.
type Reader struct {
	r *bufio.Reader
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 64<<10)} }

// ErrBadLine marks a line that is not a message (a fragment left from
// before a reboot, say); the reader stays usable after it.
var ErrBadLine = errors.New("bad line on the control channel")

// Read decodes the next line into msg.
func (r *Reader) Read(msg any) error {
	line, err := r.readLine()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(line, msg); err != nil {
		return fmt.Errorf("%w: %v (%d bytes)", ErrBadLine, err, len(line))
	}
	return nil
}

func (r *Reader) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxLine {
			// Skip the rest of this line, then report it.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.r.ReadSlice('\n')
			}
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: longer than %d bytes", ErrBadLine, MaxLine)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}
