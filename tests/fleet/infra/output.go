package infra

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// tailKeep is how many bytes of a server's output lineWriter keeps.
const tailKeep = 16 << 10

// lineWriter copies a server's output to a log shared with other servers,
// a whole line at a time with the server's name before it, and keeps the
// last tailKeep bytes for errors. It is safe for concurrent use; the log
// it writes to must be too when several servers share it.
type lineWriter struct {
	prefix string
	log    io.Writer

	mu      sync.Mutex
	partial []byte // an unfinished last line
	kept    []byte // the end of the output
}

func newLineWriter(prefix string, log io.Writer) *lineWriter {
	return &lineWriter{prefix: prefix, log: log}
}

// Write implements io.Writer. It never fails: a log that does is ignored,
// so a full disk does not stop a server.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.kept = append(w.kept, p...)
	if over := len(w.kept) - tailKeep; over > 0 {
		w.kept = append(w.kept[:0], w.kept[over:]...)
	}
	w.partial = append(w.partial, p...)
	var out []byte
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		out = append(out, w.prefix...)
		out = append(out, w.partial[:i+1]...)
		w.partial = w.partial[i+1:]
	}
	if len(w.partial) > tailKeep { // a line that long is cut
		out = append(append(append(out, w.prefix...), w.partial...), '\n')
		w.partial = nil
	}
	w.partial = append([]byte(nil), w.partial...)
	if len(out) > 0 {
		w.log.Write(out)
	}
	return len(p), nil
}

// flush writes an unfinished last line.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.log.Write(append(append([]byte(w.prefix), w.partial...), '\n'))
		w.partial = nil
	}
}

// tail returns the last n lines of the output.
func (w *lineWriter) tail(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := strings.Split(strings.TrimRight(string(w.kept), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
