// Command voluntree runs the Voluntree server and its tools.
//
//	voluntree serve      start the server (see README for configuration)
//	voluntree train      train the intent model
//	voluntree classify   classify texts from stdin, one per line, as JSON lines
//	voluntree evaluate   score the model on labelled JSON-lines files
//	voluntree loadgen    open-loop load test of a running server (webhooks in, events out)
//	voluntree admin      organizations, pages, admin API tokens, rejected events
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: voluntree <command> [flags]

commands:
  serve      start the server (HTTP API, dashboard, actors)
  train      train the intent model and print its validation scores
  classify   read texts from stdin, one per line; print JSON lines {"text","intent","confidence"}
  evaluate   score the model on labelled JSON-lines files (per-intent precision/recall/F1)
  loadgen    open-loop load test of a running server: signed comment webhooks in, WebSocket
             events out; reports throughput, latency, lost and duplicated events, node memory
  loadgen-compare  the A/B table of make loadgen-ab: median and runs of each side's JSON reports
  loadgen-conversations  simulated volunteers through the whole conversation (Messenger and web
             chat) against a serve it starts with its own Redis, fake Graph API and SMTP sink
  admin      organizations, pages, admin API tokens, rejected events (voluntree admin help)

Run 'voluntree <command> -h' for the flags of a command.
`

// usageError marks an error caused by how the command was called (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stderr)
	case "train":
		err = runTrain(ctx, args[1:], stdout, stderr)
	case "classify":
		err = runClassify(ctx, args[1:], stdin, stdout, stderr)
	case "evaluate":
		err = runEvaluate(ctx, args[1:], stdout, stderr)
	case "loadgen":
		err = runLoadgen(ctx, args[1:], stdout, stderr)
	case "loadgen-compare":
		err = runLoadgenCompare(args[1:], stdout, stderr)
	case "loadgen-conversations":
		err = runConvload(ctx, args[1:], stdout, stderr)
	case "admin":
		err = runAdmin(ctx, args[1:], stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "voluntree: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "voluntree %s: %v\n", args[0], err)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "voluntree %s: %v\n", args[0], err)
		return 1
	}
}
