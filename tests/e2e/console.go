package e2e

import (
	"bufio"
	"io"
	"os"
	"strings"
	"sync"
)

// consoleTailBytes is how much of the console a VM keeps in memory.
const consoleTailBytes = 256 << 10

// console copies the guest's serial output to a log file and an optional
// writer, and keeps its tail for error messages.
type console struct {
	mu   sync.Mutex
	tail []byte
	done chan struct{}
}

// run copies r until it ends; it closes c.done when finished.
func (c *console) run(r io.Reader, file *os.File, live io.Writer) {
	defer close(c.done)
	defer file.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	buf := make([]byte, 32<<10)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			file.Write(buf[:n])
			if live != nil {
				live.Write(buf[:n])
			}
			c.mu.Lock()
			c.tail = append(c.tail, buf[:n]...)
			if len(c.tail) > consoleTailBytes {
				c.tail = append([]byte(nil), c.tail[len(c.tail)-consoleTailBytes/2:]...)
			}
			c.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// lastLines returns up to n last lines of the console, without carriage
// returns.
func (c *console) lastLines(n int) string {
	c.mu.Lock()
	s := string(c.tail)
	c.mu.Unlock()
	s = strings.ReplaceAll(s, "\r", "")
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// contains reports whether the kept console tail holds s.
func (c *console) contains(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Contains(string(c.tail), s)
}
