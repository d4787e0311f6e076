package redisstore_test

import (
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// recordInterests records n interests on post 111_222 and returns their event ids.
func recordInterests(t *testing.T, st *redisstore.Store, n int) ([]voluntree.Interest, []string) {
	t.Helper()
	ctx := testCtx(t)
	ins := make([]voluntree.Interest, n)
	for i := range ins {
		ins[i] = interest(fmt.Sprintf("m%03d", i), i)
	}
	got, err := st.Record(ctx, "111_222", ins)
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	ids := make([]string, n)
	for i, r := range got {
		if r.Outcome != redisstore.NewInterest || r.EventID == "" {
			t.Fatalf("Record %d = %+v, want NewInterest", i, r)
		}
		ids[i] = r.EventID
	}
	return ins, ids
}

func eventIDs(evs []voluntree.Event) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

func TestPublishedEvent(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := newStore(t, redisstore.Config{})

	sub := st.Subscribe(ctx)
	defer sub.Close()
	// Wait for the subscription to be confirmed before publishing.
	msg, err := sub.Receive(ctx)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if s, ok := msg.(*redis.Subscription); !ok || s.Kind != "subscribe" || s.Channel != st.Keys().EventsChannel() {
		t.Fatalf("first reply %#v, want the subscription to %s", msg, st.Keys().EventsChannel())
	}

	in := interest("m1", 0)
	rec, err := st.Record(ctx, "111_222", []voluntree.Interest{in})
	if err != nil {
		t.Fatal(err)
	}
	m, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	ev, err := redisstore.DecodeEvent(m.Payload)
	if err != nil {
		t.Fatalf("DecodeEvent(%s): %v", m.Payload, err)
	}
	if ev.ID != rec[0].EventID || ev.Type != voluntree.EventInterest || ev.PostID != in.PostID {
		t.Fatalf("event %+v, want id %s type %s post %s", ev, rec[0].EventID, voluntree.EventInterest, in.PostID)
	}
	if ev.Interest == nil {
		t.Fatal("event without interest")
	}
	diffInterest(t, *ev.Interest, in)

	// The replay log holds the same event.
	r, err := st.EventsAfter(ctx, "", 10)
	if err != nil || len(r.Events) != 1 || r.Events[0].ID != ev.ID || r.Events[0].Interest == nil {
		t.Fatalf("EventsAfter = %+v, %v", r, err)
	}
	diffInterest(t, *r.Events[0].Interest, in)

	// A duplicate publishes nothing, a counted message neither: the next message on the
	// channel is the next new interest.
	q := interest("m2", 1)
	q.Intent = voluntree.IntentThanks
	if _, err := st.Record(ctx, "111_222", []voluntree.Interest{in, q, interest("m3", 2)}); err != nil {
		t.Fatal(err)
	}
	m, err = sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := redisstore.DecodeEvent(m.Payload); err != nil || ev.Interest == nil || ev.Interest.ID != "m3" {
		t.Fatalf("next event %+v, %v; want the interest m3", ev, err)
	}
}

func TestDecodeEvent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		payload string
		ok      bool
	}{
		{"event", `{"id":"1-0","type":"interest","post_id":"p","interest":{"id":"m"}}`, true},
		{"no id", `{"type":"interest","post_id":"p"}`, false},
		{"empty id", `{"id":"","type":"interest"}`, false},
		{"not JSON", `{"id":"1-0",`, false},
		{"empty", ``, false},
	}
	for _, c := range cases {
		ev, err := redisstore.DecodeEvent(c.payload)
		if (err == nil) != c.ok {
			t.Errorf("%s: DecodeEvent(%q) = %+v, %v", c.name, c.payload, ev, err)
		}
		if c.ok && (ev.ID != "1-0" || ev.Type != voluntree.EventInterest || ev.Interest == nil || ev.Interest.ID != "m") {
			t.Errorf("%s: DecodeEvent = %+v", c.name, ev)
		}
	}
}

