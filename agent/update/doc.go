// Package update rolls a fleet forward from a signed channel: the channel
// document (channel.go) lists the releases, their layer files and their
// waves; a host's place in a wave is a stable hash of its machine id and
// the release (wave.go); the Updater (updater.go) fetches the channel from
// an OCI registry or a static HTTP tree (source.go), refuses a stale,
// replayed or badly signed one, downloads the release to staging with
// digest checks and resume (download.go), and hands it to the slots. The
// build-host side publishes channels (publish.go) and opens the next wave
// or halts a release from fleet health read off Prometheus (gate.go).
// docs/ROLLOUT_PLAN.md is the operator's guide.
package update
