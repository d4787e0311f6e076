// Package facebook speaks Facebook's side of Voluntree: the webhook's payloads and signature
// (this file), the Graph API client (graph.go) and the comment poller (poller.go).
//
// A webhook call is verified and parsed in two steps:
//
//	if err := facebook.VerifySignature(secret, body, header); err != nil { ... } // 401/403
//	msgs, rejected, err := facebook.ParseEvents(body, time.Now())               // 400 only for the whole body
package facebook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/voluntree/voluntree"
)

// SignatureHeader carries HMAC-SHA256(app secret, raw body) as "sha256=<hex>".
const SignatureHeader = "X-Hub-Signature-256"

// Signature errors: a missing header is 401, a wrong one 403.
var (
	ErrNoSignature  = errors.New("facebook: missing " + SignatureHeader + " header")
	ErrBadSignature = errors.New("facebook: " + SignatureHeader + " does not match the body")
)

// Sign returns the X-Hub-Signature-256 value of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature checks header against the raw body in constant time.
func VerifySignature(secret, body []byte, header string) error {
	if header == "" {
		return ErrNoSignature
	}
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil || len(got) != sha256.Size {
		return ErrBadSignature
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrBadSignature
	}
	return nil
}

// Payload is a webhook call's body: one or more entries, each with feed changes or
// Messenger events. The field names are Meta's.
type Payload struct {
	Object string  `json:"object"`
	Entry  []Entry `json:"entry"`
}

// Entry is one page's batch of changes or Messenger events.
type Entry struct {
	ID        string      `json:"id"` // page id
	Time      int64       `json:"time"`
	Changes   []Change    `json:"changes,omitempty"`
	Messaging []Messaging `json:"messaging,omitempty"`
}

// Change is one feed change (comments, posts, reactions...).
type Change struct {
	Field string      `json:"field"`
	Value ChangeValue `json:"value"`
}

// ChangeValue is the value of a feed change; only comments are used.
type ChangeValue struct {
	Item        string `json:"item"` // comment, post, reaction, status...
	Verb        string `json:"verb"` // add, edited, remove...
	CommentID   string `json:"comment_id,omitempty"`
	PostID      string `json:"post_id,omitempty"`
	ParentID    string `json:"parent_id,omitempty"`
	From        *User  `json:"from,omitempty"`
	Message     string `json:"message,omitempty"`
	CreatedTime int64  `json:"created_time,omitempty"` // unix seconds
}

// User is a sender or recipient.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Messaging is one Messenger event.
type Messaging struct {
	Sender    User              `json:"sender"`
	Recipient User              `json:"recipient"`
	Timestamp int64             `json:"timestamp"` // unix milliseconds
	Message   *MessengerMessage `json:"message,omitempty"`
	Postback  *Postback         `json:"postback,omitempty"`
}

// MessengerMessage is a text (attachments are ignored).
type MessengerMessage struct {
	MID        string      `json:"mid"`
	Text       string      `json:"text,omitempty"`
	IsEcho     bool        `json:"is_echo,omitempty"`
	QuickReply *QuickReply `json:"quick_reply,omitempty"`
	Metadata   string      `json:"metadata,omitempty"` // echoes: what the sender attached
}

// QuickReply is the payload of a quick-reply button the person tapped.
type QuickReply struct {
	Payload string `json:"payload"`
}

// Postback is a button press.
type Postback struct {
	MID     string `json:"mid,omitempty"`
	Title   string `json:"title"`
	Payload string `json:"payload"`
}

// ParseWebhook decodes a webhook body into the messages Voluntree handles: added comments
// (feed), Messenger texts and postbacks, from every entry, in order. Echoes of the page's own
// messages, the page's own comments and other changes are skipped. It returns an EINVALID
// error for malformed JSON, an object other than "page", or a handled event that cannot be
// decoded or fails voluntree.Message.Validate; nothing is returned in that case, so a body is
// taken whole or not at all (the demo channel wants that). received stamps every message's
// ReceivedAt.
func ParseWebhook(body []byte, received time.Time) ([]voluntree.Message, error) {
	msgs, rejected, err := ParseEvents(body, received)
	if err != nil {
		return nil, err
	}
	if len(rejected) > 0 {
		return nil, rejected[0].Err
	}
	return msgs, nil
}

