package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
)

// Env is what a verb may touch of the process.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	Log    *slog.Logger
	// Getenv reads the environment; tests replace it.
	Getenv func(string) string
}

// Command is a verb or a group of verbs.
type Command struct {
	Name    string
	Summary string
	// Run executes a leaf verb with the arguments after its name.
	Run func(ctx context.Context, env *Env, args []string) error
	// Sub holds the verbs of a group; a group has no Run.
	Sub []*Command
}

// UsageError marks an error in how the command was called (exit code 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a *UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Root returns the command tree of aegisbpf.
func Root() *Command {
	return &Command{
		Name: "aegisbpf",
		Sub: []*Command{
			versionCommand(),
			keygenCommand(),
			policyCommand(),
			imageCommand(),
			statusCommand(),
			eventsCommand(),
			runCommand(),
			applianceCommand(),
			metricsCommand(),
			slotCommand(),
			doctorCommand(),
			auditCommand(),
			updateCommand(),
			channelCommand(),
		},
	}
}

// Main runs the command line args (without the program name) and returns
// the process exit code: 0 success, 1 failure, 2 usage error.
func Main(ctx context.Context, env *Env, args []string) int {
	err := Root().Execute(ctx, env, args)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(env.Stderr, "aegisbpf: %v\n", err)
	var ue *UsageError
	if errors.As(err, &ue) {
		return 2
	}
	var xe *ExitError
	if errors.As(err, &xe) {
		return xe.Code
	}
	return 1
}

// Execute dispatches args to the verb they name.
func (c *Command) Execute(ctx context.Context, env *Env, args []string) error {
	return c.execute(ctx, env, args, c.Name)
}

func (c *Command) execute(ctx context.Context, env *Env, args []string, path string) error {
	if c.Run != nil {
		return c.Run(ctx, env, args)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		c.usage(env.Stdout, path)
		if len(args) == 0 {
			return Usagef("%s: missing verb", path)
		}
		return flag.ErrHelp
	}
	for _, s := range c.Sub {
		if s.Name == args[0] {
			return s.execute(ctx, env, args[1:], path+" "+s.Name)
		}
	}
	return Usagef("%s: unknown verb %q (try '%s --help')", path, args[0], path)
}

func (c *Command) usage(w io.Writer, path string) {
	fmt.Fprintf(w, "Usage: %s VERB [flags] [args]\n\nVerbs:\n", path)
	subs := append([]*Command(nil), c.Sub...)
	sort.Slice(subs, func(i, j int) bool { return subs[i].Name < subs[j].Name })
	for _, s := range subs {
		fmt.Fprintf(w, "  %-12s %s\n", s.Name, s.Summary)
	}
}

// NewFlagSet returns a flag set for a verb that reports errors as usage
// errors and prints help to env.Stdout.
func NewFlagSet(env *Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stdout)
	fs.Usage = func() {
		fmt.Fprintf(env.Stdout, "Usage: %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// ParseFlags parses args and wraps a bad flag as a usage error.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &UsageError{Msg: fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	return nil
}

// Join formats a list of names for messages.
func Join(names []string) string { return strings.Join(names, ", ") }
