// Package policy is the AegisBPF policy language: strict TOML decoding,
// validation that reports every problem with its file:line:column, and a
// pure compilation to the intermediate form the kernel engine loads into
// its maps.
//
// The pipeline is
//
//	src ──Parse──▶ *Policy ──Compile──▶ *Compiled (+ Digest)
//
// Parse never returns a partially valid policy: either a *Policy that has
// passed every check, or a Problems error listing all of them. Compile is a
// pure function of a *Policy (no kernel, no file system): paths and cgroup
// paths stay paths, and the engine resolves them on the host at apply time.
//
// LoadVerified is what the agent calls at start-up: it reads a policy and its
// detached signature (package policy/sign), verifies both against the
// trusted keys, refuses a rollback of the serial, and compiles.
//
// Every value in this package is immutable once returned and safe for
// concurrent use. The language reference is docs/POLICY.md.
package policy
