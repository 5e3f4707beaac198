package update

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// GateOptions are the fleet gate's thresholds.
type GateOptions struct {
	// MaxRollbackRatio halts the release when rollbacks / installs of it
	// across the fleet exceed it.
	MaxRollbackRatio float64
	// MaxNotEnforcing halts it when more hosts running it than this do
	// not report enforcement_active 1.
	MaxNotEnforcing int
	// MinUpdated: the next wave opens only when this share of the fleet
	// has checked the current channel edition, and this share of the
	// hosts whose wave is open (as they report it) runs the release.
	MinUpdated float64
	// Bake: and only this long after the last wave opened.
	Bake time.Duration
}

// DefaultGate are safe thresholds: any rollback among fewer than a
// hundred installs halts, so does one host not enforcing.
var DefaultGate = GateOptions{MaxRollbackRatio: 0.01, MaxNotEnforcing: 0, MinUpdated: 0.9, Bake: 30 * time.Minute}

// Health is a release's fleet health as Prometheus reports it.
type Health struct {
	Fleet        int     // hosts reporting an updater (aegisbpf_update_state_ok)
	Seen         int     // hosts that accepted the current channel edition (or a later one)
	Running      int     // hosts whose current release it is
	Waiting      int     // hosts whose wave of it is open and that do not run it yet
	NotEnforcing int     // of those, hosts not reporting aegisbpf_enforcement_active 1
	Installs     float64 // activations of it, fleet-wide
	Rollbacks    float64 // rollbacks of it, fleet-wide
}

// Gate actions.
const (
	GateOpen = "open" // the next wave opens
	GateWait = "wait" // not yet: too few hosts updated, or baking
	GateHalt = "halt" // the release is halted
	GateDone = "done" // every wave is open, or the release is halted already
)

// Decision is what the gate decided and why.
type Decision struct {
	Action string
	Reason string
	Health Health
	// Wave is the index of the wave opened (GateOpen).
	Wave int
}

// Querier runs an instant PromQL query at a time whose result is one
// number; ok is false for an empty result.
type Querier interface {
	Query(ctx context.Context, q string, at time.Time) (v float64, ok bool, err error)
}

// Prometheus queries a Prometheus server's HTTP API (/api/v1/query).
type Prometheus struct {
	Address string // http://host:port
	Client  *http.Client
}

// Query implements Querier.
func (p *Prometheus) Query(ctx context.Context, q string, at time.Time) (float64, bool, error) {
	params := url.Values{"query": {q}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	u := strings.TrimSuffix(p.Address, "/") + "/api/v1/query?" + params.Encode()
	data, err := getSmall(ctx, p.Client, u, nil, 1<<20)
	if err != nil {
		return 0, false, fmt.Errorf("query %s: %w", q, err)
	}
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return 0, false, fmt.Errorf("query %s: %w", q, err)
	}
	switch {
	case resp.Status != "success":
		return 0, false, fmt.Errorf("query %s: %s %s", q, resp.Status, resp.Error)
	case resp.Data.ResultType != "vector":
		return 0, false, fmt.Errorf("query %s: a %s result, want a vector", q, resp.Data.ResultType)
	case len(resp.Data.Result) == 0:
		return 0, false, nil
	case len(resp.Data.Result) > 1:
		return 0, false, fmt.Errorf("query %s: %d series, want one", q, len(resp.Data.Result))
	}
	str, _ := resp.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return 0, false, fmt.Errorf("query %s: value %v: %w", q, resp.Data.Result[0].Value[1], err)
	}
	return v, true, nil
}

// ReadHealth asks Prometheus how release version of channel edition
// serial fares, every query at the same instant (so that installs and
// rollbacks come from the same scrapes).
func ReadHealth(ctx context.Context, q Querier, version string, serial uint64) (Health, error) {
	v := strconv.Quote(version)
	at := time.Now()
	var h Health
	ints := []struct {
		dst *int
		q   string
	}{
		{&h.Fleet, `count(aegisbpf_update_state_ok)`},
		{&h.Seen, fmt.Sprintf(`count(aegisbpf_update_channel_serial >= %d)`, serial)},
		{&h.Running, `count(aegisbpf_update_current_info{version=` + v + `})`},
		{&h.Waiting, `count(aegisbpf_update_wave_open{version=` + v + `} == 1)`},
		{&h.NotEnforcing, `count(aegisbpf_update_current_info{version=` + v + `} unless on(instance) aegisbpf_enforcement_active == 1)`},
	}
	for _, x := range ints {
		n, _, err := q.Query(ctx, x.q, at)
		if err != nil {
			return h, err
		}
		*x.dst = int(n)
	}
	floats := []struct {
		dst *float64
		q   string
	}{
		{&h.Installs, `sum(aegisbpf_update_installs_total{version=` + v + `})`},
		{&h.Rollbacks, `sum(aegisbpf_update_rollbacks_total{version=` + v + `})`},
	}
	for _, x := range floats {
		n, _, err := q.Query(ctx, x.q, at)
		if err != nil {
			return h, err
		}
		*x.dst = n
	}
	return h, nil
}

