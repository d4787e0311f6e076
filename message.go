package voluntree

import (
	"time"
	"unicode/utf8"
)

// MessageKind says where a Message came from on Facebook.
type MessageKind string

// The kinds of Message.
const (
	KindComment  MessageKind = "comment"  // a comment (or reply) on a page post
	KindMessage  MessageKind = "message"  // a Messenger text message
	KindPostback MessageKind = "postback" // a Messenger button press
)

// Sources of a Message: how it reached the ingest stream.
const (
	SourceWebhook = "webhook" // Facebook called POST /webhooks/facebook
	SourceDemo    = "demo"    // the demo channel of the embedded default
	SourcePoll    = "poll"    // the comment poller (when a webhook was missed)
	SourceWebChat = "webchat" // the web chat page (PageID WebChatPage, SignupID set)
)

// WebChatPage is the page id of web chat messages: their conversations are
// "webchat:<session id>".
const WebChatPage = "webchat"

// Limits of one Message.
const (
	MaxIDLength     = 256  // bytes of any Facebook id (comment, mid, page, post, sender)
	MaxPayloadBytes = 4000 // a postback or quick-reply payload (Messenger allows 1,000 characters)
	MaxNameBytes    = 1024 // a sender's name
)

// Message is one thing a person said to a page: the unit of the ingest stream. Its ID is
// Facebook's own (comment_id, or the Messenger mid), so a redelivery has the same ID.
type Message struct {
	ID         string      `json:"id"`
	Kind       MessageKind `json:"kind"`
	Source     string      `json:"source"`
	PageID     string      `json:"page_id"`
	PostID     string      `json:"post_id,omitempty"`   // comments only
	ParentID   string      `json:"parent_id,omitempty"` // comments: the post or the comment replied to
	SenderID   string      `json:"sender_id"`
	SenderName string      `json:"sender_name,omitempty"`
	Text       string      `json:"text"`
	Payload    string      `json:"payload,omitempty"`   // postbacks and quick replies
	CreatedAt  time.Time   `json:"created_at"`          // when the person wrote it (Facebook's clock)
	ReceivedAt time.Time   `json:"received_at"`         // when we accepted it (for end-to-end latency)
	SignupID   string      `json:"signup_id,omitempty"` // web chat: the signup the session is for
}

// ConversationID is the key of the person's private conversation with the page.
func (m Message) ConversationID() string { return ConversationID(m.PageID, m.SenderID) }

// ConversationID is the key of a conversation: page id and sender id.
func ConversationID(pageID, senderID string) string { return pageID + ":" + senderID }

// Validate checks a Message before it is enqueued: ids present and bounded, known kind, text
// within MaxTextRunes, payload and name bounded, times that can be stored.
func (m Message) Validate() error {
	switch m.Kind {
	case KindComment, KindMessage, KindPostback:
	default:
		return Errorf(EINVALID, "message kind %q is not one of comment, message, postback", m.Kind)
	}
	ids := []struct{ name, v string }{{"id", m.ID}, {"page_id", m.PageID}, {"sender_id", m.SenderID}}
	if m.Kind == KindComment {
		ids = append(ids, struct{ name, v string }{"post_id", m.PostID})
	}
	for _, f := range ids {
		if f.v == "" {
			return Errorf(EINVALID, "%s %s: missing", m.Kind, f.name)
		}
	}
	// Optional ids are checked when present.
	ids = append(ids, struct{ name, v string }{"post_id", m.PostID}, struct{ name, v string }{"parent_id", m.ParentID},
		struct{ name, v string }{"signup_id", m.SignupID})
	for _, f := range ids {
		if f.v != "" && !validFacebookID(f.v) {
			return Errorf(EINVALID, "%s %s: not a Facebook id: %.40q", m.Kind, f.name, f.v)
		}
	}
	if !utf8.ValidString(m.Text) {
		return Errorf(EINVALID, "%s %s: text is not UTF-8", m.Kind, m.ID)
	}
	if n := utf8.RuneCountInString(m.Text); n > MaxTextRunes {
		return Errorf(EINVALID, "%s %s: text has %d characters, at most %d", m.Kind, m.ID, n, MaxTextRunes)
	}
	if len(m.Payload) > MaxPayloadBytes || !utf8.ValidString(m.Payload) {
		return Errorf(EINVALID, "%s %s: payload is not UTF-8 of at most %d bytes", m.Kind, m.ID, MaxPayloadBytes)
	}
	if len(m.SenderName) > MaxNameBytes || !utf8.ValidString(m.SenderName) {
		return Errorf(EINVALID, "%s %s: sender name is not UTF-8 of at most %d bytes", m.Kind, m.ID, MaxNameBytes)
	}
	for _, t := range []struct {
		name string
		at   time.Time
	}{{"created_at", m.CreatedAt}, {"received_at", m.ReceivedAt}} {
		if !t.at.IsZero() && (t.at.Before(minMessageTime) || t.at.After(maxMessageTime)) {
			return Errorf(EINVALID, "%s %s: %s %d is not a time between 1970 and 9999", m.Kind, m.ID, t.name, t.at.Unix())
		}
	}
	return nil
}

