package facebook_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
)

func TestSignKnownVector(t *testing.T) {
	// RFC 4231, test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
	got := facebook.Sign([]byte("Jefe"), []byte("what do ya want for nothing?"))
	want := "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestVerifySignature(t *testing.T) {
	secret := []byte("app-secret")
	body := []byte(`{"object":"page","entry":[]}`)
	good := facebook.Sign(secret, body)
	hexPart := strings.TrimPrefix(good, "sha256=")
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-2] ^= 0x01 // one byte of the body changed

	cases := []struct {
		name   string
		secret []byte
		body   []byte
		header string
		want   error
	}{
		{"good", secret, body, good, nil},
		{"good uppercase hex", secret, body, "sha256=" + strings.ToUpper(hexPart), nil},
		{"missing header", secret, body, "", facebook.ErrNoSignature},
		{"wrong secret", []byte("other-secret"), body, good, facebook.ErrBadSignature},
		{"tampered body", secret, tampered, good, facebook.ErrBadSignature},
		{"empty body", secret, []byte{}, good, facebook.ErrBadSignature},
		{"bad hex", secret, body, "sha256=" + strings.Repeat("zz", 32), facebook.ErrBadSignature},
		{"no sha256= prefix", secret, body, hexPart, facebook.ErrBadSignature},
		{"sha1 prefix", secret, body, "sha1=" + hexPart, facebook.ErrBadSignature},
		{"prefix only", secret, body, "sha256=", facebook.ErrBadSignature},
		{"truncated", secret, body, good[:len(good)-2], facebook.ErrBadSignature},
		{"odd length", secret, body, good[:len(good)-1], facebook.ErrBadSignature},
		{"too long", secret, body, good + "00", facebook.ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := facebook.VerifySignature(c.secret, c.body, c.header)
			if c.want == nil {
				if err != nil {
					t.Fatalf("VerifySignature = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("VerifySignature = %v, want %v", err, c.want)
			}
		})
	}
}