// Decide applies the gate to release r at now.
func Decide(r *Release, h Health, o GateOptions, now time.Time) Decision {
	d := Decision{Health: h}
	opened := 0
	for _, w := range r.Waves {
		if w.From != nil && !w.From.After(now) {
			opened++
		}
	}
	switch {
	case r.Halted != nil:
		d.Action, d.Reason = GateDone, fmt.Sprintf("%s was halted at %s: %s", r.Version, r.Halted.Time.Format(time.RFC3339), r.Halted.Reason)
		return d
	case h.Installs > 0 && h.Rollbacks/h.Installs > o.MaxRollbackRatio:
		d.Action, d.Reason = GateHalt, fmt.Sprintf("%g of %g installs of %s rolled back (ratio %.4f, above %g)", h.Rollbacks, h.Installs, r.Version, h.Rollbacks/h.Installs, o.MaxRollbackRatio)
		return d
	case h.NotEnforcing > o.MaxNotEnforcing:
		d.Action, d.Reason = GateHalt, fmt.Sprintf("%d hosts running %s are not enforcing (at most %d allowed)", h.NotEnforcing, r.Version, o.MaxNotEnforcing)
		return d
	case opened == len(r.Waves):
		d.Action, d.Reason = GateDone, fmt.Sprintf("every wave of %s is open; %d of %d hosts run it", r.Version, h.Running, h.Fleet)
		return d
	case r.OpenWaves() > opened:
		d.Action, d.Reason = GateWait, fmt.Sprintf("wave %d of %s opens at %s", opened+1, r.Version, r.Waves[opened].From.Format(time.RFC3339))
		return d
	}
	// Hosts say whether their wave is open once they have checked the
	// current edition; the share of hosts a fraction covers varies with
	// the machine ids, so the count comes from the hosts, not the fraction.
	if want := int(math.Ceil(o.MinUpdated * float64(h.Fleet))); h.Seen < want {
		d.Action, d.Reason = GateWait, fmt.Sprintf("%d of %d hosts have checked the current channel edition, %d wanted", h.Seen, h.Fleet, want)
		return d
	}
	if want := int(math.Ceil(o.MinUpdated * float64(h.Running+h.Waiting))); h.Running < want {
		d.Action, d.Reason = GateWait, fmt.Sprintf("%d hosts run %s and %d more are in its open waves; %d wanted (%.0f%%)", h.Running, r.Version, h.Waiting, want, o.MinUpdated*100)
		return d
	}
	if opened > 0 {
		if since := now.Sub(*r.Waves[opened-1].From); since < o.Bake {
			d.Action, d.Reason = GateWait, fmt.Sprintf("wave %d of %s has baked %s of %s", opened, r.Version, since.Round(time.Second), o.Bake)
			return d
		}
	}
	d.Action, d.Wave = GateOpen, opened
	d.Reason = fmt.Sprintf("%s healthy (%d hosts run it, %g installs, %g rollbacks, %d not enforcing): opening wave %d (%g of the fleet)",
		r.Version, h.Running, h.Installs, h.Rollbacks, h.NotEnforcing, opened+1, r.Waves[opened].Fraction)
	return d
}

// Next returns the channel's next edition carrying decision d on r (an
// opened wave or a halt), issued at now and expiring after ttl.
func Next(c *Channel, version string, d Decision, now time.Time, ttl time.Duration) (*Channel, error) {
	n := *c
	n.Releases = append([]Release(nil), c.Releases...)
	var r *Release
	for i := range n.Releases {
		if n.Releases[i].Version == version {
			r = &n.Releases[i]
		}
	}
	if r == nil {
		return nil, fmt.Errorf("channel %s has no release %s", c.Name, version)
	}
	r.Waves = append([]Wave(nil), r.Waves...)
	t := now.UTC().Truncate(time.Second)
	switch d.Action {
	case GateOpen:
		r.Waves[d.Wave].From = &t
	case GateHalt:
		r.Halted = &Halt{Time: t, Reason: d.Reason}
	default:
		return nil, fmt.Errorf("decision %q changes nothing", d.Action)
	}
	n.Serial++
	n.Issued = t
	n.Expires = t.Add(ttl)
	return &n, n.Validate()
}