func TestEventsAfter(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := newStore(t, redisstore.Config{})

	// Empty log.
	if id, err := st.LastEventID(ctx); err != nil || id != "" {
		t.Fatalf("LastEventID of an empty log = %q, %v", id, err)
	}
	if r, err := st.EventsAfter(ctx, "", 10); err != nil || len(r.Events) != 0 || r.Gap {
		t.Fatalf("EventsAfter of an empty log = %+v, %v", r, err)
	}
	if r, err := st.EventsAfter(ctx, "1-0", 10); err != nil || len(r.Events) != 0 || r.Gap {
		t.Fatalf("EventsAfter(1-0) of an empty log = %+v, %v", r, err)
	}
	if id, err := st.EventIDBeforeLast(ctx, 2); err != nil || id != "" {
		t.Fatalf("EventIDBeforeLast of an empty log = %q, %v", id, err)
	}

	ins, ids := recordInterests(t, st, 5)

	r, err := st.EventsAfter(ctx, ids[0], 100)
	if err != nil {
		t.Fatal(err)
	}
	if !equalStrings(eventIDs(r.Events), ids[1:]) || r.Gap {
		t.Fatalf("EventsAfter(first) = %q gap %v, want %q", eventIDs(r.Events), r.Gap, ids[1:])
	}
	for i, ev := range r.Events {
		if ev.Type != voluntree.EventInterest || ev.Interest == nil || ev.Interest.ID != ins[i+1].ID || ev.PostID != "111_222" {
			t.Errorf("event %d = %+v", i, ev)
		}
	}

	r, err = st.EventsAfter(ctx, "", 100)
	if err != nil || !equalStrings(eventIDs(r.Events), ids) || r.Gap {
		t.Fatalf("EventsAfter(\"\") = %q gap %v, %v; want %q", eventIDs(r.Events), r.Gap, err, ids)
	}
	r, err = st.EventsAfter(ctx, "", 2)
	if err != nil || !equalStrings(eventIDs(r.Events), ids[:2]) {
		t.Fatalf("EventsAfter(\"\", 2) = %q, %v; want %q", eventIDs(r.Events), err, ids[:2])
	}

	before, err := st.EventIDBeforeLast(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if before != ids[2] {
		t.Fatalf("EventIDBeforeLast(2) = %q, want %q", before, ids[2])
	}
	r, err = st.EventsAfter(ctx, before, 100)
	if err != nil || !equalStrings(eventIDs(r.Events), ids[3:]) {
		t.Fatalf("EventsAfter(before last 2) = %q, %v; want %q", eventIDs(r.Events), err, ids[3:])
	}
	for _, n := range []int{5, 6} { // the log holds n events or fewer
		if id, err := st.EventIDBeforeLast(ctx, n); err != nil || id != "" {
			t.Fatalf("EventIDBeforeLast(%d) = %q, %v; want \"\"", n, id, err)
		}
	}

	// An id older than every event of a log that never lost one: no gap.
	if r, err := st.EventsAfter(ctx, "1-0", 100); err != nil || !equalStrings(eventIDs(r.Events), ids) || r.Gap {
		t.Fatalf("EventsAfter(1-0) = %q gap %v, %v; want all, no gap", eventIDs(r.Events), r.Gap, err)
	}

	last, err := st.LastEventID(ctx)
	if err != nil || last != ids[4] {
		t.Fatalf("LastEventID = %q, %v; want %q", last, err, ids[4])
	}
	if r, err := st.EventsAfter(ctx, last, 100); err != nil || len(r.Events) != 0 || r.Gap {
		t.Fatalf("EventsAfter(last) = %+v, %v; want nothing", r, err)
	}
}

func TestEventsAfterGap(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{EventsMaxLen: 100})

	_, ids := recordInterests(t, st, 300)
	n, err := rdb.XLen(ctx, st.Keys().Events()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n >= 300 || n < 100 {
		t.Fatalf("events stream length %d: want it trimmed to about 100 (MAXLEN ~)", n)
	}
	// The reader last saw the first event: the ones after it were trimmed.
	r, err := st.EventsAfter(ctx, ids[0], 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Gap {
		t.Fatalf("EventsAfter(first id) on a trimmed log: Gap false, want true")
	}
	if !equalStrings(eventIDs(r.Events), ids[300-n:]) {
		t.Fatalf("EventsAfter(first id) returned %d events, want the %d kept", len(r.Events), n)
	}
	// The reader saw the last event: nothing was missed.
	last := ids[len(ids)-1]
	if r, err := st.EventsAfter(ctx, last, 1000); err != nil || r.Gap || len(r.Events) != 0 {
		t.Fatalf("EventsAfter(last id) = %d events, gap %v, %v; want none, no gap", len(r.Events), r.Gap, err)
	}
	// Nor did one who saw the oldest event still kept.
	if r, err := st.EventsAfter(ctx, ids[300-n], 1000); err != nil || r.Gap || len(r.Events) != int(n)-1 {
		t.Fatalf("EventsAfter(oldest kept id) = %d events, gap %v, %v; want %d, no gap", len(r.Events), r.Gap, err, n-1)
	}
	// But one who saw a trimmed event older than the newest trimmed one did.
	if r, err := st.EventsAfter(ctx, ids[300-n-2], 1000); err != nil || !r.Gap {
		t.Fatalf("EventsAfter(an older trimmed id) gap %v, %v; want a gap", r.Gap, err)
	}
}

func TestEventsAfterGapAfterDelete(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	_, ids := recordInterests(t, st, 4)
	if err := rdb.XDel(ctx, st.Keys().Events(), ids[2]).Err(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		after string
		want  []string
		gap   bool
	}{
		{ids[0], []string{ids[1], ids[3]}, true},
		{ids[1], []string{ids[3]}, true},
		{ids[2], []string{ids[3]}, false},
		{ids[3], nil, false},
	}
	for _, c := range cases {
		r, err := st.EventsAfter(ctx, c.after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if !equalStrings(eventIDs(r.Events), c.want) || r.Gap != c.gap {
			t.Errorf("EventsAfter(%s) = %q gap %v, want %q gap %v", c.after, eventIDs(r.Events), r.Gap, c.want, c.gap)
		}
	}
}
