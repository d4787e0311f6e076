package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/httpapi"
	"github.com/voluntree/voluntree/redisstore"
)

const (
	testAppSecret   = "s3cret"
	testVerifyToken = "vt"
	testPage        = "1001"
)

func webhookEnv(t *testing.T, adjust func(*httpapi.Config)) *pipelineEnv {
	t.Helper()
	return newEnv(t, envOptions{config: func(c *httpapi.Config) {
		c.AppSecret = []byte(testAppSecret)
		c.VerifyToken = testVerifyToken
		if adjust != nil {
			adjust(c)
		}
	}})
}

// postWebhook POSTs body with the given X-Hub-Signature-256 ("" for none).
func postWebhook(t *testing.T, e *pipelineEnv, body []byte, signature string) (int, []byte, http.Header) {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	if signature != "" {
		h[facebook.SignatureHeader] = signature
	}
	return request(t, "POST", e.url("/webhooks/facebook"), body, h)
}

func sign(body []byte) string { return facebook.Sign([]byte(testAppSecret), body) }

// webhookBatch is a webhook call shaped like Meta's: two feed entries of several comments
// each (built by facebook.CommentPayload), one Messenger entry with a text, an echo of the
// page's own message (skipped) and a read receipt (skipped), and the page's own reply
// comment (skipped). It returns the body and the ids that must be enqueued, in order.
func webhookBatch(t *testing.T, tag string) ([]byte, []string) {
	t.Helper()
	now := time.Now().Unix()
	var want []string
	comment := func(post string, i int) facebook.ChangeValue {
		id := fmt.Sprintf("%s_%s_c%d", post, tag, i)
		want = append(want, id)
		return facebook.ChangeValue{
			CommentID: id, PostID: post,
			From:    &facebook.User{ID: fmt.Sprintf("user%d", i), Name: fmt.Sprintf("Person %d", i)},
			Message: fmt.Sprintf("Count me in #%d", i), CreatedTime: now,
		}
	}
	postA, postB := testPage+"_11", testPage+"_22"
	p := facebook.CommentPayload(testPage, comment(postA, 1), comment(postA, 2), comment(postA, 3))
	q := facebook.CommentPayload(testPage, comment(postB, 4), comment(postB, 5),
		facebook.ChangeValue{CommentID: postB + "_" + tag + "_page", PostID: postB,
			From: &facebook.User{ID: testPage, Name: "The Page"}, Message: "Thanks!", CreatedTime: now})
	p.Entry = append(p.Entry, q.Entry...)
	mid := "m_" + tag + "_1"
	want = append(want, mid)
	ms := time.Now().UnixMilli()
	p.Entry = append(p.Entry, facebook.Entry{ID: testPage, Time: ms, Messaging: []facebook.Messaging{
		{Sender: facebook.User{ID: "psid-1"}, Recipient: facebook.User{ID: testPage}, Timestamp: ms,
			Message: &facebook.MessengerMessage{MID: mid, Text: "Can I still join?"}},
		{Sender: facebook.User{ID: testPage}, Recipient: facebook.User{ID: "psid-1"}, Timestamp: ms,
			Message: &facebook.MessengerMessage{MID: "m_" + tag + "_echo", Text: "Sure", IsEcho: true}},
		{Sender: facebook.User{ID: "psid-1"}, Recipient: facebook.User{ID: testPage}, Timestamp: ms},
	}})
	body, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return body, want
}

