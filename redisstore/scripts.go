package redisstore

import (
	"context"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Scripts on the hot path are sent by their SHA1 (EVALSHA) in pipelines: EVAL would send the
// whole script, and have Redis hash it, with every message. A Redis that does not know a
// script (it restarted, or SCRIPT FLUSH) answers NOSCRIPT; the failed commands are sent again
// with the script's text, which also loads it.

// script is a Lua script sent by its SHA1 in pipelines, with its source for NOSCRIPT.
type script struct {
	*redis.Script
	src string
}

func newScript(src string) *script { return &script{Script: redis.NewScript(src), src: src} }

// retryNoScript runs again, with EVAL, every command of cmds that failed with NOSCRIPT, and
// replaces its result; call(i) gives command i's keys and arguments. nil commands are
// skipped.
func (s *Store) retryNoScript(ctx context.Context, sc *script, cmds []*redis.Cmd, call func(i int) ([]string, []any)) error {
	var retry []int
	for i, c := range cmds {
		if c != nil && isNoScript(c.Err()) {
			retry = append(retry, i)
		}
	}
	if len(retry) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	again := make([]*redis.Cmd, len(retry))
	for j, i := range retry {
		keys, args := call(i)
		again[j] = pipe.Eval(ctx, sc.src, keys, args...)
	}
	var w *redis.Cmd
	if sc == enqueueScript { // the ingest appends wait for replicas as the coalescer's do
		w = s.wait.queue(ctx, pipe)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errorsAreReplies(again) {
		return err
	}
	if sc == enqueueScript {
		var fences []string
		for _, i := range retry {
			keys, _ := call(i)
			if f := keys[1] + ":fence"; !slices.Contains(fences, f) { // the shard's stream + ":fence"
				fences = append(fences, f)
			}
		}
		if err := s.wait.done(ctx, w, fences); err != nil {
			return err
		}
	}
	for j, i := range retry {
		cmds[i] = again[j]
	}
	return nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// errorsAreReplies reports whether every failed command failed with a reply of its own (a
// script's error, a duplicate's nil) rather than the connection.
func errorsAreReplies(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if err := c.Err(); err != nil && err != redis.Nil {
			if _, ok := err.(redis.Error); !ok {
				return false
			}
		}
	}
	return true
}
