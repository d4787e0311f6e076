// Command loadgen drives a running Voluntree the way Facebook and volunteers would, and
// reports what came back. It is not compiled into the server.
//
//	loadgen [flags]                open-loop comment webhooks in, live-feed events out
//	loadgen compare DIR...         the A/B table of make loadgen-ab from JSON reports
//	loadgen conversations [flags]  simulated volunteers through the whole conversation
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `usage: loadgen [flags]                 open-loop load test of a running server: signed comment
                                      webhooks in, WebSocket events out; reports throughput,
                                      latency, lost and duplicated events, nodes' memory and CPU
       loadgen compare [flags] DIR... the A/B table of make loadgen-ab: median and runs of each
                                      side's JSON reports
       loadgen conversations [flags]  simulated volunteers through the whole conversation
                                      (Messenger and web chat) against a serve it starts with its
                                      own Redis, fake Graph API and SMTP sink

Run 'loadgen -h', 'loadgen compare -h' or 'loadgen conversations -h' for the flags.
`

// usageError marks an error caused by how the command was called (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := "loadgen"
	var err error
	switch {
	case len(args) > 0 && args[0] == "compare":
		name = "loadgen compare"
		err = runLoadgenCompare(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "conversations":
		name = "loadgen conversations"
		err = runConvload(ctx, args[1:], stdout, stderr)
	case len(args) > 0 && (args[0] == "help" || args[0] == "--help"):
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = runLoadgen(ctx, args, stdout, stderr)
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
