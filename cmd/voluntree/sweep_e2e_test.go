package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/voluntree/voluntree/facebook"
)

// TestBadInputSweep throws thousands of hostile requests at a real serve — signed mutations of
// real webhook payloads, unsigned and wrongly signed bodies, hostile classify bodies, admin
// bodies and query parameters, odd live-feed upgrades — and checks that none gets a 5xx, the
// node stays healthy, and a good comment still comes through to its organization's feed.
func TestBadInputSweep(t *testing.T) {
	const prefix = "e2e-sweep"
	token := orgWithPages(t, prefix, "sweep", "777")
	n, _, _ := pipelineNode(t, prefix, "VOLUNTREE_CLASSIFY_RATE=0", "VOLUNTREE_POLL_INTERVAL=0")
	rng := rand.New(rand.NewPCG(10, 2026))

	type req struct {
		method, path string
		body         []byte
		header       map[string]string
		ws           bool
	}
	var reqs []req
	signedReq := func(body []byte) req {
		return req{method: "POST", path: "/webhooks/facebook", body: body,
			header: map[string]string{facebook.SignatureHeader: facebook.Sign([]byte(e2eSecret), body)}}
	}
	for _, base := range sweepPayloads() {
		for range 250 {
			reqs = append(reqs, signedReq(mutateJSON(rng, base)))
		}
		for range 100 {
			reqs = append(reqs, signedReq(mutateBytes(rng, base)))
		}
		reqs = append(reqs,
			req{method: "POST", path: "/webhooks/facebook", body: base},
			req{method: "POST", path: "/webhooks/facebook", body: base, header: map[string]string{facebook.SignatureHeader: "sha256=" + strings.Repeat("0", 64)}},
			req{method: "POST", path: "/webhooks/facebook", body: base, header: map[string]string{facebook.SignatureHeader: strings.Repeat("x", 9000)}})
	}
	classify := []byte(`{"texts":["count me in","where do I park?"]}`)
	for range 500 {
		b := mutateJSON(rng, classify)
		if rng.IntN(3) == 0 {
			b = mutateBytes(rng, classify)
		}
		reqs = append(reqs, req{method: "POST", path: "/api/v1/classify", body: b, header: map[string]string{"Content-Type": "application/json"}})
	}
	bearer := map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}
	signup := []byte(`{"title":"Cleanup","time_zone":"Europe/Paris","facts":"Bring gloves","slots":[{"date":"2030-05-04","start":"09:00","end":"12:00","title":"Morning","required":5}]}`)
	post := []byte(`{"signup_id":"su_nope","page_id":"777","message":"Join us","publish_at":"2030-01-01T09:00:00Z","draft":true}`)
	for range 200 {
		reqs = append(reqs,
			req{method: "POST", path: "/api/v1/signups", body: mutateJSON(rng, signup), header: bearer},
			req{method: "POST", path: "/api/v1/posts", body: mutateJSON(rng, post), header: bearer},
			req{method: "POST", path: "/api/v1/me/email/verify", body: mutateJSON(rng, []byte(`{"code":"123456"}`)), header: bearer},
			req{method: "POST", path: "/api/v1/demo/comments", body: mutateJSON(rng, []byte(`{"name":"Ada","text":"hi"}`))},
			req{method: "GET", path: "/api/v1/signups?limit=" + url.QueryEscape(oddValue(rng)) + "&offset=" + url.QueryEscape(oddValue(rng)), header: bearer},
			req{method: "GET", path: "/api/v1/stats?from=" + url.QueryEscape(oddValue(rng)) + "&to=" + url.QueryEscape(oddValue(rng)), header: bearer},
			req{method: "GET", path: "/api/v1/posts?status=" + url.QueryEscape(oddValue(rng)), header: bearer},
			req{method: "GET", path: "/api/v1/signups/" + url.PathEscape(oddValue(rng)), header: bearer},
		)
	}
	for i := range 300 {
		q := url.Values{"post": {oddValue(rng)}, "since": {oddValue(rng)}, "tail": {oddValue(rng)}, "ticket": {oddValue(rng)}}
		if i%5 == 0 {
			q.Set("ticket", feedTicket(t, n, token)) // a valid ticket with odd parameters
		}
		reqs = append(reqs, req{method: "GET", path: "/ws/signups?" + q.Encode(), ws: true})
	}
	rng.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })

	var (
		mu       sync.Mutex
		byStatus = map[int]int{}
		fivexx   []string
		done     atomic.Int64
		wg       sync.WaitGroup
	)
	client := &http.Client{Timeout: 30 * time.Second}
	work := make(chan req)
	for range 16 {
		wg.Go(func() {
			for r := range work {
				status, detail := 0, ""
				if r.ws {
					c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(n.base, "http")+r.path, nil)
					switch {
					case err == nil:
						status = 101
						c.Close()
					case resp != nil:
						status = resp.StatusCode
					default:
						status, detail = -1, err.Error()
					}
				} else {
					hr, _ := http.NewRequest(r.method, n.base+r.path, bytes.NewReader(r.body))
					for k, v := range r.header {
						hr.Header.Set(k, v)
					}
					resp, err := client.Do(hr)
					if err != nil {
						status, detail = -1, err.Error()
					} else {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						status = resp.StatusCode
					}
				}
				mu.Lock()
				byStatus[status]++
				if status >= 500 || status == -1 {
					fivexx = append(fivexx, fmt.Sprintf("%d %s %.300s %.200q %s", status, r.method, r.path, r.body, detail))
				}
				mu.Unlock()
				done.Add(1)
			}
		})
	}
	start := time.Now()
	for _, r := range reqs {
		work <- r
	}
	close(work)
	wg.Wait()
	t.Logf("%d hostile requests in %s, by status: %v", done.Load(), time.Since(start).Round(time.Millisecond), byStatus)
	if len(fivexx) > 0 {
		t.Errorf("%d requests got a 5xx or no answer; first ones:\n%s", len(fivexx), strings.Join(fivexx[:min(10, len(fivexx))], "\n"))
	}
	if status, body := n.get(t, "/healthz"); status != 200 {
		t.Fatalf("after the sweep: healthz %d %s", status, body)
	}
	select {
	case err := <-n.exited:
		t.Fatalf("serve exited during the sweep: %v\n%s", err, n.log())
	default:
	}
	// What was refused event by event is there for operators, with its raw JSON.
	code, out, errOut := runCLI(t, "", "admin", "rejected", "-n", "5", "-redis-url", redisSrv.URL(t), "-redis-prefix", prefix)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 5 {
		t.Fatalf("admin rejected: exit %d, %d lines, %q", code, len(lines), errOut)
	}
	for _, l := range lines {
		var r struct{ Reason, Error, Raw string }
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Reason == "" || r.Error == "" || r.Raw == "" {
			t.Fatalf("admin rejected line %.300q: %v", l, err)
		}
	}
	// A good comment still comes through.
	ws := dialEvents(t, n, token, "")
	b, sig := signed(t, facebook.CommentPayload("777", facebook.ChangeValue{CommentID: "777_1_good", PostID: "777_1",
		From: &facebook.User{ID: "u-good", Name: "Good"}, Message: "Count me in for Saturday!", CreatedTime: time.Now().Unix()}))
	if status, out := n.webhook(t, b, sig); status != 200 || out["accepted"] != float64(1) {
		t.Fatalf("the good comment: %d %v", status, out)
	}
	ws.waitFor(t, 20*time.Second, "the good comment's event", hasIDs("777_1_good"))
	n.stop(t)
}

