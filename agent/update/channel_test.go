package update

import (
	"strings"
	"testing"
	"time"
)

func TestChannelCanonical(t *testing.T) {
	f := newFixture(t)
	data, _ := readTree(t, f.dir)
	c, err := ParseChannel(data)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Marshal()
	if err != nil || string(again) != string(data) {
		t.Fatalf("re-encoding differs: %v", err)
	}
	for _, tc := range []struct{ name, data, err string }{
		{"spacing", strings.Replace(string(data), `"serial": 1`, `"serial":1`, 1), "canonical"},
		{"unknown field", strings.Replace(string(data), `"name": "stable",`, `"name": "stable", "x": 1,`, 1), "unknown field"},
		{"trailing", string(data) + "{}", "after the JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseChannel([]byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseChannel: %v, want %q", err, tc.err)
			}
		})
	}
}

func TestChannelValidate(t *testing.T) {
	f := newFixture(t)
	t1 := f.now
	t0 := f.now.Add(-time.Hour)
	for _, tc := range []struct {
		name string
		edit func(c *Channel)
		err  string
	}{
		{"serial 0", func(c *Channel) { c.Serial = 0 }, "field serial"},
		{"expires before issued", func(c *Channel) { c.Expires = c.Issued }, "field expires"},
		{"name", func(c *Channel) { c.Name = "Stable!" }, "field name"},
		{"fraction above 1", func(c *Channel) { c.Releases[0].Waves[2].Fraction = 1.5 }, "fraction"},
		{"fractions shrink", func(c *Channel) { c.Releases[0].Waves[1].Fraction = 0.01 }, "must grow"},
		{"last wave short of the fleet", func(c *Channel) { c.Releases[0].Waves = c.Releases[0].Waves[:2] }, "whole fleet"},
		{"wave opens out of order", func(c *Channel) { c.Releases[0].Waves[2].From = &t1 }, "open in order"},
		{"wave before the previous", func(c *Channel) {
			c.Releases[0].Waves[0].From, c.Releases[0].Waves[1].From = &t1, &t0
		}, "before the previous"},
		{"missing file", func(c *Channel) { c.Releases[0].Files = c.Releases[0].Files[1:] }, "field releases[0].files"},
		{"bad sha256", func(c *Channel) { c.Releases[0].Files[0].SHA256 = "x" }, "sha256"},
		{"no location", func(c *Channel) { c.Releases[0].Path = "" }, "neither oci nor path"},
		{"path escapes", func(c *Channel) { c.Releases[0].Path = "../x" }, "clean relative path"},
		{"halt without reason", func(c *Channel) { c.Releases[0].Halted = &Halt{Time: t1} }, "halted"},
		{"duplicate", func(c *Channel) { c.Releases = append(c.Releases, c.Releases[0]) }, "appears twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, _ := readTree(t, f.dir)
			c, err := ParseChannel(data)
			must(t, err)
			tc.edit(c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Validate: %v, want %q", err, tc.err)
			}
		})
	}
}

func TestOpenFraction(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	r := Release{Waves: []Wave{{0.05, &t0}, {0.25, &t1}, {1, nil}}}
	for _, tc := range []struct {
		at   time.Time
		want float64
	}{{t0.Add(-time.Second), 0}, {t0, 0.05}, {t1.Add(-time.Second), 0.05}, {t1, 0.25}, {t1.Add(1000 * time.Hour), 0.25}} {
		if got := r.OpenFraction(tc.at); got != tc.want {
			t.Errorf("OpenFraction(%s) = %v, want %v", tc.at, got, tc.want)
		}
	}
}
