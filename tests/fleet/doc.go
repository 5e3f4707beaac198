// Package fleet is the fleet simulation of `make test-fleet`: a thousand
// updater processes (cmd/fleethost), each with its own state directory and
// machine id and its metrics on loopback, follow one signed channel served
// by a real OCI registry and a real nginx, while a real Prometheus scrapes
// them and `aegisbpf channel advance` gates the waves on what it reports.
// Only the kernel-facing activation is replaced, here and nowhere else, by
// StandInActivation, which records what it would do.
package fleet
