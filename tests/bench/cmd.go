package bench

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Counts parses a comma-separated list of positive integers (rule counts,
// rates) given to a benchmark command's flag; what names them in errors.
func Counts(what, list string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad %s %q: want a positive integer", what, s)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no %s given", what)
	}
	return out, nil
}

// MustCounts is Counts for a command's flags: a bad list exits with status 2.
func MustCounts(cmd, what, list string) []int {
	n, err := Counts(what, list)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", cmd, err)
		os.Exit(2)
	}
	return n
}

// Exit ends a benchmark command after its run: status 3 when the host
// cannot run the benchmark (ErrUnsupported), 1 on another error.
func Exit(cmd string, err error) {
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, cmd+":", err)
	if errors.Is(err, ErrUnsupported) {
		os.Exit(3)
	}
	os.Exit(1)
}
