// Package systemd holds the unit files. aegisbpf.service and
// aegisbpf-metrics.socket ship in the sysext layer under
// /usr/lib/systemd/system. base/ holds the base OS's slot units and the
// agent's drop-in, installed in /etc/systemd/system where a layer cannot
// replace them (docs/SLOTS.md). The package has no code; its tests check
// the units with systemd-analyze.
package systemd
