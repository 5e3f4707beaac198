// Package audit analyses the agent's would-block events for policy tuning
// (the shadow phase of docs/ROLLOUT_PLAN.md): it reads aggregated events
// back from the journal (`journalctl -o json` lines), groups the audit
// events by rule, object, cgroup and binary (Build, Report), relates them
// to the agent's decision counters (Counters), and drafts the cgroup
// exemptions that would stop them (Suggest, SuggestPolicy).
//
// Nothing here writes a file or changes a policy: a suggestion is text the
// operator reviews. Cgroup ids are resolved through the Cgroups interface
// (CgroupTree walks a cgroup v2 tree), so reports are built unchanged from
// a fake tree in tests or from another host's journal with no resolution.
// `aegisbpf audit` (agent/cli/audit.go) is the command line.
package audit
