package redisstore_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

func TestEnqueueDedupe(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{DedupeTTL: 90 * time.Second})
	k := st.Keys()
	xlen := func() int64 {
		t.Helper()
		n, err := rdb.XLen(ctx, k.Ingest()).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	if ids, err := idsOf(st.Enqueue(ctx, nil)); err != nil || len(ids) != 0 {
		t.Fatalf("Enqueue(nil) = %v, %v", ids, err)
	}

	msgs := []voluntree.Message{comment("c1"), comment("c2"), comment("c3")}
	ids, err := idsOf(st.Enqueue(ctx, msgs))
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if len(ids) != 3 {
		t.Fatalf("Enqueue returned %d ids, want 3", len(ids))
	}
	for i, id := range ids {
		if id == "" {
			t.Fatalf("id %d is empty: %q", i, ids)
		}
		if i > 0 && redisstore.CompareIDs(ids[i-1], id) >= 0 {
			t.Fatalf("ids not increasing: %q", ids)
		}
	}
	if n := xlen(); n != 3 {
		t.Fatalf("stream length %d, want 3", n)
	}
	// The stored entries are the messages, in order.
	xs, err := rdb.XRange(ctx, k.Ingest(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range xs {
		if x.ID != ids[i] {
			t.Errorf("entry %d id %s, want %s", i, x.ID, ids[i])
		}
		if _, ok := x.Values["m"].(string); !ok {
			t.Errorf("entry %d has no field m: %v", i, x.Values)
		}
	}

	// Facebook's retry: the same three messages are duplicates.
	again, err := idsOf(st.Enqueue(ctx, msgs))
	if err != nil {
		t.Fatalf("Enqueue again: %v", err)
	}
	if !equalStrings(again, []string{"", "", ""}) {
		t.Fatalf("Enqueue of duplicates = %q, want three empty ids", again)
	}
	if n := xlen(); n != 3 {
		t.Fatalf("stream length after duplicates %d, want 3", n)
	}

	// A mix: an old id, a new one, the new one again within the call, another new one.
	mix, err := idsOf(st.Enqueue(ctx, []voluntree.Message{comment("c2"), comment("c4"), comment("c4"), comment("c5")}))
	if err != nil {
		t.Fatalf("Enqueue mix: %v", err)
	}
	if len(mix) != 4 || mix[0] != "" || mix[1] == "" || mix[2] != "" || mix[3] == "" {
		t.Fatalf("Enqueue mix = %q, want [\"\" id \"\" id]", mix)
	}
	if redisstore.CompareIDs(mix[1], ids[2]) <= 0 || redisstore.CompareIDs(mix[3], mix[1]) <= 0 {
		t.Fatalf("new ids %q not after %q", mix, ids)
	}
	if n := xlen(); n != 5 {
		t.Fatalf("stream length after mix %d, want 5", n)
	}

	// The dedupe mark lives for DedupeTTL.
	for _, id := range []string{"c1", "c4"} {
		ttl, err := rdb.TTL(ctx, k.IngestSeen(id)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < 80*time.Second || ttl > 90*time.Second {
			t.Errorf("TTL of %s = %v, want about 90s", k.IngestSeen(id), ttl)
		}
	}
	// Once the mark expires, the id is accepted again (a new message as far as we know).
	if err := rdb.Del(ctx, k.IngestSeen("c1")).Err(); err != nil {
		t.Fatal(err)
	}
	if ids, err := idsOf(st.Enqueue(ctx, []voluntree.Message{comment("c1")})); err != nil || ids[0] == "" {
		t.Fatalf("Enqueue after the mark expired = %q, %v; want a new id", ids, err)
	}
}

func TestEnqueueDefaultTTL(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	if _, err := idsOf(st.Enqueue(ctx, []voluntree.Message{comment("c1")})); err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.TTL(ctx, st.Keys().IngestSeen("c1")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < redisstore.DefaultDedupeTTL-time.Minute || ttl > redisstore.DefaultDedupeTTL {
		t.Fatalf("TTL = %v, want about %v", ttl, redisstore.DefaultDedupeTTL)
	}
}

func TestConsumerGroup(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	k := st.Keys()

	// Accepted before any consumer ran: read anyway (the group starts at 0).
	early := []voluntree.Message{comment("e1"), comment("e2")}
	earlyIDs, err := idsOf(st.Enqueue(ctx, early))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := st.EnsureGroup(ctx); err != nil {
			t.Fatalf("EnsureGroup #%d: %v", i+1, err)
		}
	}
	late := comment("l1")
	lateIDs, err := idsOf(st.Enqueue(ctx, []voluntree.Message{late}))
	if err != nil {
		t.Fatal(err)
	}
	wantMsgs := append(early, late)
	wantIDs := append(earlyIDs, lateIDs...)

	got, err := st.ReadNew(ctx, "c1", 10, 10*time.Millisecond)
	if err != nil {
		t.Fatalf("ReadNew: %v", err)
	}
	if !equalStrings(entryIDs(got), wantIDs) {
		t.Fatalf("ReadNew ids %q, want %q", entryIDs(got), wantIDs)
	}
	for i, e := range got {
		if e.Err != nil {
			t.Errorf("entry %s: %v", e.ID, e.Err)
		}
		if !sameMessage(e.Message, wantMsgs[i]) {
			t.Errorf("entry %s message %+v, want %+v", e.ID, e.Message, wantMsgs[i])
		}
		if e.Deliveries != 1 {
			t.Errorf("entry %s deliveries %d, want 1", e.ID, e.Deliveries)
		}
		if _, ok := e.Raw["m"].(string); !ok {
			t.Errorf("entry %s Raw has no m: %v", e.ID, e.Raw)
		}
	}

	// Nothing new: no entries, no error, after the short block.
	if again, err := st.ReadNew(ctx, "c1", 10, 10*time.Millisecond); err != nil || len(again) != 0 {
		t.Fatalf("second ReadNew = %d entries, %v; want none", len(again), err)
	}
	// Another consumer of the group does not get them either.
	if other, err := st.ReadNew(ctx, "c2", 10, 10*time.Millisecond); err != nil || len(other) != 0 {
		t.Fatalf("ReadNew by c2 = %d entries, %v; want none", len(other), err)
	}

	// Entries that can never be decoded come back with Err.
	bad := []map[string]any{
		{"m": "not json"},
		{"x": "no message field"},
		{"m": `{"id":"b1","kind":"bogus","page_id":"111","sender_id":"u"}`}, // JSON, not a valid message
	}
	var badIDs []string
	for _, v := range bad {
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: k.Ingest(), Values: v}).Result()
		if err != nil {
			t.Fatal(err)
		}
		badIDs = append(badIDs, id)
	}
	gotBad, err := st.ReadNew(ctx, "c1", 10, 10*time.Millisecond)
	if err != nil {
		t.Fatalf("ReadNew of bad entries: %v", err)
	}
	if !equalStrings(entryIDs(gotBad), badIDs) {
		t.Fatalf("bad entries %q, want %q", entryIDs(gotBad), badIDs)
	}
	for i, e := range gotBad {
		if e.Err == nil {
			t.Errorf("entry %s (%v) decoded without error", e.ID, bad[i])
		}
		if e.Deliveries != 1 {
			t.Errorf("bad entry %s deliveries %d, want 1", e.ID, e.Deliveries)
		}
		for f, v := range bad[i] {
			if e.Raw[f] != v {
				t.Errorf("bad entry %s Raw[%s] = %v, want %v", e.ID, f, e.Raw[f], v)
			}
		}
	}
	if code := voluntree.ErrorCode(gotBad[2].Err); code != voluntree.EINVALID {
		t.Errorf("invalid message error %v has code %q, want %q", gotBad[2].Err, code, voluntree.EINVALID)
	}

	// ReadOwnPending replays c1's unacknowledged entries, paged by the last id.
	allIDs := append(append([]string(nil), wantIDs...), badIDs...)
	var paged []string
	after := "0"
	for page := 0; ; page++ {
		if page > 10 {
			t.Fatal("ReadOwnPending does not advance")
		}
		es, err := st.ReadOwnPending(ctx, "c1", after, 2)
		if err != nil {
			t.Fatalf("ReadOwnPending: %v", err)
		}
		if len(es) == 0 {
			break
		}
		if len(es) > 2 {
			t.Fatalf("ReadOwnPending returned %d entries, count was 2", len(es))
		}
		for _, e := range es {
			if e.Deliveries < 1 {
				t.Errorf("pending entry %s deliveries %d, want at least 1", e.ID, e.Deliveries)
			}
		}
		paged = append(paged, entryIDs(es)...)
		after = es[len(es)-1].ID
	}
	if !equalStrings(paged, allIDs) {
		t.Fatalf("ReadOwnPending pages %q, want %q", paged, allIDs)
	}
	// Replayed messages decode like new ones.
	es, err := st.ReadOwnPending(ctx, "c1", "0", 1)
	if err != nil || len(es) != 1 || es[0].Err != nil || !sameMessage(es[0].Message, wantMsgs[0]) {
		t.Fatalf("ReadOwnPending first entry = %+v, %v", es, err)
	}
	if es, err := st.ReadOwnPending(ctx, "c2", "0", 10); err != nil || len(es) != 0 {
		t.Fatalf("ReadOwnPending of c2 = %d entries, %v; want none", len(es), err)
	}

	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Pending != int64(len(allIDs)) {
		t.Fatalf("Pending %d, want %d", stats.Pending, len(allIDs))
	}

	// Ack removes them from the pending list and forgets their errors.
	if err := st.RecordFailure(ctx, wantIDs[0], errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	if err := st.Ack(ctx, wantIDs...); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := st.Ack(ctx); err != nil {
		t.Fatalf("Ack of nothing: %v", err)
	}
	if n, _ := rdb.HExists(ctx, k.IngestErrors(), wantIDs[0]).Result(); n {
		t.Errorf("error of an acknowledged entry is kept")
	}
	stats, err = st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Pending != int64(len(badIDs)) {
		t.Fatalf("Pending after Ack %d, want %d", stats.Pending, len(badIDs))
	}
	es, err = st.ReadOwnPending(ctx, "c1", "0", 10)
	if err != nil {
		t.Fatal(err)
	}
	if !equalStrings(entryIDs(es), badIDs) {
		t.Fatalf("pending after Ack %q, want %q", entryIDs(es), badIDs)
	}
}

func TestReadOwnPendingTrimmedEntry(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	if err := st.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	ids, err := idsOf(st.Enqueue(ctx, []voluntree.Message{comment("a"), comment("b")}))
	if err != nil {
		t.Fatal(err)
	}
	if es, err := st.ReadNew(ctx, "c1", 10, 10*time.Millisecond); err != nil || len(es) != 2 {
		t.Fatalf("ReadNew = %d, %v", len(es), err)
	}
	// The first entry disappears from the stream while pending (trimmed or deleted).
	if err := rdb.XDel(ctx, st.Keys().Ingest(), ids[0]).Err(); err != nil {
		t.Fatal(err)
	}
	es, err := st.ReadOwnPending(ctx, "c1", "0", 10)
	if err != nil {
		t.Fatalf("ReadOwnPending: %v", err)
	}
	if !equalStrings(entryIDs(es), ids[1:]) {
		t.Fatalf("ReadOwnPending = %q, want %q", entryIDs(es), ids[1:])
	}
	// The vanished entry was acknowledged: only the other one is still pending.
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Pending != 1 {
		t.Fatalf("Pending %d, want 1", stats.Pending)
	}
}

// claimAll polls Claim until it returns entries (they must be idle for minIdle first).
func claimAll(t *testing.T, st *redisstore.Store, consumer string, minIdle time.Duration, count int) []redisstore.Entry {
	t.Helper()
	ctx := testCtx(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		es, err := st.Claim(ctx, consumer, minIdle, count)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if len(es) > 0 {
			return es
		}
		if time.Now().After(deadline) {
			t.Fatalf("Claim by %s returned nothing for 10s", consumer)
		}
	}
}

func TestClaimAndDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	k := st.Keys()
	if err := st.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	var msgs []voluntree.Message
	for i := 0; i < 5; i++ {
		msgs = append(msgs, comment(fmt.Sprintf("m%d", i)))
	}
	ids, err := idsOf(st.Enqueue(ctx, msgs))
	if err != nil {
		t.Fatal(err)
	}
	// "dead" reads them and never acknowledges.
	read, err := st.ReadNew(ctx, "dead", 10, 10*time.Millisecond)
	if err != nil || len(read) != 5 {
		t.Fatalf("ReadNew = %d entries, %v; want 5", len(read), err)
	}
	// Not idle for an hour: nothing to claim.
	if es, err := st.Claim(ctx, "alive", time.Hour, 10); err != nil || len(es) != 0 {
		t.Fatalf("Claim with MinIdle 1h = %d entries, %v; want none", len(es), err)
	}

	const minIdle = 20 * time.Millisecond
	claimed := claimAll(t, st, "alive", minIdle, 10)
	if !equalStrings(entryIDs(claimed), ids) {
		t.Fatalf("claimed %q, want %q", entryIDs(claimed), ids)
	}
	for i, e := range claimed {
		if e.Err != nil || !sameMessage(e.Message, msgs[i]) {
			t.Errorf("claimed entry %s: %+v, %v", e.ID, e.Message, e.Err)
		}
		if e.Deliveries != 2 {
			t.Errorf("claimed entry %s deliveries %d, want 2", e.ID, e.Deliveries)
		}
	}
	if es, err := st.ReadOwnPending(ctx, "dead", "0", 10); err != nil || len(es) != 0 {
		t.Fatalf("dead still owns %d entries (%v) after the claim", len(es), err)
	}

	// The first one failed; after idling again it is redelivered (to its own consumer).
	if err := st.RecordFailure(ctx, ids[0], errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.HGet(ctx, k.IngestErrors(), ids[0]).Result(); err != nil || got != "boom" {
		t.Fatalf("recorded error %q, %v", got, err)
	}
	again := claimAll(t, st, "alive", minIdle, 10)
	if !equalStrings(entryIDs(again), ids) {
		t.Fatalf("claimed again %q, want %q", entryIDs(again), ids)
	}
	for _, e := range again {
		if e.Deliveries != 3 {
			t.Errorf("reclaimed entry %s deliveries %d, want 3", e.ID, e.Deliveries)
		}
	}
	// Claim honours count.
	if es, err := st.Claim(ctx, "alive", 0, 2); err != nil || len(es) != 2 {
		t.Fatalf("Claim count 2 = %d entries, %v", len(es), err)
	}

	before, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before.Pending != 5 || before.DeadLength != 0 {
		t.Fatalf("before dead-lettering: %+v", before)
	}

	// Dead-letter the failed one without a cause: the recorded error goes with it.
	if err := st.DeadLetter(ctx, again[0], nil); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	after, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.DeadLength != 1 || after.Pending != 4 || after.Length != 5 {
		t.Fatalf("after dead-lettering: %+v, want DeadLength 1, Pending 4, Length 5", after)
	}
	if n, _ := rdb.HExists(ctx, k.IngestErrors(), ids[0]).Result(); n {
		t.Errorf("error of a dead-lettered entry is kept")
	}
	dead, err := st.DeadLetters(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 {
		t.Fatalf("DeadLetters = %d, want 1", len(dead))
	}
	want := map[string]any{"entry": ids[0], "m": again[0].Raw["m"], "error": "boom", "deliveries": "3"}
	for f, v := range want {
		if dead[0][f] != v {
			t.Errorf("dead letter %s = %v, want %v", f, dead[0][f], v)
		}
	}
	if _, ok := dead[0]["at"].(string); !ok {
		t.Errorf("dead letter has no time: %v", dead[0])
	}

	// An explicit cause wins over a recorded error.
	if err := st.RecordFailure(ctx, ids[1], errors.New("older")); err != nil {
		t.Fatal(err)
	}
	if err := st.DeadLetter(ctx, again[1], errors.New("undecodable")); err != nil {
		t.Fatal(err)
	}
	dead, err = st.DeadLetters(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 || dead[1]["entry"] != ids[1] || dead[1]["error"] != "undecodable" {
		t.Fatalf("second dead letter: %v", dead)
	}
	if dead, err := st.DeadLetters(ctx, 1); err != nil || len(dead) != 1 || dead[0]["entry"] != ids[0] {
		t.Fatalf("DeadLetters(1) = %v, %v; want the oldest", dead, err)
	}
	if es, err := st.ReadOwnPending(ctx, "alive", "0", 10); err != nil || !equalStrings(entryIDs(es), ids[2:]) {
		t.Fatalf("pending after dead-lettering %q, %v; want %q", entryIDs(es), err, ids[2:])
	}
}

func TestDeadLetterUndecodable(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	if err := st.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: st.Keys().Ingest(), Values: []any{"x", "1"}}).Err(); err != nil {
		t.Fatal(err)
	}
	es, err := st.ReadNew(ctx, "c", 10, 10*time.Millisecond)
	if err != nil || len(es) != 1 || es[0].Err == nil {
		t.Fatalf("ReadNew = %+v, %v", es, err)
	}
	if err := st.DeadLetter(ctx, es[0], es[0].Err); err != nil {
		t.Fatal(err)
	}
	dead, err := st.DeadLetters(ctx, 10)
	if err != nil || len(dead) != 1 {
		t.Fatalf("DeadLetters = %v, %v", dead, err)
	}
	if dead[0]["m"] != "" || dead[0]["error"] != es[0].Err.Error() || dead[0]["deliveries"] != "1" {
		t.Fatalf("dead letter %v", dead[0])
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := newStore(t, redisstore.Config{})

	// Nothing exists yet.
	s, err := st.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats of an empty store: %v", err)
	}
	if (s != redisstore.IngestStats{Lag: -1}) {
		t.Fatalf("empty Stats = %+v, want zero with Lag -1", s)
	}

	var msgs []voluntree.Message
	for i := 0; i < 6; i++ {
		msgs = append(msgs, comment(fmt.Sprintf("s%d", i)))
	}
	if _, err := idsOf(st.Enqueue(ctx, msgs[:4])); err != nil {
		t.Fatal(err)
	}
	// Stream without a group: the lag is unknown.
	s, err = st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if (s != redisstore.IngestStats{Length: 4, Lag: -1}) {
		t.Fatalf("Stats before the group = %+v", s)
	}

	if err := st.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := idsOf(st.Enqueue(ctx, msgs[4:])); err != nil {
		t.Fatal(err)
	}
	s, err = st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if (s != redisstore.IngestStats{Length: 6, Pending: 0, Lag: 6}) {
		t.Fatalf("Stats before reading = %+v, want Length 6, Lag 6", s)
	}

	es, err := st.ReadNew(ctx, "c1", 4, 10*time.Millisecond)
	if err != nil || len(es) != 4 {
		t.Fatalf("ReadNew = %d, %v", len(es), err)
	}
	s, err = st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if (s != redisstore.IngestStats{Length: 6, Pending: 4, Lag: 2}) {
		t.Fatalf("Stats after reading 4 = %+v, want Length 6, Pending 4, Lag 2", s)
	}

	if err := st.Ack(ctx, es[0].ID, es[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := st.DeadLetter(ctx, es[2], errors.New("x")); err != nil {
		t.Fatal(err)
	}
	s, err = st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if (s != redisstore.IngestStats{Length: 6, Pending: 1, Lag: 2, DeadLength: 1}) {
		t.Fatalf("Stats = %+v, want Length 6, Pending 1, Lag 2, DeadLength 1", s)
	}
}
