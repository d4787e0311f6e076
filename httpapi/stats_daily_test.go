package httpapi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
	"github.com/voluntree/voluntree/redisstore"
)

// TestDailyStats: messages counted by UTC day and intent as the record script stores them,
// bookings by the day they were made, and the funnel over the signup's people; another
// organization's messages stay out.
func TestDailyStats(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	ctx := context.Background()
	owner := e.org(t, "org_a")
	e.org(t, "org_b")
	e.page(t, "org_a", "1001")
	su := e.createSignup(t, owner, "Cleanup")
	day1 := time.Date(2030, 3, 1, 23, 30, 0, 0, time.UTC)
	day2 := day1.Add(2 * time.Hour) // the next UTC day
	msg := func(i int, intent voluntree.Intent, at time.Time) voluntree.Interest {
		return voluntree.Interest{ID: fmt.Sprintf("1001_1_%d", i), PostID: "1001_1", PageID: "1001", SenderID: fmt.Sprintf("s%d", i),
			Kind: voluntree.KindComment, Text: "x", Intent: intent, CreatedAt: at, ReceivedAt: at, RecordedAt: at}
	}
	batch := []voluntree.Interest{msg(1, voluntree.IntentInterested, day1), msg(2, voluntree.IntentQuestion, day1),
		msg(3, voluntree.IntentInterested, day2), msg(4, voluntree.IntentThanks, day2), msg(5, voluntree.IntentThanks, day2)}
	if _, err := e.store.Record(ctx, "org_a", "1001_1", batch); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Record(ctx, "org_a", "1001_1", batch[:1]); err != nil { // redelivered: counted once
		t.Fatal(err)
	}
	if _, err := e.store.Record(ctx, "org_b", "2002_1", []voluntree.Interest{msg(9, voluntree.IntentInterested, day1)}); err != nil {
		t.Fatal(err)
	}
	// People: one booked, one waitlisted-less declined, one invited.
	for i, stage := range []string{"booked", "declined", "invited"} {
		st := &grainpb.ConversationState{OrgId: "org_a", SignupId: su.ID, Stage: stage, EmailVerified: stage == "booked"}
		b, _ := proto.Marshal(st)
		if _, err := e.store.SaveConversationEffects(ctx, fmt.Sprintf("1001:s%d", i), su.ID, 0, b, nil, "", stage); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.store.Book(ctx, su.ID, su.Slots[0].ID, 5, "1001:s0", redisstore.BookingRecord{SlotID: su.Slots[0].ID, At: day2}, 0); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Days []struct {
			Date     string           `json:"date"`
			Messages int64            `json:"messages"`
			Intents  map[string]int64 `json:"intents"`
			Bookings int              `json:"bookings"`
		} `json:"days"`
		Funnel map[string]int64 `json:"funnel"`
	}
	e.must(t, 200, owner, "GET", "/api/v1/stats/daily?from=2030-03-01&to=2030-03-03", nil, &out)
	if len(out.Days) != 3 || out.Days[0].Date != "2030-03-01" || out.Days[2].Date != "2030-03-03" {
		t.Fatalf("days %+v", out.Days)
	}
	d1, d2 := out.Days[0], out.Days[1]
	if d1.Messages != 2 || d1.Intents["interested"] != 1 || d1.Intents["question"] != 1 || d1.Bookings != 0 {
		t.Fatalf("day 1 %+v", d1)
	}
	if d2.Messages != 3 || d2.Intents["thanks"] != 2 || d2.Bookings != 1 || out.Days[2].Messages != 0 {
		t.Fatalf("day 2 %+v, day 3 %+v", d2, out.Days[2])
	}
	want := map[string]int64{"messages": 5, "interested": 2, "volunteers": 3, "answered": 2, "email_verified": 1, "booked": 1, "declined": 1}
	for k, v := range want {
		if out.Funnel[k] != v {
			t.Errorf("funnel %s = %d, want %d (%v)", k, out.Funnel[k], v, out.Funnel)
		}
	}
	e.mustFail(t, 400, owner, "GET", "/api/v1/stats/daily?from=2030-03-05&to=2030-03-01", nil)
}
