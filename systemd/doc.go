// Package systemd holds the agent's unit files: aegisbpf.service and
// aegisbpf-metrics.socket. They ship in the sysext layer under
// /usr/lib/systemd/system. The package has no code; its tests check the
// units with systemd-analyze.
package systemd
