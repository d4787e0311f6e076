package redisstore_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// interest returns an interested Interest for message id on post 111_222, recorded i seconds
// after baseTime.
func interest(id string, i int) voluntree.Interest {
	return voluntree.Interest{
		ID: id, PostID: "111_222", PageID: "111", SenderID: "u-" + id, SenderName: "Ann " + id,
		Kind: voluntree.KindComment, Text: "Count me in! 🙋 " + id, Intent: voluntree.IntentInterested,
		Confidence: 0.87654,
		CreatedAt:  baseTime.Add(-time.Minute).Add(123456789 * time.Nanosecond),
		ReceivedAt: baseTime.Add(-30 * time.Second),
		RecordedAt: baseTime.Add(time.Duration(i) * time.Second).Add(987 * time.Microsecond),
	}
}

func diffInterest(t *testing.T, got, want voluntree.Interest) {
	t.Helper()
	if got.ID != want.ID || got.PostID != want.PostID || got.PageID != want.PageID ||
		got.SenderID != want.SenderID || got.SenderName != want.SenderName || got.Kind != want.Kind ||
		got.Text != want.Text || got.Intent != want.Intent {
		t.Errorf("interest %+v, want %+v", got, want)
	}
	if math.Abs(float64(got.Confidence-want.Confidence)) > 1e-4 {
		t.Errorf("interest %s confidence %v, want %v", want.ID, got.Confidence, want.Confidence)
	}
	for _, c := range []struct {
		name      string
		got, want time.Time
	}{
		{"created_at", got.CreatedAt, want.CreatedAt},
		{"received_at", got.ReceivedAt, want.ReceivedAt},
		{"recorded_at", got.RecordedAt, want.RecordedAt},
	} {
		if !c.got.Equal(c.want) {
			t.Errorf("interest %s %s %v, want %v", want.ID, c.name, c.got, c.want)
		}
	}
}

