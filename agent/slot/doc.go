// Package slot keeps two installed image layers (slots "a" and "b" under
// /var/lib/aegisbpf/slots) and decides which one runs: install a signed
// layer into the idle slot, switch to it (pending, with tries), activate
// it (dm-verity, a read-only erofs mount, systemd-sysext), keep it when the
// agent passes probation (mark-good), and roll back to the last good slot
// when the agent fails. The state is /var/lib/aegisbpf/state.json, written
// atomically and durably under a lock; every refusal changes nothing.
// docs/SLOTS.md is the reference.
package slot
