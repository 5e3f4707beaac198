package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/audit"
	"github.com/aegisbpf/aegisbpf/policy"
)

// auditDeps is what the audit verbs reach outside the process; tests
// replace them.
type auditDeps struct {
	journalctl string
	stdin      io.Reader
	now        func() time.Time
}

// auditCommand groups the shadow-phase analysis verbs
// (docs/ROLLOUT_PLAN.md): what the policy would have blocked, and the
// exemptions that would stop it.
func auditCommand() *Command {
	deps := auditDeps{journalctl: "journalctl", stdin: os.Stdin, now: time.Now}
	return &Command{Name: "audit", Summary: "analyse would-block events and draft exemptions", Sub: []*Command{
		{Name: "report", Summary: "would-block events by rule, object, cgroup and binary",
			Run: func(ctx context.Context, env *Env, args []string) error { return runAuditReport(ctx, env, args, deps) }},
		{Name: "suggest", Summary: "draft the cgroup exemptions that would stop them (TOML, never applied)",
			Run: func(ctx context.Context, env *Env, args []string) error { return runAuditSuggest(ctx, env, args, deps) }},
	}}
}

// auditSource holds the flags that say where events come from.
type auditSource struct {
	since      *time.Duration
	input      *string
	cgroupRoot *string
}

func addAuditSource(fs *flag.FlagSet) auditSource {
	return auditSource{
		since:      fs.Duration("since", 0, "only events of the last DURATION, e.g. 24h or 336h (default: all the journal holds)"),
		input:      fs.String("input", "", "read `FILE` of journal JSON lines (journalctl -o json) instead of the journal; - is stdin"),
		cgroupRoot: fs.String("cgroup-root", audit.DefaultCgroupRoot, "cgroup v2 tree to resolve cgroup ids against; empty to leave them unresolved (another host's journal)"),
	}
}

// load reads the events and groups them.
func (s auditSource) load(ctx context.Context, env *Env, deps auditDeps, opt audit.Options) (*audit.Report, error) {
	if *s.since < 0 {
		return nil, Usagef("audit: --since must be positive")
	}
	var in *audit.Input
	var err error
	switch *s.input {
	case "":
		opt.Source = "journal"
		j := &audit.Journal{Command: deps.journalctl, Stderr: env.Stderr}
		in, err = j.Read(ctx, *s.since)
	case "-":
		opt.Source = "stdin"
		in, err = audit.ReadJournal(deps.stdin)
		if err != nil {
			err = fmt.Errorf("stdin: %w", err)
		}
	default:
		opt.Source = *s.input
		in, err = readJournalFile(*s.input)
	}
	if err != nil {
		return nil, err
	}
	opt.Since = *s.since
	if *s.input != "" && *s.since > 0 {
		opt.Cutoff = deps.now().Add(-*s.since)
	}
	if *s.cgroupRoot != "" {
		opt.Cgroups = audit.NewCgroupTree(*s.cgroupRoot)
	}
	return audit.Build(in, opt), nil
}

func readJournalFile(name string) (*audit.Input, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	defer f.Close()
	in, err := audit.ReadJournal(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return in, nil
}

func runAuditReport(ctx context.Context, env *Env, args []string, deps auditDeps) error {
	fs := NewFlagSet(env, "audit report",
		"aegisbpf audit report [--since DURATION] [--json] [--input FILE] [--socket PATH] [--cgroup-root DIR] [--top N]")
	src := addAuditSource(fs)
	asJSON := fs.Bool("json", false, "print the whole report as one JSON document")
	sock := fs.String("socket", defaultMetricsSocket, "the agent's metrics socket, for each rule's share of all decisions")
	top := fs.Int("top", 20, "list at most N objects, cgroups and binaries per rule in the text report (0: all)")
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return Usagef("audit report takes no arguments")
	}
	if *top < 0 {
		return Usagef("audit report: --top must not be negative")
	}
	var opt audit.Options
	opt.Counters, opt.CountersErr = audit.ScrapeCounters(ctx, *sock)
	r, err := src.load(ctx, env, deps, opt)
	if err != nil {
		return err
	}
	if *asJSON {
		return r.WriteJSON(env.Stdout)
	}
	return r.WriteText(env.Stdout, *top)
}

func runAuditSuggest(ctx context.Context, env *Env, args []string, deps auditDeps) error {
	fs := NewFlagSet(env, "audit suggest",
		"aegisbpf audit suggest [--since DURATION] [--input FILE] [--policy FILE] [--cgroup-root DIR]")
	src := addAuditSource(fs)
	policyFile := fs.String("policy", "", "print this policy `FILE` with the exemptions applied (it is not written)")
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return Usagef("audit suggest takes no arguments")
	}
	var psrc []byte
	if *policyFile != "" {
		// Read and check the policy first: a bad policy needs no journal.
		var err error
		if _, psrc, err = loadPolicy(env, *policyFile); err != nil {
			return err
		}
	}
	r, err := src.load(ctx, env, deps, audit.Options{})
	if err != nil {
		return err
	}
	if psrc == nil {
		_, err = env.Stdout.Write(audit.Suggest(r))
		return err
	}
	out, err := audit.SuggestPolicy(r, *policyFile, psrc)
	var probs policy.Problems
	if errors.As(err, &probs) {
		return fmt.Errorf("%s: %w", *policyFile, err)
	}
	if err != nil {
		return err
	}
	_, err = env.Stdout.Write(out)
	return err
}
