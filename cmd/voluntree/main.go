// Command voluntree runs the Voluntree server and its tools.
//
//	voluntree serve      start the server (see README for configuration)
//	voluntree train      train the intent model
//	voluntree classify   classify texts from stdin, one per line, as JSON lines
//	voluntree evaluate   score the model on labelled JSON-lines files
//	voluntree admin      organizations, pages, admin API tokens, rejected events
//	voluntree model      the model registry: push, list, promote, rollback, rm
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
  admin      organizations, pages, admin API tokens, rejected events (voluntree admin help)
  model      the model registry: push, list, promote, rollback, rm (voluntree model help)
  migrate    move the keys of an older version to this version's layout (voluntree migrate -h)

Run 'voluntree <command> -h' for the flags of a command. The load generator is its own
command, loadgen (cmd/loadgen).
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
	case "admin":
		err = runAdmin(ctx, args[1:], stdin, stdout, stderr)
	case "model":
		err = runModel(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = runMigrate(ctx, args[1:], stdout, stderr)
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
