package daemon

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/events"
	"github.com/aegisbpf/aegisbpf/agent/metrics"
)

// DefaultStateDir holds the start counter and status.json.
const DefaultStateDir = "/run/aegisbpf"

// Config configures Run. The zero value is valid: metrics only when
// socket-activated, events to the journal when there is one, no state files.
type Config struct {
	Log *slog.Logger
	// MetricsListen is the --metrics-listen spec (metrics.Listen), used
	// when systemd passed no "metrics" socket; "" serves no metrics then.
	MetricsListen string
	// NoJournal keeps events out of the journal (they go there by default
	// when the journal socket exists).
	NoJournal bool
	// JSON, when set, also receives events as JSON lines (--events-json
	// writes them to stdout).
	JSON io.Writer
	// EventInterval is the aggregation interval; events.DefaultInterval
	// when 0.
	EventInterval time.Duration
	// EventMaxKeys bounds distinct entries per interval;
	// events.DefaultMaxKeys when 0.
	EventMaxKeys int
	// StateDir holds the start counter and status.json (DefaultStateDir
	// under systemd); "" writes neither.
	StateDir string
	// HealthInterval is how often health checks run when systemd's
	// watchdog is off (when on, they run at half of WATCHDOG_USEC).
	// 5 s when 0.
	HealthInterval time.Duration
	// StopTimeout bounds each shutdown step (metrics, event drain).
	// 5 s when 0.
	StopTimeout time.Duration
	Build       metrics.BuildInfo
	// Slots reads the A/B slot state for each scrape: nil, nil on a host
	// without slots. Nil exports no slot metrics.
	Slots func() (*metrics.Slots, error)
	// Update reads the fleet updater's state the same way.
	Update func() (*metrics.Update, error)
	// ForceExit ends the process on a second signal; os.Exit when nil.
	ForceExit func(code int)
}

func (c Config) withDefaults() Config {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.EventInterval <= 0 {
		c.EventInterval = events.DefaultInterval
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = 5 * time.Second
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 5 * time.Second
	}
	if c.ForceExit == nil {
		c.ForceExit = os.Exit
	}
	return c
}

// Validate reports configuration errors that need no I/O to find.
func (c Config) Validate() error {
	var errs []error
	if c.EventMaxKeys < 0 {
		errs = append(errs, errors.New("event max keys is negative"))
	}
	if c.EventInterval < 0 || c.HealthInterval < 0 || c.StopTimeout < 0 {
		errs = append(errs, errors.New("intervals and timeouts must not be negative"))
	}
	return errors.Join(errs...)
}

// RegisterFlags adds the flags of `aegisbpf run` that configure c to fs:
// --metrics-listen, --events-json (JSON lines to stdout), --no-journal,
// --event-interval, --event-max-keys and --state-dir (DefaultStateDir).
// Values land in c when fs is parsed.
func (c *Config) RegisterFlags(fs *flag.FlagSet, stdout io.Writer) {
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen,
		"serve metrics on unix:PATH or tcp:127.0.0.1:PORT when not socket-activated")
	fs.BoolFunc("events-json", "also write events as JSON lines to stdout", func(string) error {
		c.JSON = stdout
		return nil
	})
	fs.BoolVar(&c.NoJournal, "no-journal", c.NoJournal, "do not write events to the systemd journal")
	fs.DurationVar(&c.EventInterval, "event-interval", events.DefaultInterval,
		"fold identical events over this interval")
	fs.IntVar(&c.EventMaxKeys, "event-max-keys", events.DefaultMaxKeys,
		"distinct events kept per interval; more are counted as overflow")
	fs.StringVar(&c.StateDir, "state-dir", DefaultStateDir,
		"where the status file and start counter live (empty: none)")
}
