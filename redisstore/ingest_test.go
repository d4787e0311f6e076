package redisstore_test

import (
	"fmt"
	"slices"
	"strings"
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
		ttl, err := rdb.TTL(ctx, k.IngestSeen(0, id)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < 80*time.Second || ttl > 90*time.Second {
			t.Errorf("TTL of %s = %v, want about 90s", k.IngestSeen(0, id), ttl)
		}
	}
	// Once the mark expires, the id is accepted again (a new message as far as we know).
	if err := rdb.Del(ctx, k.IngestSeen(0, "c1")).Err(); err != nil {
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
	ttl, err := rdb.TTL(ctx, st.Keys().IngestSeen(0, "c1")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < redisstore.DefaultDedupeTTL-time.Minute || ttl > redisstore.DefaultDedupeTTL {
		t.Fatalf("TTL = %v, want about %v", ttl, redisstore.DefaultDedupeTTL)
	}
}

func TestDecodeEntry(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	want := comment("d1")
	ids, err := idsOf(st.Enqueue(ctx, []voluntree.Message{want}))
	if err != nil {
		t.Fatal(err)
	}
	xs, err := rdb.XRange(ctx, st.Keys().Ingest(), ids[0], ids[0]).Result()
	if err != nil || len(xs) != 1 {
		t.Fatalf("XRange = %v, %v", xs, err)
	}
	got, err := redisstore.DecodeEntry(xs[0].Values)
	if err != nil || !sameMessage(got, want) {
		t.Fatalf("DecodeEntry = %+v, %v; want %+v", got, err, want)
	}
	// Entries that can never be decoded.
	for _, v := range []map[string]any{
		{"m": "not json"},
		{"x": "no message field"},
		{"m": `{"id":"b1","kind":"bogus","page_id":"111","sender_id":"u"}`}, // JSON, not a valid message
	} {
		if _, err := redisstore.DecodeEntry(v); err == nil {
			t.Errorf("DecodeEntry(%v) succeeded", v)
		}
	}
	_, err = redisstore.DecodeEntry(map[string]any{"m": `{"id":"b1","kind":"bogus","page_id":"111","sender_id":"u"}`})
	if code := voluntree.ErrorCode(err); code != voluntree.EINVALID {
		t.Errorf("invalid message error %v has code %q, want %q", err, code, voluntree.EINVALID)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})

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

	if err := rdb.XGroupCreateMkStream(ctx, st.Keys().Ingest(), st.Keys().IngestGroup(), "0").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := idsOf(st.Enqueue(ctx, msgs[4:])); err != nil {
		t.Fatal(err)
	}
	s, err = st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if (s != redisstore.IngestStats{Length: 6, Pending: 0, Lag: 6, MaxBacklog: 6}) {
		t.Fatalf("Stats before reading = %+v, want Length 6, Lag 6", s)
	}

	k := st.Keys()
	res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: k.IngestGroup(), Consumer: "c1",
		Streams: []string{k.Ingest(), ">"}, Count: 4, Block: -1}).Result()
	if err != nil || len(res) != 1 || len(res[0].Messages) != 4 {
		t.Fatalf("XReadGroup = %v, %v", res, err)
	}
	es := res[0].Messages
	s, err = st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if (s != redisstore.IngestStats{Length: 6, Pending: 4, Lag: 2, MaxBacklog: 6}) {
		t.Fatalf("Stats after reading 4 = %+v, want Length 6, Pending 4, Lag 2", s)
	}

	if err := rdb.XAck(ctx, k.Ingest(), k.IngestGroup(), es[0].ID, es[1].ID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XAck(ctx, k.Ingest(), k.IngestGroup(), es[2].ID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: k.DeadLetter(), Values: []any{"entry", es[2].ID}}).Err(); err != nil {
		t.Fatal(err)
	}
	s, err = st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if (s != redisstore.IngestStats{Length: 6, Pending: 1, Lag: 2, DeadLength: 1, MaxBacklog: 3}) {
		t.Fatalf("Stats = %+v, want Length 6, Pending 1, Lag 2, DeadLength 1", s)
	}
}

