package mail_test

import (
	"context"
	"encoding/json"
	"fmt"
	netmail "net/mail"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree/internal/smtpsink"
	"github.com/voluntree/voluntree/mail"
	"github.com/voluntree/voluntree/redisstore"
)

var created = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// bodyText is what a receiver decodes from m's body, with LF line ends.
func bodyText(t *testing.T, m smtpsink.Message) string {
	t.Helper()
	text, err := m.Text()
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(text, "\r\n", "\n")
}

func TestWorkerDeliversThroughSMTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	emails := []mail.Email{
		{To: "ada@example.org", Subject: "Your code", Text: "Your code is 123456.\n", CreatedAt: created},
		{
			To: "Zoë Ünal <zoe@example.org>", Subject: "Votre code — 验证码 ✓", CreatedAt: created.Add(time.Second),
			Text: "Bonjour Zoë,\n\n.\n..a line of dots\nvotre code : 654321 = ok   \n" +
				strings.Repeat("long line with = and é ", 10) + "\nno final line break",
		},
		{To: "bob@example.org", Subject: "", Text: "", CreatedAt: created.Add(2 * time.Second)},
	}
	for i := range emails {
		id, err := e.q.Enqueue(ctx, emails[i])
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		emails[i].ID = id
	}

	w := mail.NewWorker(e.rdb, e.keys, smtpSender(t, e.sink), fastConfig("w1"), nil)
	runWorker(t, w)
	msgs, err := e.sink.Wait(ctx, len(emails))
	if err != nil {
		t.Fatal(err)
	}
	waitStats(t, w, mail.WorkerStats{Sent: 3})
	e.waitDrained(t)
	if len(e.sink.Messages()) != 3 {
		t.Fatalf("%d messages arrived, want 3", len(e.sink.Messages()))
	}

	byMessageID := make(map[string]smtpsink.Message)
	for _, m := range msgs {
		byMessageID[m.Header.Get("Message-ID")] = m
	}
	for _, em := range emails {
		m, ok := byMessageID["<"+em.ID+"@voluntree>"]
		if !ok {
			t.Fatalf("no message with Message-ID <%s@voluntree> among %d", em.ID, len(msgs))
		}
		to, _ := netmail.ParseAddress(em.To)
		if m.From != "noreply@example.org" || !reflect.DeepEqual(m.To, []string{to.Address}) {
			t.Errorf("%s: envelope %q → %q", em.ID, m.From, m.To)
		}
		if from, err := netmail.ParseAddress(m.Header.Get("From")); err != nil || from.Name != "Voluntree" || from.Address != "noreply@example.org" {
			t.Errorf("%s: From = %q (%v)", em.ID, m.Header.Get("From"), err)
		}
		if got, err := netmail.ParseAddress(m.Header.Get("To")); err != nil || *got != *to {
			t.Errorf("%s: To = %q → %+v (%v), want %+v", em.ID, m.Header.Get("To"), got, err, to)
		}
		if got := m.Subject(); got != em.Subject {
			t.Errorf("%s: Subject = %q, want %q", em.ID, got, em.Subject)
		}
		if d, err := m.Header.Date(); err != nil || !d.Equal(em.CreatedAt) {
			t.Errorf("%s: Date = %q (%v), want %s", em.ID, m.Header.Get("Date"), err, em.CreatedAt)
		}
		for k, v := range map[string]string{
			"MIME-Version": "1.0", "Content-Type": "text/plain; charset=utf-8",
			"Content-Transfer-Encoding": "quoted-printable",
		} {
			if got := m.Header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", em.ID, k, got, v)
			}
		}
		want := em.Text
		if !strings.HasSuffix(want, "\n") {
			want += "\n" // a message's body ends with a line break
		}
		if got := bodyText(t, m); got != want && !(em.Text == "" && got == "") {
			t.Errorf("%s: body = %q, want %q", em.ID, got, want)
		}
		for i, line := range strings.Split(string(m.Data), "\r\n") {
			if len(line) > 998 || strings.ContainsFunc(line, func(r rune) bool { return r > 126 }) {
				t.Errorf("%s: line %d is not 7-bit or longer than 998: %q", em.ID, i, line)
			}
		}
	}
}

func TestWorkerRetriesTemporaryFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	e.sink.FailNext(2, 451, "4.3.0 try again later")
	id, err := e.q.Enqueue(ctx, mail.Email{To: "ada@example.org", Subject: "Code", Text: "123456"})
	if err != nil {
		t.Fatal(err)
	}
	w := mail.NewWorker(e.rdb, e.keys, smtpSender(t, e.sink), fastConfig("w1"), nil)
	runWorker(t, w)
	if _, err := e.sink.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitStats(t, w, mail.WorkerStats{Sent: 1, Retried: 2})
	e.waitDrained(t)
	msgs := e.sink.Messages()
	if len(msgs) != 1 || msgs[0].Header.Get("Message-ID") != "<"+id+"@voluntree>" {
		t.Fatalf("messages = %d, want the one email once", len(msgs))
	}
	if dead, _ := e.q.Dead(ctx, 10); len(dead) != 0 {
		t.Fatalf("dead emails: %+v", dead)
	}
}

func TestWorkerDeadLettersPermanentFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	e.sink.FailNext(1, 550, "5.1.1 no such user")
	id, err := e.q.Enqueue(ctx, mail.Email{To: "nobody@example.org", Subject: "Code", Text: "123456"})
	if err != nil {
		t.Fatal(err)
	}
	w := mail.NewWorker(e.rdb, e.keys, smtpSender(t, e.sink), fastConfig("w1"), nil)
	runWorker(t, w)

	d := e.waitDead(t, 1)[0]
	if d.Email.ID != id || d.Email.To != "nobody@example.org" || d.Deliveries != 1 || d.EntryID == "" ||
		!strings.Contains(d.Error, "550") || !strings.Contains(d.Error, "no such user") || time.Since(d.At) > time.Minute {
		t.Fatalf("dead email = %+v", d)
	}
	waitStats(t, w, mail.WorkerStats{Dead: 1})
	e.waitDrained(t) // acknowledged and removed: it will not be retried

	// The worker goes on; only the next email arrives.
	next, err := e.q.Enqueue(ctx, mail.Email{To: "ada@example.org", Subject: "Code", Text: "1"})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := e.sink.Wait(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	waitStats(t, w, mail.WorkerStats{Sent: 1, Dead: 1})
	if len(msgs) != 1 || msgs[0].Header.Get("Message-ID") != "<"+next+"@voluntree>" {
		t.Fatalf("messages = %+v, want only the second email", msgs)
	}
}

func TestWorkerGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.sink.FailNext(100, 451, "4.3.0 still busy")
	if _, err := e.q.Enqueue(testCtx(t), mail.Email{To: "ada@example.org", Text: "x"}); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig("w1")
	cfg.MaxAttempts = 3
	w := mail.NewWorker(e.rdb, e.keys, smtpSender(t, e.sink), cfg, nil)
	runWorker(t, w)
	d := e.waitDead(t, 1)[0]
	if d.Deliveries != 3 || !strings.Contains(d.Error, "after 3 attempts") || !strings.Contains(d.Error, "still busy") {
		t.Fatalf("dead email = %+v", d)
	}
	waitStats(t, w, mail.WorkerStats{Retried: 2, Dead: 1})
	e.waitDrained(t)
	if n := len(e.sink.Messages()); n != 0 {
		t.Fatalf("%d messages arrived, want none", n)
	}
}

// blockingSender's Send reports that it started, then hangs until its context ends: a
// sender stopped mid-send.
type blockingSender struct{ started chan string }

func (s blockingSender) Send(ctx context.Context, e mail.Email) error {
	s.started <- e.ID
	<-ctx.Done()
	return ctx.Err()
}

func TestWorkerRestartSendsOwnPending(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	id, err := e.q.Enqueue(ctx, mail.Email{To: "ada@example.org", Subject: "Code", Text: "123456"})
	if err != nil {
		t.Fatal(err)
	}
	// The first run reads the email and stops mid-send: the email stays pending.
	hang := blockingSender{started: make(chan string, 1)}
	first := mail.NewWorker(e.rdb, e.keys, hang, fastConfig("node-a"), nil)
	stop := runWorker(t, first)
	select {
	case got := <-hang.started:
		if got != id {
			t.Fatalf("sending %q, want %q", got, id)
		}
	case <-ctx.Done():
		t.Fatal("the first run never sent")
	}
	stop()
	if first.Stats() != (mail.WorkerStats{}) {
		t.Fatalf("first run stats = %+v, want none", first.Stats())
	}
	if _, pending := e.queueState(t); pending != 1 {
		t.Fatalf("pending = %d after the interrupted send, want 1", pending)
	}

	// The restart (same consumer name; no peer would claim it for a minute) sends it.
	second := mail.NewWorker(e.rdb, e.keys, smtpSender(t, e.sink), fastConfig("node-a"), nil)
	runWorker(t, second)
	msgs, err := e.sink.Wait(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if msgs[0].Header.Get("Message-ID") != "<"+id+"@voluntree>" {
		t.Fatalf("Message-ID = %q", msgs[0].Header.Get("Message-ID"))
	}
	waitStats(t, second, mail.WorkerStats{Sent: 1})
	e.waitDrained(t)
}

func TestWorkerClaimsAbandonedEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	abandoned, err := e.q.Enqueue(ctx, mail.Email{To: "ada@example.org", Text: "abandoned"})
	if err != nil {
		t.Fatal(err)
	}
	// A sender on another node read it and died; an hour went by (XCLAIM ... IDLE).
	entry := readAs(t, e, "dead-node")
	if err := e.rdb.Do(ctx, "XCLAIM", e.keys.MailQueue(), e.keys.MailGroup(), "dead-node", 0, entry, "IDLE", time.Hour.Milliseconds()).Err(); err != nil {
		t.Fatal(err)
	}
	// A live node is sending another one right now: not to be claimed.
	if _, err := e.q.Enqueue(ctx, mail.Email{To: "bob@example.org", Text: "in flight"}); err != nil {
		t.Fatal(err)
	}
	inFlight := readAs(t, e, "live-node")

	w := mail.NewWorker(e.rdb, e.keys, smtpSender(t, e.sink), fastConfig("w2"), nil) // ClaimIdle: 1 minute
	runWorker(t, w)
	msgs, err := e.sink.Wait(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if msgs[0].Header.Get("Message-ID") != "<"+abandoned+"@voluntree>" {
		t.Fatalf("Message-ID = %q", msgs[0].Header.Get("Message-ID"))
	}
	waitStats(t, w, mail.WorkerStats{Sent: 1})
	eventually(t, "only the live node's email pending", func() (bool, string) {
		pend, err := e.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: e.keys.MailQueue(), Group: e.keys.MailGroup(), Start: "-", End: "+", Count: 10,
		}).Result()
		ok := err == nil && len(pend) == 1 && pend[0].ID == inFlight && pend[0].Consumer == "live-node"
		return ok, fmt.Sprintf("%+v %v", pend, err)
	})
}