// webhookBody is one webhook call in Meta's documented shapes: two pages' feed changes and
// Messenger events of both pages.
const webhookBody = `{
  "object": "page",
  "entry": [
    {
      "id": "111",
      "time": 1700000100,
      "changes": [
        {"field": "feed", "value": {"item": "comment", "verb": "add", "comment_id": "222_333",
          "post_id": "111_222", "parent_id": "111_222", "from": {"id": "u1", "name": "Ann Lee"},
          "post": {"status_type": "added_photos", "is_published": true, "id": "111_222"},
          "message": "I'm in! 🙋", "created_time": 1700000000}},
        {"field": "feed", "value": {"item": "comment", "verb": "edited", "comment_id": "222_333",
          "post_id": "111_222", "parent_id": "111_222", "from": {"id": "u1", "name": "Ann Lee"},
          "message": "I'm in!! (edited)", "created_time": 1700000010}},
        {"field": "feed", "value": {"item": "comment", "verb": "remove", "comment_id": "222_390",
          "post_id": "111_222", "parent_id": "111_222", "from": {"id": "u3"}, "created_time": 1700000011}},
        {"field": "feed", "value": {"item": "reaction", "verb": "add", "reaction_type": "like",
          "post_id": "111_222", "parent_id": "111_222", "from": {"id": "u2", "name": "Bo"},
          "created_time": 1700000012}},
        {"field": "feed", "value": {"item": "status", "verb": "add", "post_id": "111_999",
          "message": "New event on Saturday!", "published": 1, "from": {"id": "111", "name": "The Page"},
          "created_time": 1700000013}},
        {"field": "feed", "value": {"item": "post", "verb": "add", "post_id": "111_998",
          "from": {"id": "111", "name": "The Page"}, "created_time": 1700000014}},
        {"field": "feed", "value": {"item": "comment", "verb": "add", "comment_id": "222_400",
          "post_id": "111_222", "parent_id": "222_333", "from": {"id": "111", "name": "The Page"},
          "message": "Thanks Ann, see you there!", "created_time": 1700000015}},
        {"field": "feed", "value": {"item": "comment", "verb": "add", "comment_id": "222_401",
          "post_id": "111_222", "parent_id": "222_333", "from": {"id": "u4", "name": "Cy"},
          "message": "Me too", "created_time": 1700000016}},
        {"field": "mention", "value": {"item": "comment", "verb": "add", "comment_id": "222_402",
          "post_id": "111_222", "from": {"id": "u5"}, "message": "@The Page", "created_time": 1700000017}}
      ]
    },
    {
      "id": "555",
      "time": 1700000200,
      "changes": [
        {"field": "feed", "value": {"item": "reaction", "verb": "remove", "reaction_type": "love",
          "post_id": "555_1", "parent_id": "555_1", "from": {"id": "u7"}, "created_time": 1700000101}},
        {"field": "feed", "value": {"item": "comment", "verb": "add", "comment_id": "1_10",
          "post_id": "555_1", "parent_id": "555_1", "from": {"id": "u7", "name": "Dee"},
          "message": "How do I sign up?", "created_time": 1700000102}},
        {"field": "feed", "value": {"item": "comment", "verb": "add", "comment_id": "1_11",
          "post_id": "555_1", "parent_id": "555_1", "from": {"id": "555", "name": "Other Page"},
          "message": "Link in bio", "created_time": 1700000103}}
      ]
    },
    {
      "id": "111",
      "time": 1700000300000,
      "messaging": [
        {"sender": {"id": "u9"}, "recipient": {"id": "111"}, "timestamp": 1700000001234,
          "message": {"mid": "m_text", "text": "Count me in"}},
        {"sender": {"id": "111"}, "recipient": {"id": "u9"}, "timestamp": 1700000001300,
          "message": {"mid": "m_echo", "is_echo": true, "app_id": 1234, "text": "Great, thanks!"}},
        {"sender": {"id": "u9"}, "recipient": {"id": "111"}, "timestamp": 1700000002000,
          "message": {"mid": "m_qr", "text": "Yes", "quick_reply": {"payload": "SIGNUP_YES"}}},
        {"sender": {"id": "u9"}, "recipient": {"id": "111"}, "timestamp": 1700000003000,
          "postback": {"mid": "m_pb", "title": "Sign up", "payload": "SIGNUP"}},
        {"sender": {"id": "u8"}, "recipient": {"id": "111"}, "timestamp": 1700000005000,
          "postback": {"title": "Get Started", "payload": "GET_STARTED"}},
        {"sender": {"id": "u9"}, "recipient": {"id": "111"}, "timestamp": 1700000006000,
          "delivery": {"mids": ["m_echo"], "watermark": 1700000005900}},
        {"sender": {"id": "u9"}, "recipient": {"id": "111"}, "timestamp": 1700000007000,
          "read": {"watermark": 1700000006900}},
        {"sender": {"id": "u9"}, "recipient": {"id": "111"}, "timestamp": 1700000008000,
          "message": {"mid": "m_img", "attachments": [{"type": "image", "payload": {"url": "https://example.com/a.jpg"}}]}},
        {"sender": {"id": "u9"}, "recipient": {"id": "111"}, "timestamp": 1700000009000,
          "reaction": {"mid": "m_echo", "action": "react", "reaction": "love", "emoji": "❤️"}}
      ]
    },
    {
      "id": "555",
      "time": 1700000400000,
      "messaging": [
        {"sender": {"id": "u7"}, "recipient": {"id": "555"}, "timestamp": 1700000010000,
          "message": {"mid": "m_555", "text": "Is there parking?"}}
      ]
    }
  ]
}`

