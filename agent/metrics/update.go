package metrics

import "github.com/prometheus/client_golang/prometheus"

// updateDescs are the fleet updater's metrics (Snapshot.Update).
type updateDescs struct {
	ok, current, available, position, waveOpen, channelSerial *prometheus.Desc
	channelExpiry, lastCheck, lastResult, held, pinned        *prometheus.Desc
	installs, rollbacks                                       *prometheus.Desc
}

func newUpdateDescs() updateDescs {
	return updateDescs{
		ok: desc("update_state_ok",
			"1 when the updater's state (/var/lib/aegisbpf/update/state.json) was read and is valid, 0 when it is not; absent on a host without the updater."),
		current: desc("update_current_info", "The release the slots run, as of the updater's last check; always 1.", "version"),
		available: desc("update_available_info",
			"The newest release the channel offers above the current one (not halted, not rolled back here); always 1, absent when none.", "version"),
		position: desc("update_wave_position",
			"This host's place in the available release's rollout, in [0, 1): it installs once the open fraction exceeds it.", "version"),
		waveOpen:      desc("update_wave_open", "1 when this host's wave of the available release is open.", "version"),
		channelSerial: desc("update_channel_serial", "Serial of the last channel edition accepted; lower ones are refused."),
		channelExpiry: desc("update_channel_expiry_timestamp_seconds",
			"When the last accepted channel edition expires; after it the host refuses it and installs nothing."),
		lastCheck: desc("update_last_check_timestamp_seconds", "When the updater last checked the channel."),
		lastResult: desc("update_last_check_result",
			"Result of the updater's last check or apply; always 1 (up-to-date, waiting, available, installed, rolled-back, held, busy, bad-signature, expired, replayed, invalid, fetch-failed, digest-mismatch, no-space, failed).", "result"),
		held:   desc("update_held", "1 while 'aegisbpf update hold' stops installs on this host."),
		pinned: desc("update_pinned_info", "The version 'aegisbpf update pin' fixed; always 1, absent when not pinned.", "version"),
		installs: desc("update_installs_total",
			"Times the updater activated a release on this host.", "version"),
		rollbacks: desc("update_rollbacks_total",
			"Times a release the updater activated on this host was rolled back.", "version"),
	}
}

func (d *updateDescs) collect(u *Update, gauge, counter emit) {
	if u.Current != "" {
		gauge(d.current, 1, u.Current)
	}
	if u.Available != "" {
		gauge(d.available, 1, u.Available)
		gauge(d.position, u.Position, u.Available)
		gauge(d.waveOpen, bool01(u.WaveOpen), u.Available)
	}
	if !u.ChannelExpires.IsZero() {
		gauge(d.channelSerial, float64(u.ChannelSerial))
		gauge(d.channelExpiry, unixSeconds(u.ChannelExpires))
	}
	if !u.LastCheck.IsZero() {
		gauge(d.lastCheck, unixSeconds(u.LastCheck))
		gauge(d.lastResult, 1, u.LastResult)
	}
	gauge(d.held, bool01(u.Held))
	if u.Pin != "" {
		gauge(d.pinned, 1, u.Pin)
	}
	for _, r := range u.Releases {
		counter(d.installs, float64(r.Installs), r.Version)
		counter(d.rollbacks, float64(r.Rollbacks), r.Version)
	}
}

// NewCollector returns the aegisbpf collector alone, reading src at each
// scrape, for a registry of the caller's (the fleet simulation's hosts
// export the update metrics without the runtime collectors).
func NewCollector(src Source, build BuildInfo) prometheus.Collector {
	return newCollector(src, build)
}