// readAs reads the next new email as consumer and returns its entry id.
func readAs(t *testing.T, e env, consumer string) string {
	t.Helper()
	res, err := e.rdb.XReadGroup(testCtx(t), &redis.XReadGroupArgs{
		Group: e.keys.MailGroup(), Consumer: consumer, Streams: []string{e.keys.MailQueue(), ">"}, Count: 1, Block: -1,
	}).Result()
	if err != nil {
		t.Fatalf("read as %s: %v", consumer, err)
	}
	return res[0].Messages[0].ID
}

func TestWorkerDeadLettersUndecodableEntries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	// Written around Enqueue: broken JSON, no email field, a header injection.
	injected, _ := json.Marshal(mail.Email{ID: "inj", To: "a@b.c\r\nBcc: x@evil.example", Text: "hi"})
	entries := [][]any{{"m", "{not json"}, {"x", "y"}, {"m", string(injected)}}
	if _, err := e.q.Enqueue(ctx, mail.Email{To: "ada@example.org", Text: "creates the group"}); err != nil {
		t.Fatal(err)
	}
	for _, v := range entries {
		if err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: e.keys.MailQueue(), Values: v}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	w := mail.NewWorker(e.rdb, e.keys, smtpSender(t, e.sink), fastConfig("w1"), nil)
	runWorker(t, w)
	dead := e.waitDead(t, 3)
	for _, d := range dead {
		if d.Deliveries != 1 || !strings.Contains(d.Error, "undecodable") {
			t.Errorf("dead email = %+v", d)
		}
	}
	if !slices.ContainsFunc(dead, func(d mail.DeadEmail) bool { return strings.Contains(d.Error, "line break") }) {
		t.Errorf("no dead email names the header injection: %+v", dead)
	}
	waitStats(t, w, mail.WorkerStats{Sent: 1, Dead: 3})
	e.waitDrained(t)
	if n := len(e.sink.Messages()); n != 1 {
		t.Fatalf("%d messages arrived, want 1", n)
	}
}

func TestWorkerWithOutboxSender(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	var ids []string
	for i := range 2 {
		id, err := e.q.Enqueue(ctx, mail.Email{To: "ada@example.org", Subject: fmt.Sprint("code ", i), Text: "123456"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	w := mail.NewWorker(e.rdb, e.keys, mail.NewOutboxSender(e.rdb, e.keys), fastConfig("w1"), nil)
	runWorker(t, w)
	waitStats(t, w, mail.WorkerStats{Sent: 2})
	out, err := e.q.Outbox(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].ID != ids[1] || out[1].ID != ids[0] || out[0].Subject != "code 1" {
		t.Fatalf("outbox = %+v, want %v newest first", out, ids)
	}
}

func TestWorkerRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	rdb, prefix := redisSrv.Client(t)
	tests := []struct {
		name string
		cfg  mail.WorkerConfig
	}{
		{"negative attempts", mail.WorkerConfig{MaxAttempts: -1}},
		{"max delay under base", mail.WorkerConfig{BaseDelay: time.Second, MaxDelay: time.Millisecond}},
		{"block under 1ms", mail.WorkerConfig{Block: time.Microsecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := redisstore.NewKeys(strings.TrimSuffix(prefix, ":"))
			w := mail.NewWorker(rdb, keys, mail.NewOutboxSender(rdb, keys), tt.cfg, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := w.Run(ctx); err == nil {
				t.Fatal("Run accepted an invalid configuration")
			}
		})
	}
}