func TestRecordIdempotent(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	k := st.Keys()
	const post = "111_222"

	in := interest("m1", 0)
	first, err := st.Record(ctx, testOrg, post, []voluntree.Interest{in})
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	if len(first) != 1 || first[0].Outcome != redisstore.NewInterest || first[0].EventID == "" {
		t.Fatalf("Record = %+v, want NewInterest with an event id", first)
	}
	for i := 0; i < 2; i++ { // redeliveries
		again, err := st.Record(ctx, testOrg, post, []voluntree.Interest{in})
		if err != nil {
			t.Fatalf("Record again: %v", err)
		}
		if len(again) != 1 || again[0] != (redisstore.Recorded{Outcome: redisstore.Duplicate}) {
			t.Fatalf("Record again = %+v, want Duplicate", again)
		}
	}
	if n, _ := rdb.XLen(ctx, k.OrgEvents(testOrg)).Result(); n != 1 {
		t.Fatalf("events stream has %d entries, want 1", n)
	}
	if n, _ := rdb.ZCard(ctx, k.PostInterests(testOrg, post)).Result(); n != 1 {
		t.Fatalf("interests index has %d members, want 1", n)
	}
	// The organization's stats indexes got the interest once, at the time it was written.
	conv := voluntree.ConversationID(in.PageID, in.SenderID)
	if zs, _ := rdb.ZRangeWithScores(ctx, k.OrgInterests(testOrg), 0, -1).Result(); len(zs) != 1 ||
		zs[0].Member != conv+"|"+in.ID || int64(zs[0].Score) != in.CreatedAt.UnixMilli() {
		t.Fatalf("organization interests %+v, want %s|%s at %d", zs, conv, in.ID, in.CreatedAt.UnixMilli())
	}
	if zs, _ := rdb.ZRangeWithScores(ctx, k.OrgVolunteers(testOrg), 0, -1).Result(); len(zs) != 1 || zs[0].Member != conv {
		t.Fatalf("organization volunteers %+v, want %s", zs, conv)
	}
	// The event in the log is the one Record reported.
	xs, err := rdb.XRange(ctx, k.OrgEvents(testOrg), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := xs[0].Values["data"].(string); xs[0].ID != first[0].EventID || !strings.HasPrefix(data, `{"type":"interest","post_id":"`+post+`"`) {
		t.Fatalf("event entry %+v, want id %s, an interest of post %s", xs[0], first[0].EventID, post)
	}

	q := in
	q.ID, q.Intent, q.Text = "m2", voluntree.IntentQuestion, "When does it start?"
	got, err := st.Record(ctx, testOrg, post, []voluntree.Interest{q})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Outcome != redisstore.Counted || got[0].EventID == "" {
		t.Fatalf("Record question = %+v, want Counted with its message event", got)
	}
	if got, _ := st.Record(ctx, testOrg, post, []voluntree.Interest{q}); got[0].Outcome != redisstore.Duplicate {
		t.Fatalf("Record question again = %+v, want Duplicate", got)
	}
	// A message counted as a question is not counted again with another intent.
	q2 := q
	q2.Intent = voluntree.IntentInterested
	if got, _ := st.Record(ctx, testOrg, post, []voluntree.Interest{q2}); got[0].Outcome != redisstore.Duplicate {
		t.Fatalf("Record of a counted message with another intent = %+v, want Duplicate", got)
	}

	counts, err := st.Counts(ctx, testOrg, post)
	if err != nil {
		t.Fatal(err)
	}
	wantIntents := map[voluntree.Intent]int64{voluntree.IntentInterested: 1, voluntree.IntentQuestion: 1}
	if len(counts.Intents) != len(wantIntents) || counts.Interests != 1 {
		t.Fatalf("Counts = %+v, want %v and 1 interest", counts, wantIntents)
	}
	for intent, n := range wantIntents {
		if counts.Intents[intent] != n {
			t.Fatalf("Counts = %+v, want %v", counts, wantIntents)
		}
	}
	if n, _ := rdb.XLen(ctx, k.OrgEvents(testOrg)).Result(); n != 2 {
		t.Fatalf("events stream has %d entries after the question, want 2 (the interest, the question once)", n)
	}

	list, err := st.Interests(ctx, testOrg, post, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("Interests = %d, want 1", len(list))
	}
	diffInterest(t, list[0], in)

	// Another post is untouched.
	other, err := st.Counts(ctx, testOrg, "111_999")
	if err != nil || len(other.Intents) != 0 || other.Interests != 0 {
		t.Fatalf("Counts of another post = %+v, %v", other, err)
	}
	if l, err := st.Interests(ctx, testOrg, "111_999", 0, 10); err != nil || len(l) != 0 {
		t.Fatalf("Interests of another post = %v, %v", l, err)
	}
}

func TestRecordBatch(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := newStore(t, redisstore.Config{})
	const post = "111_222"

	if got, err := st.Record(ctx, testOrg, post, nil); err != nil || len(got) != 0 {
		t.Fatalf("Record(nil) = %v, %v", got, err)
	}
	a, b, c := interest("a", 2), interest("b", 1), interest("c", 3)
	d := interest("d", 4)
	d.Intent = voluntree.IntentDonate
	got, err := st.Record(ctx, testOrg, post, []voluntree.Interest{a, d, b, a, c})
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes := []redisstore.Outcome{redisstore.NewInterest, redisstore.Counted, redisstore.NewInterest,
		redisstore.Duplicate, redisstore.NewInterest}
	if len(got) != len(wantOutcomes) {
		t.Fatalf("Record = %+v", got)
	}
	for i, w := range wantOutcomes {
		if got[i].Outcome != w || (w == redisstore.Duplicate) != (got[i].EventID == "") {
			t.Errorf("outcome %d = %+v, want %v", i, got[i], w)
		}
	}
	if redisstore.CompareIDs(got[0].EventID, got[2].EventID) >= 0 || redisstore.CompareIDs(got[2].EventID, got[4].EventID) >= 0 {
		t.Errorf("event ids not in call order: %+v", got)
	}

	counts, err := st.Counts(ctx, testOrg, post)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Intents[voluntree.IntentInterested] != 3 || counts.Intents[voluntree.IntentDonate] != 1 || counts.Interests != 3 {
		t.Fatalf("Counts = %+v", counts)
	}

	// Interests are listed in recording order (b was recorded before a), paged.
	all, err := st.Interests(ctx, testOrg, post, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []voluntree.Interest{b, a, c}
	if len(all) != len(want) {
		t.Fatalf("Interests = %d, want %d", len(all), len(want))
	}
	for i := range want {
		diffInterest(t, all[i], want[i])
	}
	page, err := st.Interests(ctx, testOrg, post, 1, 1)
	if err != nil || len(page) != 1 || page[0].ID != "a" {
		t.Fatalf("Interests(1, 1) = %+v, %v; want [a]", page, err)
	}
	page, err = st.Interests(ctx, testOrg, post, 2, 10)
	if err != nil || len(page) != 1 || page[0].ID != "c" {
		t.Fatalf("Interests(2, 10) = %+v, %v; want [c]", page, err)
	}
	if page, err := st.Interests(ctx, testOrg, post, 3, 10); err != nil || len(page) != 0 {
		t.Fatalf("Interests past the end = %+v, %v", page, err)
	}
}

func TestRecordPageInbox(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := newStore(t, redisstore.Config{})
	inbox := redisstore.PageInbox("111")
	if inbox != "page:111" {
		t.Fatalf("PageInbox = %q", inbox)
	}
	in := interest("m.1", 0)
	in.PostID, in.Kind = "", voluntree.KindMessage
	got, err := st.Record(ctx, testOrg, inbox, []voluntree.Interest{in})
	if err != nil || got[0].Outcome != redisstore.NewInterest {
		t.Fatalf("Record = %+v, %v", got, err)
	}
	list, err := st.Interests(ctx, testOrg, inbox, 0, 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("Interests = %+v, %v", list, err)
	}
	diffInterest(t, list[0], in)
	r, err := st.EventsAfter(ctx, testOrg, "", 10)
	if err != nil || len(r.Events) != 1 || r.Events[0].PostID != "" || r.Events[0].Interest == nil || r.Events[0].Interest.ID != "m.1" {
		t.Fatalf("EventsAfter = %+v, %v", r, err)
	}
}

// Interests returns "at most limit": a limit of 0 (or less) returns nothing, not the whole
// index (ZRANGE 0 -1 would).
func TestInterestsLimit(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := newStore(t, redisstore.Config{})
	const post = "111_222"
	if _, err := st.Record(ctx, testOrg, post, []voluntree.Interest{interest("a", 0), interest("b", 1), interest("c", 2)}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		offset, limit int64
		want          []string
	}{
		{0, 10, []string{"a", "b", "c"}},
		{0, 3, []string{"a", "b", "c"}},
		{0, 2, []string{"a", "b"}},
		{1, 1, []string{"b"}},
		{2, 5, []string{"c"}},
		{3, 1, nil},
		{0, 0, nil},
		{1, 0, nil},
		{0, -1, nil},
	}
	for _, c := range cases {
		got, err := st.Interests(ctx, testOrg, post, c.offset, c.limit)
		if err != nil {
			t.Fatalf("Interests(%d, %d): %v", c.offset, c.limit, err)
		}
		ids := make([]string, len(got))
		for i, in := range got {
			ids[i] = in.ID
		}
		if !equalStrings(ids, c.want) {
			t.Errorf("Interests(offset %d, limit %d) = %q, want %q", c.offset, c.limit, ids, c.want)
		}
	}
}