// TestIngestShards: with several shards, a page's messages all go to one shard's stream (in
// order), the pages spread over the shards, dedupe holds within a page's shard, and the stats
// and dead letters cover every shard.
func TestIngestShards(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	const shards = 4
	st, rdb := newStore(t, redisstore.Config{IngestShards: shards})
	k := st.Keys()
	if _, err := redisstore.New(rdb, redisstore.Config{IngestShards: redisstore.MaxIngestShards + 1}); err == nil {
		t.Fatalf("%d shards accepted", redisstore.MaxIngestShards+1)
	}
	var msgs []voluntree.Message
	perShard := make([]int, shards)
	for p := range 16 {
		page := fmt.Sprintf("page%d", p)
		for i := range 3 {
			m := comment(fmt.Sprintf("%s_c%d", page, i))
			m.PageID, m.PostID, m.ParentID = page, page+"_1", page+"_1"
			msgs = append(msgs, m)
			perShard[st.ShardOf(page)]++
		}
	}
	for i, n := range perShard {
		if n == 0 {
			t.Fatalf("16 pages left shard %d empty: %v", i, perShard)
		}
	}
	if _, err := idsOf(st.Enqueue(ctx, msgs)); err != nil {
		t.Fatal(err)
	}
	// A redelivery of the whole batch adds nothing.
	if ids, err := idsOf(st.Enqueue(ctx, msgs)); err != nil || strings.Join(ids, "") != "" {
		t.Fatalf("redelivery appended %q, %v", ids, err)
	}
	for shard := range shards {
		xs, err := rdb.XRange(ctx, k.IngestShard(shard), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(xs) != perShard[shard] {
			t.Fatalf("shard %d holds %d entries, want %d", shard, len(xs), perShard[shard])
		}
		last := map[string]string{}
		for _, x := range xs {
			m, err := redisstore.DecodeEntry(x.Values)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.ShardOf(m.PageID); got != shard {
				t.Fatalf("message of page %s (shard %d) in shard %d", m.PageID, got, shard)
			}
			if m.ID <= last[m.PageID] {
				t.Fatalf("page %s out of order: %s after %s", m.PageID, m.ID, last[m.PageID])
			}
			last[m.PageID] = m.ID
		}
		if n := rdb.Exists(ctx, k.IngestSeen(shard, mustID(t, xs[0].Values))).Val(); n != 1 {
			t.Fatalf("shard %d: dedupe key not in the shard's slot", shard)
		}
	}
	s, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Length != int64(len(msgs)) || s.Lag != -1 {
		t.Fatalf("Stats = %+v, want Length %d over all shards (no group: lag unknown)", s, len(msgs))
	}
	for shard := range shards {
		if err := rdb.XGroupCreateMkStream(ctx, k.IngestShard(shard), k.IngestGroup(), "0").Err(); err != nil {
			t.Fatal(err)
		}
	}
	if s, err = st.Stats(ctx); err != nil || s.Lag != int64(len(msgs)) || s.MaxBacklog != int64(slices.Max(perShard)) {
		t.Fatalf("Stats = %+v, %v; want Lag %d, MaxBacklog %d", s, err, len(msgs), slices.Max(perShard))
	}
	for shard := range shards {
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: k.IngestDead(shard), Values: []any{"entry", fmt.Sprint(shard)}})
	}
	dead, err := st.DeadLetters(ctx, 10)
	if err != nil || len(dead) != shards {
		t.Fatalf("DeadLetters = %v, %v; want one per shard", dead, err)
	}
	if dead, _ := st.DeadLetters(ctx, 2); len(dead) != 2 {
		t.Fatalf("DeadLetters(2) returned %d", len(dead))
	}
}

func mustID(t *testing.T, values map[string]any) string {
	t.Helper()
	m, err := redisstore.DecodeEntry(values)
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}
