package update

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	opened := now.Add(-time.Hour)
	later := now.Add(time.Hour)
	first := func() *Release {
		return &Release{Version: "2.0.0", Waves: []Wave{{0.05, &opened}, {0.25, nil}, {1, nil}}}
	}
	o := GateOptions{MaxRollbackRatio: 0.01, MaxNotEnforcing: 0, MinUpdated: 0.9, Bake: 30 * time.Minute}
	for _, tc := range []struct {
		name    string
		release func() *Release
		h       Health
		o       GateOptions
		action  string
		reason  string
	}{
		{"healthy canary opens wave 2", first, Health{Fleet: 1000, Seen: 1000, Running: 43, Installs: 43}, o, GateOpen, "opening wave 2"},
		{"one rollback in 50 halts", first, Health{Fleet: 1000, Seen: 1000, Running: 49, Installs: 50, Rollbacks: 1}, o, GateHalt, "rolled back"},
		{"a host not enforcing halts", first, Health{Fleet: 1000, Seen: 1000, Running: 50, Installs: 50, NotEnforcing: 1}, o, GateHalt, "not enforcing"},
		{"hosts that have not checked wait", first, Health{Fleet: 1000, Seen: 800, Running: 40, Installs: 40}, o, GateWait, "800 of 1000 hosts have checked"},
		{"too few updated waits", first, Health{Fleet: 1000, Seen: 1000, Running: 40, Waiting: 10, Installs: 40}, o, GateWait, "45 wanted"},
		{"baking waits", first, Health{Fleet: 1000, Seen: 1000, Running: 50, Installs: 50}, GateOptions{MinUpdated: 0.9, Bake: 2 * time.Hour}, GateWait, "baked"},
		{"scheduled wave waits", func() *Release {
			r := first()
			r.Waves[1].From = &later
			return r
		}, Health{Fleet: 1000, Running: 50, Installs: 50}, o, GateWait, "opens at"},
		{"all open", func() *Release {
			r := first()
			r.Waves[1].From, r.Waves[2].From = &opened, &opened
			return r
		}, Health{Fleet: 1000, Running: 1000, Installs: 1000}, o, GateDone, "every wave"},
		{"halted", func() *Release {
			r := first()
			r.Halted = &Halt{Time: opened, Reason: "x"}
			return r
		}, Health{}, o, GateDone, "was halted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.release(), tc.h, tc.o, now)
			if d.Action != tc.action || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("Decide = %s (%s), want %s (%q)", d.Action, d.Reason, tc.action, tc.reason)
			}
		})
	}
}

func TestNext(t *testing.T) {
	f := newFixture(t)
	d := Decision{Action: GateOpen, Wave: 1}
	n, err := Next(f.ch, "1.1.0", d, f.now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n.Serial != f.ch.Serial+1 || n.Releases[0].OpenFraction(f.now) != 0.25 || f.ch.Releases[0].OpenFraction(f.now) != 0.05 {
		t.Errorf("Next: serial %d, open %v (the old edition %v)", n.Serial, n.Releases[0].OpenFraction(f.now), f.ch.Releases[0].OpenFraction(f.now))
	}
	h, err := Next(n, "1.1.0", Decision{Action: GateHalt, Reason: "bad"}, f.now, time.Hour)
	if err != nil || h.Releases[0].Halted == nil || h.Serial != n.Serial+1 {
		t.Errorf("halt: %v %+v", err, h)
	}
	if _, err := Next(n, "9.9.9", d, f.now, time.Hour); err == nil {
		t.Error("Next of a missing release succeeded")
	}
}

func TestPrometheusQuery(t *testing.T) {
	var gotTime string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotTime = r.URL.Query().Get("time")
		switch r.URL.Query().Get("query") {
		case "one":
			io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.5,"42"]}]}}`)
		case "none":
			io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		case "two":
			io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"status":"error","error":"parse error"}`)
		}
	}))
	defer srv.Close()
	p := &Prometheus{Address: srv.URL, Client: srv.Client()}
	at := time.Unix(1700000000, 500e6)
	if v, ok, err := p.Query(t.Context(), "one", at); err != nil || !ok || v != 42 || gotTime != "1700000000.500" {
		t.Errorf("one: %v %v %v (time=%s)", v, ok, err, gotTime)
	}
	if _, ok, err := p.Query(t.Context(), "none", at); err != nil || ok {
		t.Errorf("none: %v %v", ok, err)
	}
	for _, q := range []string{"two", "bad"} {
		if _, _, err := p.Query(t.Context(), q, at); err == nil {
			t.Errorf("%s: no error", q)
		}
	}
}
