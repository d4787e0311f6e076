package fakegraph

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"
)

// The Messenger Send API: POST /{page-id}/messages with a page token, the form fields
// recipient ({"id": PSID} or {"comment_id": ...} for a private reply), message ({"text",
// "quick_replies", "metadata"}), messaging_type (RESPONSE, UPDATE, MESSAGE_TAG) and tag. It
// answers {"recipient_id", "message_id"} and, as Facebook does when the app subscribes to
// message_echoes, calls the webhook (Config.WebhookURL, signed with Config.WebhookSecret) with
// an echo of the message carrying its metadata.
//
// The documented errors: a second private reply to one comment is code 10900; a person set
// OutsideWindow gets code 10 / subcode 2018278 for any message but a HUMAN_AGENT-tagged one; a
// person set Unavailable gets code 551 / subcode 1545041.

// QuickReply is an option sent with a message ("text" quick reply, or "user_email").
type QuickReply struct {
	ContentType string `json:"content_type"`
	Title       string `json:"title,omitempty"`
	Payload     string `json:"payload,omitempty"`
}

// Sent is a message the Send API accepted.
type Sent struct {
	MessageID     string
	PageID        string
	RecipientID   string // the PSID (for a private reply, the commenter's)
	CommentID     string // a private reply's comment
	Text          string
	QuickReplies  []QuickReply
	Metadata      string
	MessagingType string
	Tag           string
	Time          time.Time
}

// SetWebhook sets where echoes go and the secret they are signed with (the webhook's server
// may start after the fake).
func (s *Server) SetWebhook(url, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.WebhookURL, s.cfg.WebhookSecret = url, secret
}

// SentMessages returns the messages a page sent, in order.
func (s *Server) SentMessages(pageID string) []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Sent
	for _, m := range s.sent {
		if m.PageID == pageID {
			out = append(out, m)
		}
	}
	return out
}

// OutsideWindow makes messages to psid fail as outside the 24-hour window (HUMAN_AGENT
// messages excepted), or lifts that with false.
func (s *Server) OutsideWindow(psid string, outside bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outside[psid] = outside
}

// Unavailable makes messages to psid fail as "this person isn't available right now".
func (s *Server) Unavailable(psid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unavailable[psid] = true
}

// CommenterPSID sets the PSID a private reply to commentID reaches (default "psid-<comment>").
func (s *Server) CommenterPSID(commentID, psid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commenters[commentID] = psid
}

// sendMessage serves POST /{page}/messages; s.mu is held.
func (s *Server) sendMessage(rq *request, pageID string) (any, *apiError) {
	if e := s.pageAuth(rq, pageID, pageID); e != nil {
		return nil, e
	}
	var recipient struct {
		ID        string `json:"id"`
		CommentID string `json:"comment_id"`
	}
	if err := json.Unmarshal([]byte(rq.form.Get("recipient")), &recipient); err != nil || (recipient.ID == "") == (recipient.CommentID == "") {
		return nil, badRequest(100, "(#100) param recipient must be a JSON object with id or comment_id")
	}
	var message struct {
		Text         string       `json:"text"`
		QuickReplies []QuickReply `json:"quick_replies"`
		Metadata     string       `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(rq.form.Get("message")), &message); err != nil || message.Text == "" {
		return nil, badRequest(100, "(#100) param message must be a JSON object with text")
	}
	switch {
	case utf8.RuneCountInString(message.Text) > 2000:
		return nil, badRequest(100, "(#100) Length of param message[text] must be less than or equal to 2000")
	case len(message.QuickReplies) > 13:
		return nil, badRequest(100, "(#100) param message[quick_replies] must have at most 13 elements")
	case len(message.Metadata) > 1000:
		return nil, badRequest(100, "(#100) Length of param message[metadata] must be less than or equal to 1000")
	}
	for _, q := range message.QuickReplies {
		if q.ContentType == "text" && (q.Title == "" || utf8.RuneCountInString(q.Title) > 20 || q.Payload == "") {
			return nil, badRequest(100, "(#100) a text quick reply needs a title of at most 20 characters and a payload")
		}
	}
	mt, tag := rq.form.Get("messaging_type"), rq.form.Get("tag")
	switch {
	case mt != "RESPONSE" && mt != "UPDATE" && mt != "MESSAGE_TAG":
		return nil, badRequest(100, "(#100) param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}")
	case mt == "MESSAGE_TAG" && tag == "":
		return nil, badRequest(100, "(#100) param tag is required for messaging_type MESSAGE_TAG")
	}
	psid := recipient.ID
	if recipient.CommentID != "" {
		if s.replied[recipient.CommentID] {
			return nil, &apiError{status: 400, code: 10900, typ: "OAuthException", msg: "Activity already replied to"}
		}
		psid = s.commenters[recipient.CommentID]
		if psid == "" {
			psid = "psid-" + recipient.CommentID
		}
	}
	switch {
	case s.unavailable[psid]:
		return nil, &apiError{status: 400, code: 551, subcode: 1545041, typ: "OAuthException", msg: "This person isn't available right now."}
	case s.outside[psid] && tag != "HUMAN_AGENT":
		return nil, &apiError{status: 400, code: 10, subcode: 2018278, typ: "OAuthException",
			msg: "(#10) This message is sent outside of allowed window."}
	}
	if recipient.CommentID != "" {
		s.replied[recipient.CommentID] = true
	}
	m := Sent{MessageID: "m_" + s.next(), PageID: pageID, RecipientID: psid, CommentID: recipient.CommentID,
		Text: message.Text, QuickReplies: message.QuickReplies, Metadata: message.Metadata,
		MessagingType: mt, Tag: tag, Time: time.Now().UTC()}
	s.sent = append(s.sent, m)
	if s.cfg.OnSend != nil {
		s.cfg.OnSend(m)
	}
	s.echo(m)
	return map[string]any{"recipient_id": psid, "message_id": m.MessageID}, nil
}

// echo calls the webhook with the message's echo, from a goroutine of its own (Facebook's
// callbacks are asynchronous); s.mu is held.
func (s *Server) echo(m Sent) {
	if s.cfg.WebhookURL == "" {
		return
	}
	at := m.Time.UnixMilli()
	body, _ := json.Marshal(map[string]any{"object": "page", "entry": []any{map[string]any{
		"id": m.PageID, "time": at, "messaging": []any{map[string]any{
			"sender": map[string]any{"id": m.PageID}, "recipient": map[string]any{"id": m.RecipientID},
			"timestamp": at,
			"message": map[string]any{"is_echo": true, "app_id": s.cfg.AppID, "mid": m.MessageID,
				"text": m.Text, "metadata": m.Metadata},
		}},
	}}})
	mac := hmac.New(sha256.New, []byte(s.cfg.WebhookSecret))
	mac.Write(body)
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	s.echoes.Add(1)
	go func() {
		defer s.echoes.Done()
		for attempt := range 25 { // Facebook retries failed deliveries too (for hours; here ~30 s)
			req, _ := http.NewRequest(http.MethodPost, s.cfg.WebhookURL, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Hub-Signature-256", sig)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
			select {
			case <-s.closed:
				return
			case <-time.After(time.Duration(min(attempt+1, 20)) * 100 * time.Millisecond):
			}
		}
		fmt.Println("fakegraph: echo of", m.MessageID, "was not accepted")
	}()
}
