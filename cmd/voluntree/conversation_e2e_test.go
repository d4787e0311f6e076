package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

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
	q := mail.NewQueue(e.store.Client(), redisstore.NewKeys(e.prefix))
	var code6 string
	waitRedis(t, func() bool {
		out, _ := q.Outbox(context.Background(), 10)
		for _, m := range out {
			if m.To == "ada@example.org" {
				code6 = regexp.MustCompile(`\d{6}`).FindString(m.Subject)
			}
		}
		return code6 != ""
	}, "the code's email")
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