func TestParseWebhook(t *testing.T) {
	received := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	got, err := facebook.ParseWebhook([]byte(webhookBody), received)
	if err != nil {
		t.Fatalf("ParseWebhook: %v", err)
	}
	const wh = voluntree.SourceWebhook
	sec := func(s int64) time.Time { return time.Unix(s, 0).UTC() }
	ms := func(m int64) time.Time { return time.UnixMilli(m).UTC() }
	want := []voluntree.Message{
		{ID: "222_333", Kind: voluntree.KindComment, Source: wh, PageID: "111", PostID: "111_222",
			ParentID: "111_222", SenderID: "u1", SenderName: "Ann Lee", Text: "I'm in! 🙋", CreatedAt: sec(1700000000)},
		{ID: "222_401", Kind: voluntree.KindComment, Source: wh, PageID: "111", PostID: "111_222",
			ParentID: "222_333", SenderID: "u4", SenderName: "Cy", Text: "Me too", CreatedAt: sec(1700000016)},
		{ID: "1_10", Kind: voluntree.KindComment, Source: wh, PageID: "555", PostID: "555_1",
			ParentID: "555_1", SenderID: "u7", SenderName: "Dee", Text: "How do I sign up?", CreatedAt: sec(1700000102)},
		{ID: "m_text", Kind: voluntree.KindMessage, Source: wh, PageID: "111", SenderID: "u9",
			Text: "Count me in", CreatedAt: ms(1700000001234)},
		{ID: "m_qr", Kind: voluntree.KindMessage, Source: wh, PageID: "111", SenderID: "u9",
			Text: "Yes", Payload: "SIGNUP_YES", CreatedAt: ms(1700000002000)},
		{ID: "m_pb", Kind: voluntree.KindPostback, Source: wh, PageID: "111", SenderID: "u9",
			Text: "Sign up", Payload: "SIGNUP", CreatedAt: ms(1700000003000)},
		{ID: "pb.u8.1700000005000", Kind: voluntree.KindPostback, Source: wh, PageID: "111", SenderID: "u8",
			Text: "Get Started", Payload: "GET_STARTED", CreatedAt: ms(1700000005000)},
		{ID: "m_555", Kind: voluntree.KindMessage, Source: wh, PageID: "555", SenderID: "u7",
			Text: "Is there parking?", CreatedAt: ms(1700000010000)},
	}
	for i := range want {
		want[i].ReceivedAt = received
	}
	if len(got) != len(want) {
		for _, m := range got {
			t.Logf("got %+v", m)
		}
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if diff := diffMessage(got[i], want[i]); diff != "" {
			t.Errorf("message %d (%s): %s", i, want[i].ID, diff)
		}
	}
	// CreatedAt is an instant in UTC (Facebook's seconds and milliseconds).
	if got[0].CreatedAt.Location() != time.UTC || got[0].CreatedAt.Unix() != 1700000000 {
		t.Errorf("comment CreatedAt = %v, want 1700000000 s in UTC", got[0].CreatedAt)
	}
	if got[3].CreatedAt.UnixMilli() != 1700000001234 || got[3].CreatedAt.Nanosecond() != 234_000_000 {
		t.Errorf("message CreatedAt = %v, want 1700000001234 ms", got[3].CreatedAt)
	}
}

func diffMessage(got, want voluntree.Message) string {
	var d []string
	check := func(name, g, w string) {
		if g != w {
			d = append(d, name+": got "+strqq(g)+", want "+strqq(w))
		}
	}
	check("id", got.ID, want.ID)
	check("kind", string(got.Kind), string(want.Kind))
	check("source", got.Source, want.Source)
	check("page", got.PageID, want.PageID)
	check("post", got.PostID, want.PostID)
	check("parent", got.ParentID, want.ParentID)
	check("sender", got.SenderID, want.SenderID)
	check("name", got.SenderName, want.SenderName)
	check("text", got.Text, want.Text)
	check("payload", got.Payload, want.Payload)
	if !got.CreatedAt.Equal(want.CreatedAt) {
		d = append(d, "created: got "+got.CreatedAt.String()+", want "+want.CreatedAt.String())
	}
	if !got.ReceivedAt.Equal(want.ReceivedAt) {
		d = append(d, "received: got "+got.ReceivedAt.String()+", want "+want.ReceivedAt.String())
	}
	return strings.Join(d, "; ")
}

