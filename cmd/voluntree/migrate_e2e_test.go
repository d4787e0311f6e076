package main

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestMigrateCommand: on keys of an older layout the commands refuse to run and say to
// migrate; `voluntree migrate` moves them; run again it has nothing to do; then the commands
// work on the moved data.
func TestMigrateCommand(t *testing.T) {
	const prefix = "e2e-migrate"
	url := redisSrv.URL(t)
	flags := []string{"-redis-url", url, "-redis-prefix", prefix}
	if code, out, errOut := runCLI(t, "", append([]string{"admin", "create-org", "-id", "acme", "-name", "Acme"}, flags...)...); code != 0 {
		t.Fatalf("create-org: exit %d, %q %q", code, out, errOut)
	}
	// Make it look like a Redis an older version wrote: its keys, no layout stamp.
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx := context.Background()
	rdb.Del(ctx, prefix+":layout")
	rdb.HSet(ctx, prefix+":{post:111_2}:intents", "question", 3)
	rdb.ZAdd(ctx, prefix+":org:acme:volunteers", redis.Z{Score: 1, Member: "111:u1"})

	code, out, errOut := runCLI(t, "", append([]string{"admin", "members", "-org", "acme"}, flags...)...)
	if code == 0 || !strings.Contains(errOut, "voluntree migrate") {
		t.Fatalf("admin on an older layout: exit %d, %q %q; want a refusal naming voluntree migrate", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "", append([]string{"migrate"}, flags...)...)
	if code != 0 || !strings.Contains(out, "key layout 1 → 3: 2 keys moved") {
		t.Fatalf("migrate: exit %d, %q %q", code, out, errOut)
	}
	if n := rdb.HGet(ctx, prefix+":{org:}:post:111_2:intents", "question").Val(); n != "3" {
		t.Fatalf("the post's counts after migrate: %q", n)
	}
	if n := rdb.ZCard(ctx, prefix+":{org:acme}:volunteers").Val(); n != 1 {
		t.Fatalf("the organization's volunteers after migrate: %d", n)
	}
	code, out, errOut = runCLI(t, "", append([]string{"migrate"}, flags...)...)
	if code != 0 || !strings.Contains(out, "nothing to migrate") {
		t.Fatalf("migrate again: exit %d, %q %q", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "", append([]string{"admin", "members", "-org", "acme"}, flags...)...); code != 0 {
		t.Fatalf("admin after migrate: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "", "migrate", "extra"); code != 2 || !strings.Contains(errOut, "unexpected arguments") {
		t.Fatalf("migrate extra: exit %d, %q", code, errOut)
	}
}
