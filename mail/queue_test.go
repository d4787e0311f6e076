package mail_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/mail"
)

func TestEnqueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	before := time.Now()
	id, err := e.q.Enqueue(ctx, mail.Email{To: "ada@example.org", Subject: "Code", Text: "123456"})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := hex.DecodeString(id); err != nil || len(b) != 16 {
		t.Fatalf("assigned id %q, want 32 hex digits", id)
	}
	if got, err := e.q.Enqueue(ctx, mail.Email{ID: "given-id", To: "bob@example.org"}); err != nil || got != "given-id" {
		t.Fatalf("Enqueue with an id = %q, %v; want the id kept", got, err)
	}

	entries, err := e.rdb.XRange(ctx, e.keys.MailQueue(), "-", "+").Result()
	if err != nil || len(entries) != 2 {
		t.Fatalf("stream entries = %d (%v), want 2", len(entries), err)
	}
	var got mail.Email
	if err := json.Unmarshal([]byte(entries[0].Values["m"].(string)), &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != id || got.To != "ada@example.org" || got.Text != "123456" || got.CreatedAt.Before(before.Add(-time.Second)) {
		t.Fatalf("queued email = %+v", got)
	}
	groups, err := e.rdb.XInfoGroups(ctx, e.keys.MailQueue()).Result()
	if err != nil || len(groups) != 1 || groups[0].Name != e.keys.MailGroup() {
		t.Fatalf("groups = %+v (%v), want %q", groups, err, e.keys.MailGroup())
	}
}

func TestEnqueueRejectsInvalidEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	_, err := e.q.Enqueue(ctx, mail.Email{To: "a@b.c\r\nBcc: x", Subject: "Hi", Text: "x"})
	if voluntree.ErrorCode(err) != voluntree.EINVALID {
		t.Fatalf("Enqueue = %v, want an %s error", err, voluntree.EINVALID)
	}
	if n, err := e.rdb.Exists(ctx, e.keys.MailQueue()).Result(); err != nil || n != 0 {
		t.Fatalf("the stream exists (%v) after a rejected email", err)
	}
}

func TestOutboxSenderKeepsNewest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	s := mail.NewOutboxSender(e.rdb, e.keys)
	const n = mail.OutboxMax + 5
	for i := range n {
		if err := s.Send(ctx, mail.Email{ID: fmt.Sprint("e", i), To: "ada@example.org", Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if l, err := e.rdb.LLen(ctx, e.keys.MailOutbox()).Result(); err != nil || l != mail.OutboxMax {
		t.Fatalf("outbox length %d (%v), want %d", l, err, mail.OutboxMax)
	}
	tests := []struct {
		limit, want int
	}{{0, mail.OutboxMax}, {3, 3}, {1000, mail.OutboxMax}}
	for _, tt := range tests {
		out, err := e.q.Outbox(ctx, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != tt.want {
			t.Fatalf("Outbox(%d) has %d emails, want %d", tt.limit, len(out), tt.want)
		}
		for i, em := range out {
			if want := fmt.Sprint("e", n-1-i); em.ID != want {
				t.Fatalf("Outbox(%d)[%d] = %s, want %s (newest first)", tt.limit, i, em.ID, want)
			}
		}
	}
}
