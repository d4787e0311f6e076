package redisstore_test

import (
	"testing"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// TestScriptsSurviveFlush: the hot scripts go by their SHA1; a Redis that forgot them
// (restarted, SCRIPT FLUSH) answers NOSCRIPT, and the store sends them again whole — the
// caller sees the same outcomes, duplicates included.
func TestScriptsSurviveFlush(t *testing.T) {
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	for round := range 2 {
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		ids, err := idsOf(st.Enqueue(ctx, []voluntree.Message{comment("f1"), comment("f2")}))
		want := round == 0 // the second round: both are duplicates
		if err != nil || (ids[0] != "") != want || (ids[1] != "") != want {
			t.Fatalf("round %d: Enqueue after SCRIPT FLUSH = %q, %v", round, ids, err)
		}
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		got, err := st.Record(ctx, testOrg, "111_222", []voluntree.Interest{interest("f1", 0), interest("f2", 1)})
		if err != nil || len(got) != 2 {
			t.Fatalf("round %d: Record after SCRIPT FLUSH = %+v, %v", round, got, err)
		}
		wantOutcome := redisstore.NewInterest
		if round == 1 {
			wantOutcome = redisstore.Duplicate
		}
		for _, r := range got {
			if r.Outcome != wantOutcome {
				t.Fatalf("round %d: outcome %v, want %v", round, r.Outcome, wantOutcome)
			}
		}
	}
}
