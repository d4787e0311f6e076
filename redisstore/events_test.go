package redisstore_test

import (
	"encoding/json"
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
	got, err := st.Record(ctx, testOrg, "111_222", ins)
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

	sub := st.SubscribeAllEvents(ctx)
	defer sub.Close()
	// Wait for the subscription to be confirmed before publishing.
	msg, err := sub.Receive(ctx)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if s, ok := msg.(*redis.Subscription); !ok || s.Kind != "psubscribe" || s.Channel != st.Keys().EventsChannelPattern() {
		t.Fatalf("first reply %#v, want the subscription to %s", msg, st.Keys().EventsChannelPattern())
	}

	in := interest("m1", 0)
	rec, err := st.Record(ctx, testOrg, "111_222", []voluntree.Interest{in})
	if err != nil {
		t.Fatal(err)
	}
	m, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	if org, ok := st.OrgOfChannel(m.Channel); !ok || org != testOrg {
		t.Fatalf("published on %q (org %q), want %s's channel", m.Channel, org, testOrg)
	}
	if h, err := redisstore.DecodeEventHeader(m.Payload); err != nil || h.ID != rec[0].EventID || h.PostID != in.PostID {
		t.Fatalf("DecodeEventHeader(%s) = %+v, %v", m.Payload, h, err)
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
	r, err := st.EventsAfter(ctx, testOrg, "", 10)
	if err != nil || len(r.Events) != 1 || r.Events[0].ID != ev.ID || r.Events[0].Interest == nil {
		t.Fatalf("EventsAfter = %+v, %v", r, err)
	}
	diffInterest(t, *r.Events[0].Interest, in)

	// A duplicate publishes nothing; a message of another intent is published as a message
	// event with its intent, and then comes the next new interest.
	q := interest("m2", 1)
	q.Intent = voluntree.IntentThanks
	if _, err := st.Record(ctx, testOrg, "111_222", []voluntree.Interest{in, q, interest("m3", 2)}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		typ    voluntree.EventType
		intent voluntree.Intent
		id     string
	}{{voluntree.EventMessage, voluntree.IntentThanks, "m2"}, {voluntree.EventInterest, "", "m3"}} {
		m, err = sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := redisstore.DecodeEvent(m.Payload)
		if err != nil || ev.Type != want.typ || ev.Intent != want.intent || ev.Interest == nil || ev.Interest.ID != want.id {
			t.Fatalf("next event %+v, %v; want %s %s of %s", ev, err, want.typ, want.intent, want.id)
		}
		h, err := redisstore.DecodeEventHeader(m.Payload)
		if err != nil || h.Type != want.typ || h.Intent != want.intent || h.PostID != "111_222" {
			t.Fatalf("header %+v, %v", h, err)
		}
	}
}

// Each organization has its own log and channel: recording for one never shows in another's.
func TestEventsArePerOrganization(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := newStore(t, redisstore.Config{})
	a, b := interest("a1", 0), interest("b1", 1)
	a.PostID, b.PostID = "111_1", "222_1"
	if _, err := st.Record(ctx, "org_a", "111_1", []voluntree.Interest{a}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Record(ctx, "org_b", "222_1", []voluntree.Interest{b}); err != nil {
		t.Fatal(err)
	}
	post := voluntree.Event{Type: voluntree.EventPost, PostID: "po_1", Post: &voluntree.PostUpdate{ID: "po_1", Status: voluntree.PostPublished}}
	if _, err := st.AppendEvent(ctx, "org_b", post); err != nil {
		t.Fatal(err)
	}
	for org, want := range map[string][]string{"org_a": {"a1"}, "org_b": {"b1", "po_1"}, "org_c": nil} {
		r, err := st.EventsAfter(ctx, org, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ev := range r.Events {
			if ev.Interest != nil {
				got = append(got, ev.Interest.ID)
			} else {
				got = append(got, ev.PostID)
			}
		}
		if !equalStrings(got, want) {
			t.Errorf("%s's log = %q, want %q", org, got, want)
		}
	}
	// An event of no organization goes nowhere.
	if id, err := st.AppendEvent(ctx, "", post); err != nil || id != "" {
		t.Fatalf("AppendEvent(no org) = %q, %v; want nothing", id, err)
	}
}

// A page of no organization: its messages are counted once, nothing is stored for anyone
// and no event is published.
func TestRecordWithoutOrganization(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	in := interest("u1", 0)
	for range 2 {
		if _, err := st.Record(ctx, "", in.PostID, []voluntree.Interest{in}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := st.Counts(ctx, "", in.PostID)
	if err != nil || c.Intents[voluntree.IntentInterested] != 1 || c.Interests != 0 {
		t.Fatalf("Counts = %+v, %v; want one interested message counted, no interest stored", c, err)
	}
	if keys := keysMatching(t, ctx, rdb, st.Keys().Prefix()+":*events*"); len(keys) != 0 {
		t.Fatalf("event keys %q; want none", keys)
	}
}

func TestDecodeEventHeader(t *testing.T) {
	t.Parallel()
	cases := []struct {
		payload  string
		id, post string
		ok       bool
	}{
		{`{"id":"1-0","type":"interest","post_id":"111_2","interest":{"id":"m","post_id":"111_2"}}`, "1-0", "111_2", true},
		{`{"id":"1-0","type":"interest","interest":{"id":"m","post_id":"x"}}`, "1-0", "", true},
		{`{"id":"1-0","type":"post","post_id":"po_1","post":{}}`, "1-0", "po_1", true},
		{`{"type":"post","post_id":"po_1","id":"2-0"}`, "2-0", "po_1", true},
		{`{"id":"1-0","type":"interest","post_id":"a\"b"}`, "1-0", `a"b`, true},
		{`{"id":"1-0","type":"x"}`, "1-0", "", true},
		{`{"id":"1-0","type":"message","post_id":"1_2","intent":"question","interest":{"intent":"question"}}`, "1-0", "1_2", true},
		{`{"id":"1-0","type":"message","intent":"donate","interest":{"intent":"donate"}}`, "1-0", "", true},
		{`{"id":"","type":"x"}`, "", "", false},
		{`{"id":"1-0",`, "", "", false},
		{``, "", "", false},
	}
	for _, c := range cases {
		h, err := redisstore.DecodeEventHeader(c.payload)
		if (err == nil) != c.ok || (c.ok && (h.ID != c.id || h.PostID != c.post)) {
			t.Errorf("DecodeEventHeader(%s) = %+v, %v; want id %q post %q ok %v", c.payload, h, err, c.id, c.post, c.ok)
		}
	}
}

// FuzzEventHeader: the header read from an event as the scripts publish it (its JSON with the
// id in front) is the event's own, whatever its post, intent and nested interest hold.
func FuzzEventHeader(f *testing.F) {
	f.Add("1-0", "message", "1_2", "question", "1_2", "question")
	f.Add("1-0", "interest", "", "", "x", "interested")
	f.Add("9-9", "post", "a\"b", "", "", "")
	f.Fuzz(func(t *testing.T, id, typ, post, intent, innerPost, innerIntent string) {
		if id == "" || typ == "" {
			return
		}
		ev := voluntree.Event{Type: voluntree.EventType(typ), PostID: post, Intent: voluntree.Intent(intent),
			Interest: &voluntree.Interest{PostID: innerPost, Intent: voluntree.Intent(innerIntent)}}
		b, err := json.Marshal(ev)
		if err != nil {
			return
		}
		idJSON, _ := json.Marshal(id)
		payload := `{"id":` + string(idJSON) + `,` + string(b[1:])
		var want redisstore.EventHeader
		if json.Unmarshal([]byte(payload), &want) != nil {
			return // not UTF-8 that survives a round trip
		}
		got, err := redisstore.DecodeEventHeader(payload)
		if err != nil || got != want {
			t.Fatalf("DecodeEventHeader(%s) = %+v, %v; want %+v", payload, got, err, want)
		}
	})
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

	anyEvent := func(redisstore.EventHeader) bool { return true }
	// Empty log.
	if id, err := st.LastEventID(ctx, testOrg); err != nil || id != "" {
		t.Fatalf("LastEventID of an empty log = %q, %v", id, err)
	}
	if r, err := st.EventsAfter(ctx, testOrg, "", 10); err != nil || len(r.Events) != 0 || r.Gap {
		t.Fatalf("EventsAfter of an empty log = %+v, %v", r, err)
	}
	if r, err := st.EventsAfter(ctx, testOrg, "1-0", 10); err != nil || len(r.Events) != 0 || r.Gap {
		t.Fatalf("EventsAfter(1-0) of an empty log = %+v, %v", r, err)
	}
	if id, err := st.EventIDBeforeLastMatching(ctx, testOrg, 2, anyEvent); err != nil || id != "" {
		t.Fatalf("EventIDBeforeLast of an empty log = %q, %v", id, err)
	}

	ins, ids := recordInterests(t, st, 5)

	r, err := st.EventsAfter(ctx, testOrg, ids[0], 100)
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

	r, err = st.EventsAfter(ctx, testOrg, "", 100)
	if err != nil || !equalStrings(eventIDs(r.Events), ids) || r.Gap {
		t.Fatalf("EventsAfter(\"\") = %q gap %v, %v; want %q", eventIDs(r.Events), r.Gap, err, ids)
	}
	r, err = st.EventsAfter(ctx, testOrg, "", 2)
	if err != nil || !equalStrings(eventIDs(r.Events), ids[:2]) {
		t.Fatalf("EventsAfter(\"\", 2) = %q, %v; want %q", eventIDs(r.Events), err, ids[:2])
	}

	before, err := st.EventIDBeforeLastMatching(ctx, testOrg, 2, anyEvent)
	if err != nil {
		t.Fatal(err)
	}
	if before != ids[2] {
		t.Fatalf("EventIDBeforeLast(2) = %q, want %q", before, ids[2])
	}
	r, err = st.EventsAfter(ctx, testOrg, before, 100)
	if err != nil || !equalStrings(eventIDs(r.Events), ids[3:]) {
		t.Fatalf("EventsAfter(before last 2) = %q, %v; want %q", eventIDs(r.Events), err, ids[3:])
	}
	for _, n := range []int{5, 6} { // the log holds n events or fewer
		if id, err := st.EventIDBeforeLastMatching(ctx, testOrg, n, anyEvent); err != nil || id != "" {
			t.Fatalf("EventIDBeforeLast(%d) = %q, %v; want \"\"", n, id, err)
		}
	}

	// An id older than every event of a log that never lost one: no gap.
	if r, err := st.EventsAfter(ctx, testOrg, "1-0", 100); err != nil || !equalStrings(eventIDs(r.Events), ids) || r.Gap {
		t.Fatalf("EventsAfter(1-0) = %q gap %v, %v; want all, no gap", eventIDs(r.Events), r.Gap, err)
	}

	last, err := st.LastEventID(ctx, testOrg)
	if err != nil || last != ids[4] {
		t.Fatalf("LastEventID = %q, %v; want %q", last, err, ids[4])
	}
	if r, err := st.EventsAfter(ctx, testOrg, last, 100); err != nil || len(r.Events) != 0 || r.Gap {
		t.Fatalf("EventsAfter(last) = %+v, %v; want nothing", r, err)
	}
}

func TestEventsAfterGap(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{EventsMaxLen: 100})

	_, ids := recordInterests(t, st, 300)
	n, err := rdb.XLen(ctx, st.Keys().OrgEvents(testOrg)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n >= 300 || n < 100 {
		t.Fatalf("events stream length %d: want it trimmed to about 100 (MAXLEN ~)", n)
	}
	// The reader last saw the first event: the ones after it were trimmed.
	r, err := st.EventsAfter(ctx, testOrg, ids[0], 1000)
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
	if r, err := st.EventsAfter(ctx, testOrg, last, 1000); err != nil || r.Gap || len(r.Events) != 0 {
		t.Fatalf("EventsAfter(last id) = %d events, gap %v, %v; want none, no gap", len(r.Events), r.Gap, err)
	}
	// Nor did one who saw the oldest event still kept.
	if r, err := st.EventsAfter(ctx, testOrg, ids[300-n], 1000); err != nil || r.Gap || len(r.Events) != int(n)-1 {
		t.Fatalf("EventsAfter(oldest kept id) = %d events, gap %v, %v; want %d, no gap", len(r.Events), r.Gap, err, n-1)
	}
	// But one who saw a trimmed event older than the newest trimmed one did.
	if r, err := st.EventsAfter(ctx, testOrg, ids[300-n-2], 1000); err != nil || !r.Gap {
		t.Fatalf("EventsAfter(an older trimmed id) gap %v, %v; want a gap", r.Gap, err)
	}
}

func TestEventsAfterGapAfterDelete(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	_, ids := recordInterests(t, st, 4)
	if err := rdb.XDel(ctx, st.Keys().OrgEvents(testOrg), ids[2]).Err(); err != nil {
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
		r, err := st.EventsAfter(ctx, testOrg, c.after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if !equalStrings(eventIDs(r.Events), c.want) || r.Gap != c.gap {
			t.Errorf("EventsAfter(%s) = %q gap %v, want %q gap %v", c.after, eventIDs(r.Events), r.Gap, c.want, c.gap)
		}
	}
}

// TestTailCountsMatchingEvents: a tail counts the events its filter accepts — the last 2
// interests of a log where questions came after them start before the older of the two.
func TestTailCountsMatchingEvents(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, redisstore.Config{})
	ctx := testCtx(t)
	var ids []string
	for i, in := range []voluntree.Intent{"interested", "question", "interested", "question", "interested", "question", "question", "donate"} {
		x := interest(fmt.Sprintf("tm%d", i), i+1)
		x.Intent = in
		rec, err := st.Record(ctx, testOrg, "111_222", []voluntree.Interest{x})
		if err != nil || rec[0].EventID == "" {
			t.Fatalf("record %d: %+v, %v", i, rec, err)
		}
		ids = append(ids, rec[0].EventID)
	}
	interests := func(h redisstore.EventHeader) bool { return h.Type == voluntree.EventInterest }
	before, err := st.EventIDBeforeLastMatching(ctx, testOrg, 2, interests)
	if err != nil || before != ids[1] {
		t.Fatalf("before the last 2 interests = %q, %v; want %q (the question before the 2nd interest)", before, err, ids[1])
	}
	if before, err := st.EventIDBeforeLastMatching(ctx, testOrg, 3, interests); err != nil || before != "" {
		t.Fatalf("before the last 3 interests = %q, %v; want the whole log", before, err)
	}
	donate := func(h redisstore.EventHeader) bool { return h.Intent == voluntree.IntentDonate }
	if before, err := st.EventIDBeforeLastMatching(ctx, testOrg, 1, donate); err != nil || before != ids[6] {
		t.Fatalf("before the last donation = %q, %v; want %q", before, err, ids[6])
	}
}