// sweepPayloads are real webhook bodies: comments on the connected page, a Messenger text, a
// quick reply and a postback, several entries.
func sweepPayloads() [][]byte {
	now := time.Now().Unix()
	bodies := []any{
		facebook.CommentPayload("777", facebook.ChangeValue{CommentID: "777_1_1", PostID: "777_1",
			From: &facebook.User{ID: "u1", Name: "Ada"}, Message: "Count me in!", CreatedTime: now},
			facebook.ChangeValue{CommentID: "777_1_2", PostID: "777_1", From: &facebook.User{ID: "u2", Name: "Bo"}, Message: "Where?", CreatedTime: now}),
		map[string]any{"object": "page", "entry": []any{map[string]any{"id": "777", "time": now * 1000, "messaging": []any{
			map[string]any{"sender": map[string]any{"id": "u3"}, "recipient": map[string]any{"id": "777"}, "timestamp": now * 1000,
				"message": map[string]any{"mid": "m.sw.1", "text": "I want to help", "quick_reply": map[string]any{"payload": "SLOT:1"}}},
			map[string]any{"sender": map[string]any{"id": "u4"}, "recipient": map[string]any{"id": "777"}, "timestamp": now * 1000,
				"postback": map[string]any{"mid": "m.sw.2", "title": "Yes", "payload": "CONFIRM"}},
		}}}},
	}
	out := make([][]byte, len(bodies))
	for i, b := range bodies {
		out[i], _ = json.Marshal(b)
	}
	return out
}

