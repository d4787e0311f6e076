package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/httpapi"
)

func demoEnv(t *testing.T, on bool) *pipelineEnv {
	t.Helper()
	return newEnv(t, envOptions{config: func(c *httpapi.Config) {
		if on {
			d := httpapi.DefaultDemo
			c.Demo = &d
		}
	}})
}

func postDemo(t *testing.T, e *pipelineEnv, v any) (int, []byte) {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	status, raw, _ := request(t, "POST", e.url("/api/v1/demo/comments"), body, map[string]string{"Content-Type": "application/json"})
	return status, raw
}

func TestDemoOff(t *testing.T) {
	e := demoEnv(t, false)
	status, raw, _ := request(t, "GET", e.url("/api/v1/demo"), nil, nil)
	if status != 200 {
		t.Fatalf("GET /api/v1/demo: %d", status)
	}
	if got := decodeObject(t, raw); len(got) != 1 || got["enabled"] != false {
		t.Fatalf("GET /api/v1/demo with the demo off: %s, want {\"enabled\":false}", raw)
	}
	status, raw = postDemo(t, e, map[string]string{"name": "Ada", "text": "Count me in"})
	if status != 404 {
		t.Fatalf("POST with the demo off: %d (%s), want 404", status, raw)
	}
	requireErrorBody(t, raw)
	if l := e.ingestLen(t); l != 0 {
		t.Fatalf("the demo channel is off but %d entries were enqueued", l)
	}
}

func TestDemoInfo(t *testing.T) {
	e := demoEnv(t, true)
	status, raw, _ := request(t, "GET", e.url("/api/v1/demo"), nil, nil)
	got := decodeObject(t, raw)
	if status != 200 || got["enabled"] != true || got["post_id"] != httpapi.DefaultDemo.PostID ||
		got["page_id"] != httpapi.DefaultDemo.PageID || got["post_message"] != httpapi.DefaultDemo.PostMessage {
		t.Fatalf("GET /api/v1/demo: %d %s", status, raw)
	}
}

func TestDemoCommentTakesTheWebhookPath(t *testing.T) {
	e := demoEnv(t, true)
	status, raw := postDemo(t, e, map[string]string{"name": "Ada", "text": "Count me in"})
	if status != 202 {
		t.Fatalf("status %d (%s), want 202", status, raw)
	}
	got := decodeObject(t, raw)
	id, _ := got["message_id"].(string)
	if id == "" || got["post_id"] != httpapi.DefaultDemo.PostID {
		t.Fatalf("response %s, want message_id and post_id", raw)
	}
	msgs := e.ingestMessages(t)
	if len(msgs) != 1 {
		t.Fatalf("ingest stream holds %d entries, want 1", len(msgs))
	}
	m := msgs[0]
	if m.ID != id || m.Source != voluntree.SourceDemo || m.Kind != voluntree.KindComment ||
		m.PostID != httpapi.DefaultDemo.PostID || m.PageID != httpapi.DefaultDemo.PageID ||
		m.SenderName != "Ada" || m.SenderID == "" || m.Text != "Count me in" || m.ReceivedAt.IsZero() {
		t.Fatalf("enqueued %+v", m)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("enqueued message is invalid: %v", err)
	}

	// The same person again: a new comment (new id), the same sender.
	status, raw = postDemo(t, e, map[string]string{"name": "ada", "text": "Bringing gloves"})
	if status != 202 {
		t.Fatalf("second comment: %d (%s)", status, raw)
	}
	msgs = e.ingestMessages(t)
	if len(msgs) != 2 || msgs[1].ID == m.ID || msgs[1].SenderID != m.SenderID {
		t.Fatalf("second comment of the same name: %+v", msgs)
	}
}

func TestDemoCommentValidation(t *testing.T) {
	e := demoEnv(t, true)
	cases := []struct {
		name string
		body any
	}{
		{"empty name", map[string]string{"name": "", "text": "Count me in"}},
		{"blank name", map[string]string{"name": "   ", "text": "Count me in"}},
		{"empty text", map[string]string{"name": "Ada", "text": ""}},
		{"blank text", map[string]string{"name": "Ada", "text": " \n\t"}},
		{"name too long", map[string]string{"name": strings.Repeat("a", 81), "text": "hi"}},
		{"text too long", map[string]string{"name": "Ada", "text": strings.Repeat("é", voluntree.MaxTextRunes+1)}},
		{"not an object", []string{"Ada", "hi"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := postDemo(t, e, tc.body)
			if status != 400 {
				t.Fatalf("status %d (%s), want 400", status, truncate(raw))
			}
			requireErrorBody(t, raw)
			if l := e.ingestLen(t); l != 0 {
				t.Fatalf("a refused comment enqueued %d entries", l)
			}
		})
	}
	// The limit is inclusive.
	status, raw := postDemo(t, e, map[string]string{"name": "Ada", "text": strings.Repeat("é", voluntree.MaxTextRunes)})
	if status != 202 {
		t.Fatalf("text of exactly %d characters: %d (%s)", voluntree.MaxTextRunes, status, truncate(raw))
	}
}

func TestDemoCommentOverloaded(t *testing.T) {
	e := newEnv(t, envOptions{config: func(c *httpapi.Config) {
		d := httpapi.DefaultDemo
		c.Demo = &d
		c.Overloaded = func() bool { return true }
	}})
	status, raw := postDemo(t, e, map[string]string{"name": "Ada", "text": "Count me in"})
	if status != 503 {
		t.Fatalf("status %d (%s), want 503", status, raw)
	}
	requireErrorBody(t, raw)
	if l := e.ingestLen(t); l != 0 {
		t.Fatalf("enqueued %d entries while overloaded", l)
	}
}