func TestWebhookVerify(t *testing.T) {
	e := webhookEnv(t, nil)
	get := func(q url.Values) (int, []byte) {
		status, body, _ := request(t, "GET", e.url("/webhooks/facebook?"+q.Encode()), nil, nil)
		return status, body
	}
	t.Run("right token", func(t *testing.T) {
		status, body := get(url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {testVerifyToken}, "hub.challenge": {"1158201444"}})
		if status != 200 || string(body) != "1158201444" {
			t.Fatalf("status %d body %q, want 200 and the challenge", status, body)
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		status, body := get(url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {"vx"}, "hub.challenge": {"42"}})
		if status != 403 {
			t.Fatalf("status %d, want 403", status)
		}
		if msg := requireErrorBody(t, body); strings.Contains(msg, "42") {
			t.Fatalf("a refused handshake echoed the challenge: %q", msg)
		}
	})
	t.Run("missing token", func(t *testing.T) {
		status, body := get(url.Values{"hub.mode": {"subscribe"}, "hub.challenge": {"42"}})
		if status != 403 {
			t.Fatalf("status %d, want 403", status)
		}
		requireErrorBody(t, body)
	})
	t.Run("missing mode", func(t *testing.T) {
		status, body := get(url.Values{"hub.verify_token": {testVerifyToken}, "hub.challenge": {"42"}})
		if status != 400 {
			t.Fatalf("status %d, want 400", status)
		}
		requireErrorBody(t, body)
	})
	t.Run("not configured", func(t *testing.T) {
		e := webhookEnv(t, func(c *httpapi.Config) { c.VerifyToken = "" })
		status, body, _ := request(t, "GET", e.url("/webhooks/facebook?hub.mode=subscribe&hub.verify_token=&hub.challenge=42"), nil, nil)
		if status != 503 {
			t.Fatalf("status %d, want 503 (an empty token must never match)", status)
		}
		requireErrorBody(t, body)
	})
}

type webhookResult struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
}

func acceptWebhook(t *testing.T, e *pipelineEnv, body []byte) webhookResult {
	t.Helper()
	status, raw, _ := postWebhook(t, e, body, sign(body))
	if status != 200 {
		t.Fatalf("status %d (%s), want 200", status, truncate(raw))
	}
	var res webhookResult
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("response %q: %v", raw, err)
	}
	return res
}

func TestWebhookAcceptsAndDedupes(t *testing.T) {
	e := webhookEnv(t, nil)
	body, want := webhookBatch(t, "a")
	n := len(want)

	if got := acceptWebhook(t, e, body); got != (webhookResult{Accepted: n}) {
		t.Fatalf("first delivery: %+v, want {accepted:%d duplicates:0}", got, n)
	}
	if l := e.ingestLen(t); l != int64(n) {
		t.Fatalf("ingest stream holds %d entries, want %d", l, n)
	}
	msgs := e.ingestMessages(t)
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.ID)
		if m.Source != voluntree.SourceWebhook || m.PageID != testPage || m.ReceivedAt.IsZero() {
			t.Errorf("message %s: source %q page %q received %v", m.ID, m.Source, m.PageID, m.ReceivedAt)
		}
		if err := m.Validate(); err != nil {
			t.Errorf("stored message is invalid: %v", err)
		}
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("enqueued %v, want %v", ids, want)
	}
	if m := msgs[len(msgs)-1]; m.Kind != voluntree.KindMessage || m.SenderID != "psid-1" || m.Text != "Can I still join?" {
		t.Fatalf("Messenger message stored as %+v", m)
	}
	if m := msgs[0]; m.Kind != voluntree.KindComment || m.PostID != testPage+"_11" || m.SenderName != "Person 1" {
		t.Fatalf("comment stored as %+v", m)
	}
	if got := testutil.ToFloat64(e.m.WebhookEvents.WithLabelValues("comment")); got != float64(n-1) {
		t.Fatalf("webhook events{comment} = %v, want %d", got, n-1)
	}

	// Facebook redelivers the same call: nothing new.
	if got := acceptWebhook(t, e, body); got != (webhookResult{Duplicates: n}) {
		t.Fatalf("redelivery: %+v, want {accepted:0 duplicates:%d}", got, n)
	}
	if l := e.ingestLen(t); l != int64(n) {
		t.Fatalf("after a redelivery the ingest stream holds %d entries, want %d", l, n)
	}
	if got := testutil.ToFloat64(e.m.WebhookDuplicates); got != float64(n) {
		t.Fatalf("webhook duplicates = %v, want %d", got, n)
	}
	// The dedupe mark lasts the 36 h Facebook retries for.
	ttl, err := e.rdb.TTL(t.Context(), e.store.Keys().IngestSeen(0, want[0])).Result()
	if err != nil || ttl < 35*time.Hour || ttl > 36*time.Hour {
		t.Fatalf("dedupe mark TTL %v (%v), want about 36h", ttl, err)
	}
}