// validFacebookID reports whether s can be a Facebook id: Graph ids are digits and
// underscores, Messenger mids ASCII letters, digits and a few marks. Printable ASCII without
// spaces and braces is accepted: anything else (control or non-ASCII bytes) would not even
// survive a JSON round trip unchanged, and two ids could then meet as one.
func validFacebookID(s string) bool {
	if len(s) > MaxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

// The times a Message may carry (zero aside): a year past 9999 cannot even be encoded.
var (
	minMessageTime = time.Unix(0, 0)
	maxMessageTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// Interest is one person's "I'm in" for a post: what the dashboard lists as a signup. It is
// stored once per Message ID, however often the message is delivered.
type Interest struct {
	ID         string      `json:"id"` // the Message ID that expressed it
	PostID     string      `json:"post_id,omitempty"`
	PageID     string      `json:"page_id"`
	SenderID   string      `json:"sender_id"`
	SenderName string      `json:"sender_name,omitempty"`
	Kind       MessageKind `json:"kind"`
	Text       string      `json:"text"`
	Intent     Intent      `json:"intent"`
	Confidence float32     `json:"confidence"`
	CreatedAt  time.Time   `json:"created_at"`  // when the person wrote it
	ReceivedAt time.Time   `json:"received_at"` // when we accepted the message
	RecordedAt time.Time   `json:"recorded_at"` // when the interest was stored
	// Turn marks a reply within the person's conversation flow (an answer to the bot): it is
	// counted and shown as a message, never stored as a new interest.
	Turn bool `json:"turn,omitempty"`
}

// EventType names what an Event reports.
type EventType string

// Event types.
const (
	EventInterest  EventType = "interest"  // a new Interest was stored
	EventMessage   EventType = "message"   // a new message of another intent (Event.Intent); feeds that ask for it only
	EventPost      EventType = "post"      // an admin post changed status
	EventNotice    EventType = "notice"    // something the admins should look at (a question, a handoff)
	EventBooking   EventType = "booking"   // a slot's bookings changed
	EventVolunteer EventType = "volunteer" // a volunteer's stage, email or slot changed
)

// Notice is a message for the admins about one conversation.
type Notice struct {
	ConversationID string `json:"conversation_id"`
	Name           string `json:"name,omitempty"`
	Text           string `json:"text"`
}

// BookingUpdate is a change of a slot's bookings and its counts afterwards.
type BookingUpdate struct {
	SignupID       string `json:"signup_id"`
	SlotID         string `json:"slot_id"`
	SlotLabel      string `json:"slot_label,omitempty"` // its title, or its date and start
	ConversationID string `json:"conversation_id"`
	Name           string `json:"name,omitempty"`
	Channel        string `json:"channel,omitempty"`
	Outcome        string `json:"outcome"` // booked, waitlisted, cancelled, offered
	Booked         int    `json:"booked"`
	Held           int    `json:"held"`
	Waiting        int    `json:"waiting"`
	Required       int    `json:"required"`
}

// PostUpdate is a post's new status, as an event carries it.
type PostUpdate struct {
	ID             string     `json:"id"`
	SignupID       string     `json:"signup_id"`
	PageID         string     `json:"page_id"`
	Status         PostStatus `json:"status"`
	FacebookPostID string     `json:"facebook_post_id,omitempty"`
	Error          string     `json:"error,omitempty"`
	Attempts       int        `json:"attempts"`
}

// Event is something admins see live: published to every node and kept in a capped replay
// log. ID is the replay log's id (Redis stream id), increasing in publication order.
type Event struct {
	ID        string         `json:"id,omitempty"` // always set once published
	Type      EventType      `json:"type"`
	PostID    string         `json:"post_id,omitempty"`
	Intent    Intent         `json:"intent,omitempty"`   // EventMessage: the message's intent (before the payload: routed without decoding it)
	Interest  *Interest      `json:"interest,omitempty"` // EventInterest, and EventMessage (the classified message)
	Post      *PostUpdate    `json:"post,omitempty"`     // EventPost (PostID is then the admin post id)
	Notice    *Notice        `json:"notice,omitempty"`
	Booking   *BookingUpdate `json:"booking,omitempty"`
	Volunteer *Volunteer     `json:"volunteer,omitempty"`
}

// Volunteer is one person in a signup's conversation flow, as admins see them: who, on which
// channel, how far along, and in which slot.
type Volunteer struct {
	ConversationID string    `json:"conversation_id"`
	SignupID       string    `json:"signup_id,omitempty"`
	Name           string    `json:"name"`
	Channel        string    `json:"channel"`
	Stage          string    `json:"stage"`
	Email          string    `json:"email,omitempty"`
	EmailVerified  bool      `json:"email_verified"`
	SlotID         string    `json:"slot_id,omitempty"`
	Handoff        bool      `json:"handoff"`
	JoinedAt       time.Time `json:"joined_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// Version grows with every change of the conversation: of two views of one conversation,
	// a reader keeps the one with the higher version (events may arrive out of order).
	Version int64 `json:"version"`
}

// PostEvent is the event announcing a post's current status.
func PostEvent(p *Post) Event {
	return Event{Type: EventPost, PostID: p.ID, Post: &PostUpdate{
		ID: p.ID, SignupID: p.SignupID, PageID: p.PageID, Status: p.Status,
		FacebookPostID: p.FacebookPostID, Error: p.Error, Attempts: p.Attempts,
	}}
}