// Reasons an event is rejected alone.
const (
	RejectMalformed = "malformed_event" // not the JSON shape of an event (a wrong type, say)
	RejectInvalid   = "invalid_event"   // decoded, but fails voluntree.Message.Validate
)

// Rejected is one event of a webhook body refused for its own content.
type Rejected struct {
	Reason string          // RejectMalformed or RejectInvalid
	Err    error           // EINVALID, naming the entry and the fault
	Raw    json.RawMessage // the event (or entry) as received
}

// ParseEvents is ParseWebhook for Facebook's own calls: an event that cannot be decoded or
// fails validation is left out and reported in rejected, with its raw JSON, and the others
// are kept. Facebook retries a refused call unchanged for 36 hours, so refusing a whole call
// for one bad event would lose its good ones too. Only a body that is not JSON, or whose
// object is not "page", is an error for the whole body.
func ParseEvents(body []byte, received time.Time) (msgs []voluntree.Message, rejected []Rejected, err error) {
	// The common case decodes the body in one pass. A wrong type anywhere fails that pass
	// (json reports it after decoding the rest), and then every entry and event is decoded on
	// its own, so that the fault stays with its event.
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) || !json.Valid(body) {
			return nil, nil, voluntree.Errorf(voluntree.EINVALID, "malformed JSON: %v", err)
		}
		return parseEventByEvent(body, received)
	}
	if p.Object != "page" {
		return nil, nil, voluntree.Errorf(voluntree.EINVALID, "object is %q, want \"page\"", p.Object)
	}
	for _, e := range p.Entry {
		for _, c := range e.Changes {
			if m, ok := fromChange(e.ID, c); ok {
				m.ReceivedAt = received
				if m.Validate() != nil {
					return parseEventByEvent(body, received) // for the rejected event's raw JSON
				}
				msgs = append(msgs, m)
			}
		}
		for _, ev := range e.Messaging {
			if m, ok := fromMessaging(e.ID, ev); ok {
				m.ReceivedAt = received
				if m.Validate() != nil {
					return parseEventByEvent(body, received)
				}
				msgs = append(msgs, m)
			}
		}
	}
	return msgs, nil, nil
}

// rawPayload and rawEntry are a webhook body with each entry and event left undecoded.
type rawPayload struct {
	Object string            `json:"object"`
	Entry  []json.RawMessage `json:"entry"`
}

type rawEntry struct {
	ID        string            `json:"id"`
	Changes   []json.RawMessage `json:"changes"`
	Messaging []json.RawMessage `json:"messaging"`
}

// parseEventByEvent decodes a body entry by entry and event by event: a fault rejects only
// the entry or event it is in.
func parseEventByEvent(body []byte, received time.Time) (msgs []voluntree.Message, rejected []Rejected, err error) {
	var p rawPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, nil, voluntree.Errorf(voluntree.EINVALID, "malformed JSON: %v", err)
	}
	if p.Object != "page" {
		return nil, nil, voluntree.Errorf(voluntree.EINVALID, "object is %q, want \"page\"", p.Object)
	}
	reject := func(reason string, raw json.RawMessage, format string, a ...any) {
		rejected = append(rejected, Rejected{Reason: reason, Raw: raw, Err: voluntree.Errorf(voluntree.EINVALID, format, a...)})
	}
	keep := func(i int, raw json.RawMessage, m voluntree.Message) {
		m.ReceivedAt = received
		if err := m.Validate(); err != nil {
			reject(RejectInvalid, raw, "entry[%d]: %s", i, voluntree.ErrorMessage(err))
			return
		}
		msgs = append(msgs, m)
	}
	for i, rawE := range p.Entry {
		var e rawEntry
		if err := json.Unmarshal(rawE, &e); err != nil {
			reject(RejectMalformed, rawE, "entry[%d]: %v", i, err)
			continue
		}
		for j, raw := range e.Changes {
			var c Change
			if err := json.Unmarshal(raw, &c); err != nil {
				reject(RejectMalformed, raw, "entry[%d].changes[%d]: %v", i, j, err)
				continue
			}
			if m, ok := fromChange(e.ID, c); ok {
				keep(i, raw, m)
			}
		}
		for j, raw := range e.Messaging {
			var ev Messaging
			if err := json.Unmarshal(raw, &ev); err != nil {
				reject(RejectMalformed, raw, "entry[%d].messaging[%d]: %v", i, j, err)
				continue
			}
			if m, ok := fromMessaging(e.ID, ev); ok {
				keep(i, raw, m)
			}
		}
	}
	return msgs, rejected, nil
}