func TestWebhookSameCommentThreeDeliveries(t *testing.T) {
	e := webhookEnv(t, nil)
	var got []webhookResult
	for i := range 3 {
		// Each delivery is a separate call (its own entry time and, as Facebook does on a
		// retry, possibly different bytes) carrying the same comment.
		p := facebook.CommentPayload(testPage, facebook.ChangeValue{
			CommentID: testPage + "_11_777", PostID: testPage + "_11",
			From:    &facebook.User{ID: "user7", Name: "Grace"},
			Message: "I'm in", CreatedTime: time.Now().Unix(),
		})
		p.Entry[0].Time += int64(i)
		body, _ := json.Marshal(p)
		got = append(got, acceptWebhook(t, e, body))
	}
	want := []webhookResult{{Accepted: 1}, {Duplicates: 1}, {Duplicates: 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("three deliveries answered %+v, want %+v", got, want)
	}
	if l := e.ingestLen(t); l != 1 {
		t.Fatalf("ingest stream holds %d entries, want 1", l)
	}
}

func TestWebhookRejections(t *testing.T) {
	valid, _ := webhookBatch(t, "r")
	reindented := bytes.ReplaceAll(valid, []byte(`,"`), []byte(`, "`)) // same JSON, other bytes
	if bytes.Equal(valid, reindented) {
		t.Fatal("test body did not change")
	}
	malformed := []byte(`{"object":"page","entry":[`)
	user := []byte(`{"object":"user","entry":[{"id":"1","time":1,"changes":[{"field":"feed","value":{}}]}]}`)

	cases := []struct {
		name      string
		body      []byte
		signature string
		adjust    func(*httpapi.Config)
		status    int
		reason    string // WebhookRejected label incremented, "" to not check
	}{
		{name: "no signature", body: valid, signature: "", status: 401, reason: "no_signature"},
		{name: "wrong signature", body: valid, signature: facebook.Sign([]byte("other"), valid), status: 403, reason: "bad_signature"},
		{name: "signature without sha256 prefix", body: valid, signature: strings.TrimPrefix(sign(valid), "sha256="), status: 403, reason: "bad_signature"},
		{name: "signature not hex", body: valid, signature: "sha256=zz", status: 403, reason: "bad_signature"},
		{name: "signature over another body", body: reindented, signature: sign(valid), status: 403, reason: "bad_signature"},
		{name: "malformed JSON", body: malformed, signature: sign(malformed), status: 400, reason: "malformed"},
		{name: "object user", body: user, signature: sign(user), status: 400, reason: "malformed"},
		{name: "app secret unset", body: valid, signature: sign(valid), status: 503, reason: "not_configured",
			adjust: func(c *httpapi.Config) { c.AppSecret = nil }},
		{name: "overloaded", body: valid, signature: sign(valid), status: 503, reason: "overloaded",
			adjust: func(c *httpapi.Config) { c.Overloaded = func() bool { return true } }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := webhookEnv(t, tc.adjust)
			status, raw, header := postWebhook(t, e, tc.body, tc.signature)
			if status != tc.status {
				t.Fatalf("status %d (%s), want %d", status, truncate(raw), tc.status)
			}
			requireErrorBody(t, raw)
			if l := e.ingestLen(t); l != 0 {
				t.Fatalf("a refused call enqueued %d entries", l)
			}
			if tc.reason != "" {
				if got := testutil.ToFloat64(e.m.WebhookRejected.WithLabelValues(tc.reason)); got != 1 {
					t.Fatalf("webhook rejected{reason=%q} = %v, want 1", tc.reason, got)
				}
			}
			if tc.reason == "overloaded" && header.Get("Retry-After") == "" {
				t.Fatal("503 overloaded without Retry-After")
			}
		})
	}
}

