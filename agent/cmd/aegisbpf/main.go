// Command aegisbpf is the AegisBPF agent and its command line.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/aegisbpf/aegisbpf/agent/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &cli.Env{
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Log:    slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Getenv: os.Getenv,
	}
	os.Exit(cli.Main(ctx, env, os.Args[1:]))
}
