package tools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// maxStderr bounds the standard error kept in a CommandError.
const maxStderr = 4096

// CommandError is a program that could not run or exited non-zero.
type CommandError struct {
	Args     []string // the program path and its arguments
	ExitCode int      // -1 when the program did not exit on its own
	Stderr   string   // the tail of its standard error, trimmed
	Err      error
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("running %s: %v", CommandLine(e.Args), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// CommandLine renders args as a shell-like command line for messages,
// quoting the arguments that need it.
func CommandLine(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsFunc(a, func(r rune) bool {
			return r <= ' ' || r > '~' || strings.ContainsRune(`"'\$*?[]{}()<>|&;#~`+"`", r)
		}) {
			q[i] = strconv.Quote(a)
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}

// run executes path with args and env (nil: the process environment without
// SOURCE_DATE_EPOCH) and returns its standard output.
func run(ctx context.Context, env []string, path string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	if env == nil {
		env = childEnv()
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		ce := &CommandError{Args: append([]string{path}, args...), ExitCode: -1, Stderr: tail(stderr.Bytes()), Err: err}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ce.ExitCode = ee.ExitCode()
		}
		return stdout.Bytes(), ce
	}
	return stdout.Bytes(), nil
}

// childEnv is the process environment for a child, with a fixed locale and
// without SOURCE_DATE_EPOCH: the tools get their timestamps from explicit
// options only, so an inherited variable cannot change an image.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "SOURCE_DATE_EPOCH" || k == "LC_ALL" || k == "LANG" || strings.HasPrefix(k, "LC_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > maxStderr {
		s = "..." + s[len(s)-maxStderr:]
	}
	return s
}
