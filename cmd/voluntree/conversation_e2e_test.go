package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/internal/fakegraph"
	"github.com/voluntree/voluntree/mail"
	"github.com/voluntree/voluntree/redisstore"
)

// messengerVolunteer plays a person on Messenger against a real serve and the fake Graph API.
type messengerVolunteer struct {
	t    *testing.T
	n    *node
	e    *publishEnv
	psid string
	seq  int
	next int // messages before this one were awaited already
}

func (v *messengerVolunteer) say(text, quickReply string) {
	v.t.Helper()
	v.seq++
	b, sig := signed(v.t, facebook.MessagePayload(v.e.page, v.psid, fmt.Sprintf("m.%s.%d", v.psid, v.seq), text, quickReply, false, time.Now()))
	if code, out := v.n.webhook(v.t, b, sig); code != 200 {
		v.t.Fatalf("webhook: %d %v", code, out)
	}
}

func (v *messengerVolunteer) tap(title, payload string) {
	v.t.Helper()
	v.seq++
	b, sig := signed(v.t, facebook.MessagePayload(v.e.page, v.psid, fmt.Sprintf("m.%s.%d", v.psid, v.seq), title, payload, true, time.Now()))
	if code, out := v.n.webhook(v.t, b, sig); code != 200 {
		v.t.Fatalf("webhook: %d %v", code, out)
	}
}