// TestWebhookBodyOverLimitRefusedBeforeItIsRead: a Content-Length over 1 MiB is answered 413
// before the body is sent, so a hostile sender cannot make the server buffer it: only the
// headers are written here, and the answer comes anyway.
func TestWebhookBodyOverLimitRefusedBeforeItIsRead(t *testing.T) {
	e := webhookEnv(t, nil)
	for _, length := range []int{httpapi.MaxWebhookBody + 1, 16 << 20, 1 << 30} {
		conn, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /webhooks/facebook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"X-Hub-Signature-256: sha256=00\r\nContent-Length: %d\r\n\r\n{\"object\":", length)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("Content-Length %d: no answer before the body was sent: %v", length, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("Content-Length %d: status %d (%s), want 413", length, resp.StatusCode, truncate(raw))
		}
		requireErrorBody(t, raw)
	}
	if got := testutil.ToFloat64(e.m.WebhookRejected.WithLabelValues("too_large")); got != 3 {
		t.Fatalf("webhook rejected{reason=too_large} = %v, want 3", got)
	}
	if l := e.ingestLen(t); l != 0 {
		t.Fatalf("refused calls enqueued %d entries", l)
	}
}

// TestWebhookBodyLimitIsInclusive: a body of exactly 1 MiB is accepted.
func TestWebhookBodyLimitIsInclusive(t *testing.T) {
	e := webhookEnv(t, nil)
	valid, want := webhookBatch(t, "big")
	body := append(bytes.Repeat([]byte(" "), httpapi.MaxWebhookBody-len(valid)), valid...)
	if len(body) != httpapi.MaxWebhookBody {
		t.Fatalf("body of %d bytes", len(body))
	}
	if got := acceptWebhook(t, e, body); got.Accepted != len(want) {
		t.Fatalf("1 MiB body: %+v, want %d accepted", got, len(want))
	}
}

// TestWebhookSkipsInvalidEventsKeepsTheRest: one invalid event does not cost the call's good
// ones (Facebook would retry the same body for 36 hours): it is left out and counted.
func TestWebhookSkipsInvalidEventsKeepsTheRest(t *testing.T) {
	e := webhookEnv(t, nil)
	body, _ := json.Marshal(facebook.CommentPayload(testPage,
		facebook.ChangeValue{CommentID: "has space", PostID: testPage + "_1", From: &facebook.User{ID: "u"}, Message: "hi"},
		facebook.ChangeValue{CommentID: testPage + "_1_ok", PostID: testPage + "_1", From: &facebook.User{ID: "u"}, Message: "count me in"}))
	got := acceptWebhook(t, e, body)
	if got.Accepted != 1 || got.Rejected != 1 {
		t.Fatalf("%+v, want the valid comment accepted and the invalid one reported", got)
	}
	if n := testutil.ToFloat64(e.m.WebhookRejected.WithLabelValues("invalid_event")); n != 1 {
		t.Fatalf("rejected{invalid_event} = %v, want 1", n)
	}
}