// hostileValues replace JSON values: wrong types, impossible numbers and times, huge and
// control-laden strings, deep nesting.
func hostileValue(rng *rand.Rand) any {
	switch rng.IntN(14) {
	case 0:
		return nil
	case 1:
		return rng.Int64() - rng.Int64()
	case 2:
		return 253402300800 + rng.Int64N(1<<40) // past year 9999
	case 3:
		return -rng.Float64() * 1e300
	case 4:
		return strings.Repeat("é", 5001)
	case 5:
		return "\x00\u202e\ufeff{}" + strings.Repeat(" ", rng.IntN(300))
	case 6:
		return []any{1, "x", nil, map[string]any{}}
	case 7:
		v := any("deep")
		for range 200 {
			v = []any{v}
		}
		return v
	case 8:
		return map[string]any{"id": rng.Int(), "name": true}
	case 9:
		return true
	case 10:
		return strings.Repeat("9", 400)
	case 11:
		return "1e999"
	case 12:
		return ""
	default:
		return string([]byte{0xff, 0xfe, byte(rng.IntN(256))})
	}
}

// mutateJSON decodes body, replaces a few values (or drops or adds keys) and encodes it again.
func mutateJSON(rng *rand.Rand, body []byte) []byte {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return body
	}
	for range 1 + rng.IntN(3) {
		v = mutateValue(rng, v, 0)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return out
}

func mutateValue(rng *rand.Rand, v any, depth int) any {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 || rng.IntN(6) == 0 {
			x[oddKey(rng)] = hostileValue(rng)
			return x
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		k := keys[rng.IntN(len(keys))]
		switch {
		case rng.IntN(8) == 0:
			delete(x, k)
		case rng.IntN(3) == 0 || depth > 8:
			x[k] = hostileValue(rng)
		default:
			x[k] = mutateValue(rng, x[k], depth+1)
		}
		return x
	case []any:
		if len(x) == 0 || rng.IntN(5) == 0 {
			return append(x, hostileValue(rng))
		}
		i := rng.IntN(len(x))
		x[i] = mutateValue(rng, x[i], depth+1)
		return x
	default:
		return hostileValue(rng)
	}
}

func oddKey(rng *rand.Rand) string {
	keys := []string{"entry", "changes", "messaging", "value", "object", "id", "time", "__proto__", "", "texts", "slots"}
	return keys[rng.IntN(len(keys))]
}

// mutateBytes flips, inserts or deletes a few bytes.
func mutateBytes(rng *rand.Rand, body []byte) []byte {
	b := bytes.Clone(body)
	for range 1 + rng.IntN(4) {
		if len(b) == 0 {
			break
		}
		i := rng.IntN(len(b))
		switch rng.IntN(3) {
		case 0:
			b[i] ^= byte(1 << rng.IntN(8))
		case 1:
			b = append(b[:i], append([]byte{byte(rng.IntN(256))}, b[i:]...)...)
		default:
			b = append(b[:i], b[i+1:]...)
		}
	}
	return b
}

// oddValue is a query parameter value a browser or a script could send.
func oddValue(rng *rand.Rand) string {
	vals := []string{"", "0", "-1", "1", "200", "201", "99999999999999999999999", "1e9", "abc", "0-0", "1-", "-",
		"1732262400000-0", "18446744073709551616-0", "2026-13-45", "2026-03-01", "2026-03-01T10:00:00Z", "9999-12-31",
		"0001-01-01T00:00:00Z", "yesterday", "%00", "\x00", "../../etc/passwd", "<script>", strings.Repeat("a", 5000),
		"wst_" + strings.Repeat("A", 43), "wst_x", "draft", "published", "su_x", "null", "true"}
	return vals[rng.IntN(len(vals))]
}
