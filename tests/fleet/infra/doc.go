// Package infra starts and stops the real servers of the fleet simulation,
// each from its Debian package, on loopback: a CNCF distribution registry
// (docker-registry), nginx serving a static tree, and Prometheus scraping
// the simulated hosts.
//
// Every server gets its own configuration in a directory the caller names,
// a free port on 127.0.0.1 chosen here (never a fixed one, so instances the
// packages may have started as system services do not matter), and its own
// process group. A Start returns once the server answers, or fails with the
// tail of its output; Stop ends the whole group and waits for it. Ending the
// context given to a Start kills the server too, as exec.CommandContext
// would.
package infra