// TestWebhookHostileEventRejectedAlone: a correctly signed delivery with one event that cannot
// be stored (a created_time past year 9999) or decoded (a field of the wrong type) gets its
// 200: the other events are stored, and each bad one is counted by reason and kept, with its
// raw JSON, in the rejected-events stream. Facebook's retry of the same call changes nothing.
func TestWebhookHostileEventRejectedAlone(t *testing.T) {
	e := webhookEnv(t, nil)
	body := []byte(`{"object":"page","entry":[
	 {"id":"1001","time":1,"changes":[
	  {"field":"feed","value":{"item":"comment","verb":"add","comment_id":"1001_1_far","post_id":"1001_1","from":{"id":"u1"},"message":"in the year 10000","created_time":253402300800}},
	  {"field":"feed","value":{"item":"comment","verb":"add","comment_id":"1001_1_ok","post_id":"1001_1","from":{"id":"u2"},"message":"count me in","created_time":1732262400}},
	  {"field":"feed","value":{"item":"comment","verb":"add","comment_id":"1001_1_typed","post_id":"1001_1","from":{"id":"u3"},"message":"typed","created_time":"yesterday"}}]},
	 {"id":"1002","time":1,"messaging":[
	  {"sender":{"id":"u4"},"recipient":{"id":"1002"},"timestamp":9223372036854775807,"message":{"mid":"m.far","text":"far"}},
	  {"sender":{"id":"u5"},"recipient":{"id":"1002"},"timestamp":1732262400000,"message":{"mid":"m.ok","text":"hello"}}]},
	 "not an entry"]}`)
	for round := range 2 {
		got := acceptWebhook(t, e, body)
		want := webhookResult{Accepted: 2, Rejected: 4}
		if round == 1 {
			want = webhookResult{Duplicates: 2, Rejected: 4}
		}
		if got != want {
			t.Fatalf("delivery %d: %+v, want %+v", round+1, got, want)
		}
	}
	var ids []string
	for _, m := range e.ingestMessages(t) {
		ids = append(ids, m.ID)
	}
	if !slices.Equal(ids, []string{"1001_1_ok", "m.ok"}) {
		t.Fatalf("ingest stream %q, want the two good events", ids)
	}
	if n := testutil.ToFloat64(e.m.WebhookRejected.WithLabelValues("invalid_event")); n != 4 {
		t.Errorf("rejected{invalid_event} = %v, want 4 (2 per delivery)", n)
	}
	if n := testutil.ToFloat64(e.m.WebhookRejected.WithLabelValues("malformed_event")); n != 4 {
		t.Errorf("rejected{malformed_event} = %v, want 4 (2 per delivery)", n)
	}
	rs, err := e.store.RejectedEvents(context.Background(), 100)
	if err != nil || len(rs) != 8 {
		t.Fatalf("rejected events: %d, %v; want 8", len(rs), err)
	}
	raws := map[string]bool{}
	for _, r := range rs {
		if r.Source != "webhook" || r.Error == "" || r.At.IsZero() || !json.Valid([]byte(r.Raw)) {
			t.Errorf("rejection %+v", r)
		}
		raws[r.Raw] = true
	}
	for _, part := range []string{"1001_1_far", "1001_1_typed", "m.far", "not an entry"} {
		found := false
		for raw := range raws {
			found = found || strings.Contains(raw, part)
		}
		if !found {
			t.Errorf("no rejection keeps the raw JSON of %s", part)
		}
	}
}

// heldIngester holds every Enqueue until released: webhook calls stay in flight.
type heldIngester struct {
	httpapi.Ingester
	entered chan struct{}
	release chan struct{}
}

func (h *heldIngester) Enqueue(ctx context.Context, msgs []voluntree.Message) ([]redisstore.Enqueued, error) {
	h.entered <- struct{}{}
	<-h.release
	return h.Ingester.Enqueue(ctx, msgs)
}

// TestWebhookInflightBound: past MaxInflightWebhooks calls at once, a call is answered 503
// with Retry-After straight away (Facebook retries it); once the calls in flight end, calls
// are taken again, and nothing of the refused call was stored.
func TestWebhookInflightBound(t *testing.T) {
	var held *heldIngester
	e := webhookEnv(t, func(c *httpapi.Config) {
		held = &heldIngester{Ingester: c.Ingest, entered: make(chan struct{}, 2), release: make(chan struct{})}
		c.Ingest, c.MaxInflightWebhooks = held, 2
	})
	first, _ := webhookBatch(t, "held")
	done := make(chan int, 2)
	for range 2 {
		go func() { status, _, _ := postWebhook(t, e, first, sign(first)); done <- status }()
	}
	<-held.entered
	<-held.entered
	if got := testutil.ToFloat64(e.m.WebhookInflight); got != 2 {
		t.Fatalf("webhook inflight gauge %v, want 2", got)
	}
	extra, _ := webhookBatch(t, "refused")
	status, raw, h := postWebhook(t, e, extra, sign(extra))
	if status != 503 || h.Get("Retry-After") == "" {
		t.Fatalf("a call past the bound: %d (%s), Retry-After %q; want 503 with Retry-After", status, raw, h.Get("Retry-After"))
	}
	requireErrorBody(t, raw)
	if got := testutil.ToFloat64(e.m.WebhookRejected.WithLabelValues("busy")); got != 1 {
		t.Fatalf("rejected{busy} = %v, want 1", got)
	}
	close(held.release)
	for range 2 {
		if s := <-done; s != 200 {
			t.Fatalf("a call in flight ended with %d", s)
		}
	}
	if got := acceptWebhook(t, e, extra); got.Accepted == 0 {
		t.Fatalf("after the calls in flight: %+v, want the call accepted", got)
	}
}