func fromChange(pageID string, c Change) (voluntree.Message, bool) {
	v := c.Value
	if c.Field != "feed" || v.Item != "comment" || v.Verb != "add" {
		return voluntree.Message{}, false
	}
	m := voluntree.Message{
		ID:        v.CommentID,
		Kind:      voluntree.KindComment,
		Source:    voluntree.SourceWebhook,
		PageID:    pageID,
		PostID:    v.PostID,
		ParentID:  v.ParentID,
		Text:      v.Message,
		CreatedAt: time.Unix(v.CreatedTime, 0).UTC(),
	}
	if v.From == nil || v.From.ID == "" {
		// Meta leaves "from" out when the app may not see the commenter: with nobody to
		// talk to there is nothing to do, and refusing the call would make Facebook retry
		// it (and its other events) for 36 hours.
		return voluntree.Message{}, false
	}
	m.SenderID, m.SenderName = v.From.ID, v.From.Name
	if m.SenderID == pageID { // the page answering in its own comments
		return voluntree.Message{}, false
	}
	return m, true
}

func fromMessaging(pageID string, ev Messaging) (voluntree.Message, bool) {
	m := voluntree.Message{
		Source:    voluntree.SourceWebhook,
		PageID:    pageID,
		SenderID:  ev.Sender.ID,
		CreatedAt: time.UnixMilli(ev.Timestamp).UTC(),
	}
	switch {
	case ev.Message != nil:
		if ev.Message.IsEcho || ev.Sender.ID == pageID {
			return m, false
		}
		m.ID, m.Kind, m.Text = ev.Message.MID, voluntree.KindMessage, ev.Message.Text
		if ev.Message.QuickReply != nil {
			m.Payload = ev.Message.QuickReply.Payload
		}
		if m.Text == "" && m.Payload == "" { // attachments, stickers: nothing to classify
			return m, false
		}
	case ev.Postback != nil:
		m.Kind, m.Text, m.Payload = voluntree.KindPostback, ev.Postback.Title, ev.Postback.Payload
		m.ID = ev.Postback.MID
		if m.ID == "" { // older API versions: no mid on postbacks; sender+time is unique
			m.ID = "pb." + ev.Sender.ID + "." + strconv.FormatInt(ev.Timestamp, 10)
		}
	default: // reads, deliveries, reactions, referrals
		return m, false
	}
	return m, true
}

// CommentPayload builds the webhook body Facebook sends for one added comment: tests, the
// demo channel and the load generator use it so that they exercise the real parser.
func CommentPayload(pageID string, comments ...ChangeValue) Payload {
	e := Entry{ID: pageID, Time: time.Now().Unix()}
	for _, c := range comments {
		c.Item, c.Verb = "comment", "add"
		if c.ParentID == "" {
			c.ParentID = c.PostID
		}
		e.Changes = append(e.Changes, Change{Field: "feed", Value: c})
	}
	return Payload{Object: "page", Entry: []Entry{e}}
}

// MessagePayload is the webhook body of one Messenger event from sender to page: a text
// (with the payload of a tapped quick reply, if any) or, when postback is set, a button press.
func MessagePayload(pageID, sender, mid, text, quickReply string, postback bool, at time.Time) Payload {
	ev := Messaging{Sender: User{ID: sender}, Recipient: User{ID: pageID}, Timestamp: at.UnixMilli()}
	if postback {
		ev.Postback = &Postback{MID: mid, Title: text, Payload: quickReply}
	} else {
		ev.Message = &MessengerMessage{MID: mid, Text: text}
		if quickReply != "" {
			ev.Message.QuickReply = &QuickReply{Payload: quickReply}
		}
	}
	return Payload{Object: "page", Entry: []Entry{{ID: pageID, Time: at.UnixMilli(), Messaging: []Messaging{ev}}}}
}
