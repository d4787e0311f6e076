package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/voluntree/voluntree/internal/redisconn"
	"github.com/voluntree/voluntree/redisstore"
)

// runMigrate moves the keys an older version wrote to this version's layout
// (redisstore.Store.Migrate). The nodes refuse to start on an older layout, so it runs with
// no node writing; it is idempotent and resumable.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env, err := newSettings(args, os.LookupEnv)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: voluntree migrate [flags]\n\n"+
			"Moves the keys an older Voluntree wrote to this version's key layout (layout %d), then\n"+
			"stamps it. Stop every node first: they refuse to start until it is done. It can be\n"+
			"run again (an interrupted run resumes; a finished one does nothing).\n\n", redisstore.Layout)
		fs.PrintDefaults()
	}
	fs.String("config", "", "config file of KEY=value lines with the environment's keys, as serve's (env VOLUNTREE_CONFIG)")
	var redisCfg redisconn.Config
	redisFlags(fs, env, &redisCfg, "empty: the embedded one of -data")
	dataDir := fs.String("data", env.str("VOLUNTREE_DATA_DIR", "./data"), "data directory of the embedded redis-server (env VOLUNTREE_DATA_DIR)")
	prefix := fs.String("redis-prefix", env.str("VOLUNTREE_REDIS_PREFIX", redisstore.DefaultPrefix), "prefix of every Redis key (env VOLUNTREE_REDIS_PREFIX)")
	timeout := fs.Duration("timeout", time.Hour, "give up after this long (a rerun resumes)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	// A config file shared with serve and the model commands is accepted whole.
	if err := env.checkStoreCommand(fs, redisCfg, modelKeys()); err != nil {
		return err
	}
	return runOnStoreOf(ctx, redisCfg, *dataDir, *prefix, *timeout, false, func(ctx context.Context, st *redisstore.Store) error {
		rep, err := st.Migrate(ctx, func(n int) { fmt.Fprintf(stdout, "%d keys moved…\n", n) })
		if err != nil {
			return fmt.Errorf("after %d keys moved: %w", rep.Moved+rep.Resumed, err)
		}
		if rep.From == rep.To {
			fmt.Fprintf(stdout, "key layout %d: nothing to migrate\n", rep.To)
			return nil
		}
		fmt.Fprintf(stdout, "key layout %d → %d: %d keys moved", rep.From, rep.To, rep.Moved)
		if rep.Resumed > 0 {
			fmt.Fprintf(stdout, ", %d finished from an interrupted run", rep.Resumed)
		}
		fmt.Fprintln(stdout)
		return nil
	})
}