// await waits for a message to the person containing contains, after the last one awaited,
// and returns it; it fails on any message sent twice (same metadata).
func (v *messengerVolunteer) await(contains string) fakegraph.Sent {
	v.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var mine []fakegraph.Sent
		for _, m := range v.e.graph.SentMessages(v.e.page) {
			if m.RecipientID == v.psid {
				mine = append(mine, m)
			}
		}
		seen := map[string]bool{}
		for _, m := range mine {
			if seen[m.Metadata] {
				v.t.Fatalf("effect %s sent twice: %q", m.Metadata, m.Text)
			}
			seen[m.Metadata] = true
		}
		for i := v.next; i < len(mine); i++ {
			if strings.Contains(mine[i].Text, contains) {
				v.next = i + 1
				return mine[i]
			}
		}
		if time.Now().After(deadline) {
			var got []string
			for _, m := range mine {
				got = append(got, m.Text)
			}
			v.t.Fatalf("no message containing %q; the person got %q\n%s", contains, got, v.n.log())
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

// TestMessengerConversationToBookedSlot: an interested comment gets one private reply; the
// person answers in Messenger (under another id, as Facebook does) and is taken through
// confirm, email, the emailed code and a slot to a booking; a question is answered from the
// facts mid-form; a stale button is refused; an ambiguous Send API failure is settled by the
// message's echo, not sent twice.
func TestMessengerConversationToBookedSlot(t *testing.T) {
	e := newPublishEnv(t, "e2e-conv", "VOLUNTREE_MAIL_OUTBOX=on", "VOLUNTREE_POLL_INTERVAL=0")
	n := startServe(t, e.env...)
	e.graph.SetWebhook(n.base+"/webhooks/facebook", e2eSecret)
	code, su := e.api(t, n, "POST", "/api/v1/signups", map[string]any{"title": "River cleanup", "time_zone": "Europe/Paris",
		"facts": "Meet at the boathouse. Gloves and bags are provided. Parking is free at the north entrance.",
		"slots": []map[string]any{
			{"id": "am", "date": "2030-06-01", "start": "09:00", "end": "12:00", "title": "Morning", "required": 10},
			{"id": "pm", "date": "2030-06-01", "start": "14:00", "end": "17:00", "required": 1},
		}})
	if code != 201 {
		t.Fatalf("create signup: %d %v", code, su)
	}
	code, post := e.api(t, n, "POST", "/api/v1/posts", map[string]any{"signup_id": su["id"], "page_id": e.page, "message": "Join us!"})
	if code != 201 {
		t.Fatalf("create post: %d %v", code, post)
	}
	var fbPost string
	waitRedis(t, func() bool {
		_, p := e.api(t, n, "GET", "/api/v1/posts/"+post["id"].(string), nil)
		fbPost, _ = p["facebook_post_id"].(string)
		return fbPost != ""
	}, "the post published")

	// The comment. Its author is someone else in Messenger: the private reply tells us who.
	commentID := fbPost + "_c1"
	e.graph.CommenterPSID(commentID, "psid-ada")
	b, sig := signed(t, facebook.CommentPayload(e.page, facebook.ChangeValue{CommentID: commentID, PostID: fbPost,
		From: &facebook.User{ID: "ada-on-comments", Name: "Ada Lovelace"}, Message: "Count me in!", CreatedTime: time.Now().Unix()}))
	if code, out := n.webhook(t, b, sig); code != 200 {
		t.Fatalf("comment webhook: %d %v", code, out)
	}
	v := &messengerVolunteer{t: t, n: n, e: e, psid: "psid-ada"}
	reply := v.await(`Thanks for your interest in "River cleanup"`)
	if reply.CommentID != commentID || reply.Metadata == "" {
		t.Fatalf("private reply %+v", reply)
	}
	// Redelivered comment webhook: no second private reply.
	if code, _ := n.webhook(t, b, sig); code != 200 {
		t.Fatal("redelivery refused")
	}

	// The answer fails ambiguously once (sent, then a 500): its echo settles it.
	e.graph.FailNext("POST /"+e.page+"/messages", 1, fakegraph.Failure{HTTPStatus: 500, Code: 2, Message: "unexpected", Deliver: true})
	v.say("Yes, I'd love to!", "")
	ask := v.await("What's your email address?")
	if len(ask.QuickReplies) != 1 || ask.QuickReplies[0].ContentType != "user_email" || ask.MessagingType != "RESPONSE" {
		t.Fatalf("email question %+v", ask)
	}
	v.say("Where can I park?", "")
	v.await("Parking is free at the north entrance.")
	v.await("What's your email address?")
	v.say("ada@example.org", "ada@example.org") // the user_email quick reply
	v.await("We've sent a 6-digit code to ada@example.org")
	code6 := outboxCode(t, e.store.Client(), e.prefix, "ada@example.org", "")
	v.say("000000", "")
	v.await("That code is not right. 2 tries left.")
	v.say("my code is "+code6, "")
	slots := v.await("Which slot suits you?")
	if len(slots.QuickReplies) != 2 || slots.QuickReplies[0].Title != "Sat 1 Jun 09:00" || !strings.HasPrefix(slots.QuickReplies[1].Payload, "SLOT:pm:") {
		t.Fatalf("slot options %+v", slots.QuickReplies)
	}
	v.tap("Sat 1 Jun 14:00", slots.QuickReplies[1].Payload)
	booked := v.await("You're booked: Sat 1 Jun 2030, 14:00–17:00 (Europe/Paris)")
	if len(booked.QuickReplies) != 2 {
		t.Fatalf("confirmation %+v", booked)
	}
	// The tap again (stale): nothing is booked twice.
	v.tap("Sat 1 Jun 14:00", slots.QuickReplies[1].Payload)
	v.await("That button is from an earlier message. You're booked: Sat 1 Jun 2030, 14:00–17:00")
	rec, ok, err := e.store.Booking(context.Background(), su["id"].(string), e.page+":ada-on-comments")
	if err != nil || !ok || rec.SlotID != "pm" || rec.Channel != "messenger" {
		t.Fatalf("booking %+v %v %v", rec, ok, err)
	}
	_, sv := e.api(t, n, "GET", "/api/v1/signups/"+su["id"].(string), nil)
	fills, _ := sv["fills"].([]any)
	if len(fills) != 2 || fills[1].(map[string]any)["filled"] != float64(1) {
		t.Fatalf("fills %v", sv["fills"])
	}
	// Each step showed live on the organization's feed (the dashboard's volunteer list):
	// volunteer events of the conversation, ending booked in pm with the email verified.
	var stages []string
	waitRedis(t, func() bool {
		r, err := e.store.EventsAfter(context.Background(), "acme", "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		stages = stages[:0]
		var last *voluntree.Volunteer
		for _, ev := range r.Events {
			if ev.Type == voluntree.EventVolunteer && ev.Volunteer != nil && ev.Volunteer.ConversationID == e.page+":ada-on-comments" {
				if last == nil || ev.Volunteer.Version > last.Version {
					last = ev.Volunteer
				}
				stages = append(stages, ev.Volunteer.Stage)
			}
		}
		return last != nil && last.Stage == "booked" && last.SlotID == "pm" && last.EmailVerified &&
			last.SignupID == su["id"] && last.Name == "Ada Lovelace" && last.Channel == "messenger"
	}, "the volunteer's steps on the live feed")
	if distinct := slices.Compact(slices.Sorted(slices.Values(stages))); len(distinct) < 3 {
		t.Errorf("volunteer events' stages %q: want the steps before booked too", stages)
	}
	// One new interest (the comment): the answers to the bot are messages of the conversation,
	// named after the person, not signups.
	r, err := e.store.EventsAfter(context.Background(), "acme", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	interests, turns := 0, 0
	for _, ev := range r.Events {
		switch {
		case ev.Type == voluntree.EventInterest:
			interests++
		case ev.Type == voluntree.EventMessage && ev.Interest != nil && ev.Interest.Turn:
			turns++
			if ev.Interest.SenderName != "Ada Lovelace" {
				t.Errorf("a turn of Ada's conversation is named %q", ev.Interest.SenderName)
			}
		}
	}
	if interests != 1 || turns < 3 {
		t.Errorf("%d interest events and %d turns, want 1 and the conversation's", interests, turns)
	}
	// The ambiguous send (delivered, answered 500) is settled by its echo, not sent again.
	waitRedis(t, func() bool {
		_, scrape := n.get(t, "/metrics")
		return strings.Contains(string(scrape), `voluntree_effects_total{code="",kind="send",outcome="echoed"} 1`)
	}, "the ambiguous send settled by its echo")
	if calls, sent := e.graph.CountCalls("POST /"+e.page+"/messages"), len(e.graph.SentMessages(e.page)); calls != sent {
		t.Errorf("%d Send API calls for %d messages", calls, sent)
	}
	n.stop(t)
}

// signupWithPost creates a signup and a published post for it; it returns the signup id and
// the Facebook post id.
func signupWithPost(t *testing.T, e *publishEnv, n *node, signup map[string]any) (string, string) {
	t.Helper()
	code, su := e.api(t, n, "POST", "/api/v1/signups", signup)
	if code != 201 {
		t.Fatalf("create signup: %d %v", code, su)
	}
	code, post := e.api(t, n, "POST", "/api/v1/posts", map[string]any{"signup_id": su["id"], "page_id": e.page, "message": "Join us!"})
	if code != 201 {
		t.Fatalf("create post: %d %v", code, post)
	}
	var fbPost string
	waitRedis(t, func() bool {
		_, p := e.api(t, n, "GET", "/api/v1/posts/"+post["id"].(string), nil)
		fbPost, _ = p["facebook_post_id"].(string)
		return fbPost != ""
	}, "the post published")
	return su["id"].(string), fbPost
}

// comment sends an interested comment of person (whose Messenger id is the same) on fbPost.
func (v *messengerVolunteer) comment(fbPost, name string) string {
	v.t.Helper()
	v.seq++
	id := fmt.Sprintf("%s_c_%s_%d", fbPost, v.psid, v.seq)
	v.e.graph.CommenterPSID(id, v.psid)
	b, sig := signed(v.t, facebook.CommentPayload(v.e.page, facebook.ChangeValue{CommentID: id, PostID: fbPost,
		From: &facebook.User{ID: v.psid, Name: name}, Message: "Count me in!", CreatedTime: time.Now().Unix()}))
	if code, out := v.n.webhook(v.t, b, sig); code != 200 {
		v.t.Fatalf("comment webhook: %d %v", code, out)
	}
	return id
}

// bookFirstSlot takes the person from the private reply to a booking of the first slot offered.
func (v *messengerVolunteer) bookFirstSlot(email string) {
	v.t.Helper()
	v.await("Thanks for your interest")
	v.say("yes", "")
	v.await("What's your email address?")
	v.say(email, email)
	v.await("We've sent a 6-digit code")
	code6 := outboxCode(v.t, v.e.store.Client(), v.e.prefix, email, "")
	v.say(code6, "")
	slots := v.await("Which slot suits you?")
	v.tap(slots.QuickReplies[0].Title, slots.QuickReplies[0].Payload)
	v.await("You're booked")
}

// TestMessengerRulesAndAdminChanges: a moved slot is announced to its volunteer once; "talk to
// a person" silences the bot until an admin, whose reply goes with the HUMAN_AGENT tag, hands
// it back; outside the 24-hour window an automated message is dropped, marked and emailed; a
// person Messenger says is unavailable is marked and not retried.
func TestMessengerRulesAndAdminChanges(t *testing.T) {
	e := newPublishEnv(t, "e2e-rules", "VOLUNTREE_MAIL_OUTBOX=on", "VOLUNTREE_POLL_INTERVAL=0")
	n := startServe(t, e.env...)
	e.graph.SetWebhook(n.base+"/webhooks/facebook", e2eSecret)
	slots := []map[string]any{
		{"id": "am", "date": "2030-06-01", "start": "09:00", "end": "12:00", "required": 10},
		{"id": "pm", "date": "2030-06-01", "start": "14:00", "end": "17:00", "required": 10},
	}
	signup, fbPost := signupWithPost(t, e, n, map[string]any{"title": "Park cleanup", "time_zone": "UTC",
		"facts": "Parking is free at the gate.", "slots": slots})
	bob := &messengerVolunteer{t: t, n: n, e: e, psid: "bob"}
	bob.comment(fbPost, "Bob Dylan")
	bob.bookFirstSlot("bob@example.org")
	conv := e.page + ":bob"

	// The admin moves the morning slot: Bob is told once, even if the update is sent twice.
	slots[0]["start"], slots[0]["end"] = "10:00", "13:00"
	put := map[string]any{"title": "Park cleanup", "time_zone": "UTC", "facts": "Parking is free at the gate.", "slots": slots}
	if code, out := e.api(t, n, "PUT", "/api/v1/signups/"+signup, put); code != 200 {
		t.Fatalf("move the slot: %d %v", code, out)
	}
	if code, _ := e.api(t, n, "PUT", "/api/v1/signups/"+signup, put); code != 200 {
		t.Fatal("the same update again")
	}
	moved := bob.await("Update from the organisers: Sat 1 Jun 2030, 09:00–12:00 (UTC) has moved to Sat 1 Jun 2030, 10:00–13:00 (UTC)")
	if moved.MessagingType != "RESPONSE" {
		t.Fatalf("moved: %+v", moved)
	}

	// Talk to a person: the bot says so, then is silent; the admin answers with HUMAN_AGENT.
	bob.say("Can I talk to a person please?", "")
	bob.await("someone from the team will answer you here soon")
	bob.say("hello??", "")
	code, view := e.api(t, n, "GET", "/api/v1/conversations/"+conv, nil)
	if code != 200 || view["handoff"] != true || view["stage"] != "booked" || view["slot_id"] != "am" || view["email_verified"] != true {
		t.Fatalf("conversation view: %d %v", code, view)
	}
	if code, _ := e.api(t, n, "GET", "/api/v1/conversations/"+e.page+":nobody", nil); code != 404 {
		t.Fatalf("an unknown conversation: %d", code)
	}
	if code, out := e.api(t, n, "POST", "/api/v1/conversations/"+conv+"/messages", map[string]any{"text": "Hi Bob, it's Sam from the team."}); code != 202 {
		t.Fatalf("admin reply: %d %v", code, out)
	}
	human := bob.await("Hi Bob, it's Sam from the team.")
	if human.MessagingType != "MESSAGE_TAG" || human.Tag != "HUMAN_AGENT" {
		t.Fatalf("admin reply sent as %s/%s", human.MessagingType, human.Tag)
	}
	if code, _ := e.api(t, n, "POST", "/api/v1/conversations/"+conv+"/release", nil); code != 202 {
		t.Fatal("release")
	}
	waitRedis(t, func() bool {
		_, v := e.api(t, n, "GET", "/api/v1/conversations/"+conv, nil)
		return v["handoff"] == false
	}, "the conversation handed back to the bot")
	bob.say("Where do I park?", "")
	bob.await("Parking is free at the gate.")

	// Bob's window has closed (Messenger says so): the cancellation of his slot is emailed.
	e.graph.OutsideWindow("bob", true)
	slots[0]["cancelled"] = true
	put["slots"] = slots
	if code, out := e.api(t, n, "PUT", "/api/v1/signups/"+signup, put); code != 200 {
		t.Fatalf("cancel the slot: %d %v", code, out)
	}
	q := mail.NewQueue(e.store.Client(), redisstore.NewKeys(e.prefix))
	waitRedis(t, func() bool {
		out, _ := q.Outbox(context.Background(), 100)
		for _, m := range out {
			if m.To == "bob@example.org" && strings.Contains(m.Text, "the organisers cancelled Sat 1 Jun 2030, 10:00–13:00") {
				return true
			}
		}
		return false
	}, "the cancellation emailed")
	waitRedis(t, func() bool {
		_, v := e.api(t, n, "GET", "/api/v1/conversations/"+conv, nil)
		d, _ := v["delivery"].(map[string]any)
		return d != nil && d["error"] == "outside_window" && d["dropped"] == float64(1) && v["slot_id"] == nil
	}, "the conversation marked outside the window, its slot freed")
	if _, ok, _ := e.store.Booking(context.Background(), signup, conv); ok {
		t.Error("the cancelled slot's booking is still there")
	}

	// A person Messenger says is unavailable: marked, not retried.
	e.graph.Unavailable("cy")
	cy := &messengerVolunteer{t: t, n: n, e: e, psid: "cy"}
	cy.comment(fbPost, "Cy Twombly")
	waitRedis(t, func() bool {
		d, _ := e.store.ConversationDelivery(context.Background(), e.page+":cy")
		return d.Error == "unavailable" && d.Code == 551
	}, "the unavailable person marked")
	if n := e.graph.CountCalls("POST /" + e.page + "/messages"); n != len(e.graph.SentMessages(e.page))+2 {
		t.Errorf("%d Send API calls for %d messages: only the window and unavailable refusals may be extra", n, len(e.graph.SentMessages(e.page)))
	}
	n.stop(t)
}

// TestCrashBetweenSendAndAck: the private reply reaches the person, and serve is killed
// (SIGKILL) before the Send API answers, so the effect is never marked done. After the
// restart the effect is redelivered; its write-ahead attempt mark and the message's echo show
// it went: it is not sent again, and the conversation goes on.
func TestCrashBetweenSendAndAck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := newPublishEnv(t, "e2e-crash-send", "VOLUNTREE_MAIL_OUTBOX=on", "VOLUNTREE_POLL_INTERVAL=0", "VOLUNTREE_ADDR="+addr)
	n := startServe(t, e.env...)
	e.graph.SetWebhook(n.base+"/webhooks/facebook", e2eSecret)
	_, fbPost := signupWithPost(t, e, n, map[string]any{"title": "Beach day", "time_zone": "UTC",
		"slots": []map[string]any{{"id": "a", "date": "2030-07-01", "start": "09:00", "end": "12:00", "required": 5}}})
	// The private reply is delivered, then its answer hangs: serve dies waiting for it.
	e.graph.FailNext("POST /"+e.page+"/messages", 1, fakegraph.Failure{Deliver: true, Hang: time.Minute, HTTPStatus: 500, Code: 2, Message: "never seen"})
	dee := &messengerVolunteer{t: t, n: n, e: e, psid: "dee"}
	dee.comment(fbPost, "Dee Dee")
	dee.await("Thanks for your interest")
	n.cmd.Process.Kill()
	<-n.exited
	n2 := startServe(t, e.env...)
	dee.n = n2
	dee.say("yes!", "")
	dee.await("What's your email address?")
	replies := 0
	for _, m := range e.graph.SentMessages(e.page) {
		if m.RecipientID == "dee" && strings.Contains(m.Text, "Thanks for your interest") {
			replies++
		}
	}
	if replies != 1 {
		t.Fatalf("%d private replies, want exactly 1", replies)
	}
	waitRedis(t, func() bool {
		_, scrape := n2.get(t, "/metrics")
		return strings.Contains(string(scrape), `voluntree_effects_total{code="",kind="private_reply",outcome="echoed"} 1`)
	}, "the redelivered private reply settled by its echo")
	n2.stop(t)
}

// TestConversationLoadgenSurvivesAKill runs the conversation load generator small: 150
// volunteers on both channels, serve SIGKILLed and restarted mid-run. It fails (non-zero exit)
// on any lost conversation, duplicate message or overbooked slot.
func TestConversationLoadgenSurvivesAKill(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report.json")
	code, stdout, stderr := runLoadgen(t, 3*time.Minute, "conversations", "-volunteers", "150", "-rate", "150",
		"-concurrency", "60", "-slots", "3", "-kill-after", "2s", "-timeout", "40s", "-json", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var rep struct {
		Booked      int64 `json:"booked"`
		Waitlisted  int64 `json:"waitlisted"`
		Lost        int64 `json:"lost"`
		Duplicates  int   `json:"duplicate_messages"`
		Overbooked  int   `json:"overbooked_slots"`
		SlotsBooked int64 `json:"slots_booked"`
		Capacity    int   `json:"capacity"`
		Killed      bool  `json:"killed"`
		Latency     struct {
			N int `json:"n"`
		} `json:"latency_ms"`
	}
	b, err := os.ReadFile(out)
	if err != nil || json.Unmarshal(b, &rep) != nil {
		t.Fatalf("report: %v %s", err, b)
	}
	if !rep.Killed || rep.Booked+rep.Waitlisted != 150 || rep.Waitlisted == 0 || rep.Lost != 0 || rep.Duplicates != 0 ||
		rep.Overbooked != 0 || rep.SlotsBooked != int64(rep.Capacity) || rep.Latency.N < 700 {
		t.Fatalf("report %+v\n%s", rep, stdout)
	}
}

// TestDisconnectedPageParksMessages: Graph refuses the page's token (190): the page is marked
// disconnected, its admins are told, and the private reply waits, parked; once the page is
// connected again it goes out, once.
func TestDisconnectedPageParksMessages(t *testing.T) {
	e := newPublishEnv(t, "e2e-parked", "VOLUNTREE_MAIL_OUTBOX=on", "VOLUNTREE_POLL_INTERVAL=0")
	n := startServe(t, e.env...)
	e.graph.SetWebhook(n.base+"/webhooks/facebook", e2eSecret)
	_, fbPost := signupWithPost(t, e, n, map[string]any{"title": "Tree planting", "time_zone": "UTC",
		"slots": []map[string]any{{"id": "a", "date": "2030-10-01", "start": "09:00", "end": "12:00", "required": 5}}})
	e.graph.FailNext("POST /"+e.page+"/messages", 1, fakegraph.Permanent(190, "Error validating access token: The session has been invalidated"))
	eve := &messengerVolunteer{t: t, n: n, e: e, psid: "eve"}
	eve.comment(fbPost, "Eve")
	ctx := context.Background()
	waitRedis(t, func() bool {
		pg, err := e.store.Page(ctx, e.page)
		return err == nil && pg.DisconnectedAt != nil
	}, "the page marked disconnected")
	n2 := e.graph.CountCalls("POST /" + e.page + "/messages")
	pg, _ := e.store.Page(ctx, e.page)
	// Connected again (as the Facebook Login callback saves it): the reply goes out.
	pg.DisconnectedAt, pg.Error = nil, ""
	if err := e.store.SavePage(ctx, pg); err != nil {
		t.Fatal(err)
	}
	eve.await("Thanks for your interest")
	if calls := e.graph.CountCalls("POST /" + e.page + "/messages"); calls != n2+1 {
		t.Errorf("%d Send API calls after the reconnection, want 1", calls-n2)
	}
	n.stop(t)
}

// outboxCode waits for the 6-digit code emailed to addr (of org, when not "") and returns it,
// read from the outbox under prefix.
func outboxCode(t *testing.T, rdb redis.UniversalClient, prefix, addr, org string) string {
	t.Helper()
	q := mail.NewQueue(rdb, redisstore.NewKeys(prefix))
	var code string
	waitRedis(t, func() bool {
		out, _ := q.Outbox(context.Background(), 100)
		for _, m := range out {
			if m.To == addr && (org == "" || m.Org == org) {
				code = regexp.MustCompile(`\d{6}`).FindString(m.Subject)
			}
		}
		return code != ""
	}, "the code emailed to "+addr)
	return code
}