func strqq(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestParseWebhookNothingHandled(t *testing.T) {
	body := `{"object":"page","entry":[{"id":"111","time":1,"messaging":[
	  {"sender":{"id":"u9"},"recipient":{"id":"111"},"timestamp":1,"read":{"watermark":1}}]}]}`
	got, err := facebook.ParseWebhook([]byte(body), time.Now())
	if err != nil || len(got) != 0 {
		t.Fatalf("ParseWebhook = %v, %v; want no messages and no error", got, err)
	}
}

func TestParseWebhookInvalid(t *testing.T) {
	comment := func(value string) string {
		return `{"object":"page","entry":[{"id":"111","time":1,"changes":[
		  {"field":"feed","value":{"item":"comment","verb":"add","comment_id":"1_1","post_id":"111_1",
		    "from":{"id":"u1"},"message":"fine","created_time":1}},
		  {"field":"feed","value":` + value + `}]}]}`
	}
	text := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	cases := []struct{ name, body string }{
		{"malformed JSON", `{"object":"page","entry":[`},
		{"not JSON", `object=page`},
		{"wrong type", `{"object":"page","entry":{"id":"111"}}`},
		{"object user", `{"object":"user","entry":[{"id":"111","time":1,"changes":[
		  {"field":"feed","value":{"item":"comment","verb":"add","comment_id":"1_1","post_id":"111_1",
		    "from":{"id":"u1"},"message":"hi","created_time":1}}]}]}`},
		{"object instagram", `{"object":"instagram","entry":[]}`},
		{"empty object", `{}`},
		{"comment without comment_id", comment(`{"item":"comment","verb":"add","post_id":"111_1",
		  "from":{"id":"u2"},"message":"hi","created_time":2}`)},
		{"comment without post_id", comment(`{"item":"comment","verb":"add","comment_id":"1_2",
		  "from":{"id":"u2"},"message":"hi","created_time":2}`)},
		{"comment text over 5000 runes", comment(`{"item":"comment","verb":"add","comment_id":"1_2",
		  "post_id":"111_1","from":{"id":"u2"},"message":` + text(strings.Repeat("é", voluntree.MaxTextRunes+1)) +
			`,"created_time":2}`)},
		{"comment id with a space", comment(`{"item":"comment","verb":"add","comment_id":"1 2",
		  "post_id":"111_1","from":{"id":"u2"},"message":"hi","created_time":2}`)},
		{"sender id with a space", comment(`{"item":"comment","verb":"add","comment_id":"1_2",
		  "post_id":"111_1","from":{"id":"u 2"},"message":"hi","created_time":2}`)},
		{"post id with a newline", comment(`{"item":"comment","verb":"add","comment_id":"1_2",
		  "post_id":"111\n1","from":{"id":"u2"},"message":"hi","created_time":2}`)},
		{"mid with a space", `{"object":"page","entry":[{"id":"111","time":1,"messaging":[
		  {"sender":{"id":"u9"},"recipient":{"id":"111"},"timestamp":1,"message":{"mid":"m 1","text":"hi"}}]}]}`},
		{"message text over 5000 runes", `{"object":"page","entry":[{"id":"111","time":1,"messaging":[
		  {"sender":{"id":"u9"},"recipient":{"id":"111"},"timestamp":1,"message":{"mid":"m1","text":` +
			text(strings.Repeat("x", voluntree.MaxTextRunes+1)) + `}}]}]}`},
		{"message without mid", `{"object":"page","entry":[{"id":"111","time":1,"messaging":[
		  {"sender":{"id":"u9"},"recipient":{"id":"111"},"timestamp":1,"message":{"text":"hi"}}]}]}`},
		{"message without sender", `{"object":"page","entry":[{"id":"111","time":1,"messaging":[
		  {"recipient":{"id":"111"},"timestamp":1,"message":{"mid":"m1","text":"hi"}}]}]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := facebook.ParseWebhook([]byte(c.body), time.Now())
			if code := voluntree.ErrorCode(err); code != voluntree.EINVALID {
				t.Fatalf("ParseWebhook error = %v (code %q), want code %q", err, code, voluntree.EINVALID)
			}
			if got != nil {
				t.Fatalf("ParseWebhook returned %d messages with an error, want nil", len(got))
			}
		})
	}
}

func TestParseWebhookTextLimit(t *testing.T) {
	// Exactly MaxTextRunes multi-byte runes is accepted (the limit counts runes, not bytes).
	s := strings.Repeat("é", voluntree.MaxTextRunes)
	body, err := json.Marshal(facebook.CommentPayload("111", facebook.ChangeValue{
		CommentID: "1_2", PostID: "111_1", From: &facebook.User{ID: "u2"}, Message: s, CreatedTime: 2,
	}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := facebook.ParseWebhook(body, time.Now())
	if err != nil || len(got) != 1 || got[0].Text != s {
		t.Fatalf("ParseWebhook of a %d-rune text: %d messages, %v", voluntree.MaxTextRunes, len(got), err)
	}
}

func TestCommentPayloadRoundTrip(t *testing.T) {
	in := []facebook.ChangeValue{
		{CommentID: "222_333", PostID: "111_222", From: &facebook.User{ID: "u1", Name: "Ann"},
			Message: "I'm in", CreatedTime: 1700000000},
		{CommentID: "222_334", PostID: "111_222", ParentID: "222_333", From: &facebook.User{ID: "u2"},
			Message: "Me too", CreatedTime: 1700000060},
	}
	p := facebook.CommentPayload("111", in...)
	body, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	// The body is in Meta's shape, not only something our own parser accepts.
	var raw struct {
		Object string `json:"object"`
		Entry  []struct {
			ID      string `json:"id"`
			Changes []struct {
				Field string         `json:"field"`
				Value map[string]any `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Object != "page" || len(raw.Entry) != 1 || raw.Entry[0].ID != "111" || len(raw.Entry[0].Changes) != 2 {
		t.Fatalf("payload shape: %s", body)
	}
	for _, c := range raw.Entry[0].Changes {
		if c.Field != "feed" || c.Value["item"] != "comment" || c.Value["verb"] != "add" {
			t.Fatalf("change shape: %+v", c)
		}
	}

	received := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	got, err := facebook.ParseWebhook(body, received)
	if err != nil {
		t.Fatalf("ParseWebhook: %v", err)
	}
	want := []voluntree.Message{
		{ID: "222_333", Kind: voluntree.KindComment, Source: voluntree.SourceWebhook, PageID: "111",
			PostID: "111_222", ParentID: "111_222", SenderID: "u1", SenderName: "Ann", Text: "I'm in",
			CreatedAt: time.Unix(1700000000, 0), ReceivedAt: received},
		{ID: "222_334", Kind: voluntree.KindComment, Source: voluntree.SourceWebhook, PageID: "111",
			PostID: "111_222", ParentID: "222_333", SenderID: "u2", Text: "Me too",
			CreatedAt: time.Unix(1700000060, 0), ReceivedAt: received},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if diff := diffMessage(got[i], want[i]); diff != "" {
			t.Errorf("message %d: %s", i, diff)
		}
	}
	// CommentPayload must not change the caller's values.
	if in[0].Item != "" || in[0].ParentID != "" {
		t.Errorf("CommentPayload modified its argument: %+v", in[0])
	}
}

// A comment whose author Meta does not disclose is skipped, and the rest of the call kept.
func TestParseWebhookCommentWithoutFrom(t *testing.T) {
	p := facebook.CommentPayload("pg", facebook.ChangeValue{CommentID: "pg_1_1", PostID: "pg_1", Message: "hidden author"},
		facebook.ChangeValue{CommentID: "pg_1_2", PostID: "pg_1", From: &facebook.User{ID: "u1"}, Message: "count me in"})
	body, _ := json.Marshal(p)
	msgs, err := facebook.ParseWebhook(body, time.Now())
	if err != nil || len(msgs) != 1 || msgs[0].ID != "pg_1_2" {
		t.Fatalf("got %v, %v; want only pg_1_2", msgs, err)
	}
}

// TestParseEventsRejectsEventsAlone: whatever is wrong with one event — a wrong type, an
// impossible time, a bad id — only that event is refused, with its raw JSON and a reason;
// the good event of the same body is kept.
func TestParseEventsRejectsEventsAlone(t *testing.T) {
	good := `{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"111_1_ok","post_id":"111_1","from":{"id":"u1"},"message":"count me in","created_time":1732262400}}`
	cases := []struct {
		name, change, reason string
	}{
		{"created_time past 9999", `{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"111_1_x","post_id":"111_1","from":{"id":"u2"},"message":"hi","created_time":253402300800}}`, facebook.RejectInvalid},
		{"created_time before 1970", `{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"111_1_x","post_id":"111_1","from":{"id":"u2"},"message":"hi","created_time":-5}}`, facebook.RejectInvalid},
		{"created_time a string", `{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"111_1_x","post_id":"111_1","from":{"id":"u2"},"message":"hi","created_time":"x"}}`, facebook.RejectMalformed},
		{"created_time a float", `{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"111_1_x","post_id":"111_1","from":{"id":"u2"},"message":"hi","created_time":1.5}}`, facebook.RejectMalformed},
		{"message a number", `{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"111_1_x","post_id":"111_1","from":{"id":"u2"},"message":7}}`, facebook.RejectMalformed},
		{"from a string", `{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"111_1_x","post_id":"111_1","from":"u2","message":"hi"}}`, facebook.RejectMalformed},
		{"value an array", `{"field":"feed","value":[]}`, facebook.RejectMalformed},
		{"change a string", `"change"`, facebook.RejectMalformed},
		{"comment id with a brace", `{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"111_{1}","post_id":"111_1","from":{"id":"u2"},"message":"hi"}}`, facebook.RejectInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := `{"object":"page","entry":[{"id":"111","time":1,"changes":[` + c.change + `,` + good + `]}]}`
			msgs, rejected, err := facebook.ParseEvents([]byte(body), time.Now())
			if err != nil {
				t.Fatalf("ParseEvents: %v; want the body accepted", err)
			}
			if len(msgs) != 1 || msgs[0].ID != "111_1_ok" {
				t.Fatalf("messages %+v, want the good comment", msgs)
			}
			if len(rejected) != 1 || rejected[0].Reason != c.reason || string(rejected[0].Raw) != c.change ||
				voluntree.ErrorCode(rejected[0].Err) != voluntree.EINVALID {
				t.Fatalf("rejected %+v, want one %s with the change's raw JSON", rejected, c.reason)
			}
		})
	}
	// A whole entry of the wrong shape is refused alone too.
	body := `{"object":"page","entry":[7,{"id":"111","changes":[` + good + `]},{"id":5}]}`
	msgs, rejected, err := facebook.ParseEvents([]byte(body), time.Now())
	if err != nil || len(msgs) != 1 || len(rejected) != 2 || string(rejected[0].Raw) != "7" || string(rejected[1].Raw) != `{"id":5}` {
		t.Fatalf("ParseEvents = %d messages, %+v, %v; want the good comment and two refused entries", len(msgs), rejected, err)
	}
}
