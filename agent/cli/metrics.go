package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

const defaultMetricsSocket = "/run/aegisbpf/metrics.sock"

// metricsCommand prints the agent's metrics from its local unix socket, for
// hosts without curl (most hardened hosts).
func metricsCommand() *Command {
	return &Command{Name: "metrics", Summary: "print the running agent's Prometheus metrics", Run: func(ctx context.Context, env *Env, args []string) error {
		fs := NewFlagSet(env, "metrics", "aegisbpf metrics [--socket PATH]")
		sock := fs.String("socket", defaultMetricsSocket, "the agent's metrics socket")
		if err := ParseFlags(fs, args); err != nil {
			return err
		}
		if fs.NArg() != 0 {
			return Usagef("metrics takes no arguments")
		}
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", *sock)
			}}}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://aegisbpf/metrics", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("scraping %s: %w", *sock, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("scraping %s: %s", *sock, resp.Status)
		}
		_, err = io.Copy(env.Stdout, resp.Body)
		return err
	}}
}
