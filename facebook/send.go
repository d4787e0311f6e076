package facebook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"unicode/utf8"
)

// The Messenger Send API (POST /{page-id}/messages). A message goes to a person by their
// page-scoped id, or as the private reply to one of their comments (comment_id, once per
// comment, within 7 days). Outside the 24-hour window after the person's last message only
// tagged messages go through (HUMAN_AGENT: 7 days, a person's reply). Metadata comes back in
// the message_echoes webhook, which is how an ambiguous failure (5xx, timeout) is reconciled:
// the caller waits for the echo before sending again.

// Messaging types and tags of the Send API.
const (
	MessagingResponse = "RESPONSE"
	MessagingTag      = "MESSAGE_TAG"
	TagHumanAgent     = "HUMAN_AGENT"
)

// Limits of the Send API.
const (
	MaxMessageRunes    = 2000
	MaxQuickReplies    = 13
	MaxQuickReplyRunes = 20
	MaxMetadataBytes   = 1000
)

// Graph error codes of the Send API.
const (
	CodeOutsideWindow  = 10    // subcode 2018278: sent outside the allowed window
	CodeUnavailable    = 551   // subcode 1545041: this person isn't available right now
	CodeAlreadyReplied = 10900 // a private reply was already sent to this comment
	CodeCannotReply    = 10903 // this person cannot reply to this message
	CodeInvalidToken   = 190   // the page access token is invalid or expired
)

// QuickOption is a tappable option under a message: a text one (Title ≤ 20 characters, its
// Payload comes back in the webhook), or Email to offer the person's email address.
type QuickOption struct {
	Title   string
	Payload string
	Email   bool // the user_email quick reply
}

// OutMessage is one message to send.
type OutMessage struct {
	RecipientID  string // the person's page-scoped id; or
	CommentID    string // the comment a private reply answers
	Text         string
	QuickReplies []QuickOption
	Metadata     string // comes back in the echo (our effect id)
	Tag          string // "" (a RESPONSE within the window) or TagHumanAgent
}

// SendResult is the Send API's answer.
type SendResult struct {
	RecipientID string `json:"recipient_id"`
	MessageID   string `json:"message_id"`
}

// SendMessage sends m from page. It is made once, never retried here: a message is not
// idempotent, so the caller retries durably and reconciles an ambiguous failure with echoes.
func (g *Graph) SendMessage(ctx context.Context, pageID, pageToken string, m OutMessage) (SendResult, error) {
	if err := checkArgs(pageID, pageToken); err != nil {
		return SendResult{}, err
	}
	if (m.RecipientID == "") == (m.CommentID == "") {
		return SendResult{}, errors.New("facebook: send: exactly one of RecipientID and CommentID")
	}
	text := m.Text
	if utf8.RuneCountInString(text) > MaxMessageRunes {
		text = string([]rune(text)[:MaxMessageRunes-1]) + "…"
	}
	if len(m.Metadata) > MaxMetadataBytes {
		return SendResult{}, fmt.Errorf("facebook: send: metadata over %d bytes", MaxMetadataBytes)
	}
	type quickReply struct {
		ContentType string `json:"content_type"`
		Title       string `json:"title,omitempty"`
		Payload     string `json:"payload,omitempty"`
	}
	msg := struct {
		Text         string       `json:"text"`
		QuickReplies []quickReply `json:"quick_replies,omitempty"`
		Metadata     string       `json:"metadata,omitempty"`
	}{Text: text, Metadata: m.Metadata}
	for _, q := range m.QuickReplies[:min(len(m.QuickReplies), MaxQuickReplies)] {
		if q.Email {
			msg.QuickReplies = append(msg.QuickReplies, quickReply{ContentType: "user_email"})
			continue
		}
		title := q.Title
		if utf8.RuneCountInString(title) > MaxQuickReplyRunes {
			title = string([]rune(title)[:MaxQuickReplyRunes-1]) + "…"
		}
		msg.QuickReplies = append(msg.QuickReplies, quickReply{ContentType: "text", Title: title, Payload: q.Payload})
	}
	recipient := map[string]string{"id": m.RecipientID}
	if m.CommentID != "" {
		recipient = map[string]string{"comment_id": m.CommentID}
	}
	rb, _ := json.Marshal(recipient)
	mb, err := json.Marshal(msg)
	if err != nil {
		return SendResult{}, fmt.Errorf("facebook: send: %w", err)
	}
	form := url.Values{"recipient": {string(rb)}, "message": {string(mb)}, "messaging_type": {MessagingResponse}}
	if m.Tag != "" {
		form.Set("messaging_type", MessagingTag)
		form.Set("tag", m.Tag)
	}
	var out SendResult
	rq := request{method: http.MethodPost, path: []string{pageID, "messages"}, token: pageToken, params: form}
	if err := g.call(ctx, rq, &out); err != nil {
		return SendResult{}, err
	}
	if out.MessageID == "" {
		return SendResult{}, fmt.Errorf("%w: POST /%s/messages: no message_id", ErrUnexpectedResponse, pageID)
	}
	return out, nil
}

// ReplyToComment posts a public reply to a comment (POST /{comment-id}/comments).
func (g *Graph) ReplyToComment(ctx context.Context, commentID, pageToken, text string) (string, error) {
	if err := checkArgs(commentID, pageToken); err != nil {
		return "", err
	}
	var out idResponse
	rq := request{method: http.MethodPost, path: []string{commentID, "comments"}, token: pageToken,
		params: url.Values{"message": {text}}}
	if err := g.call(ctx, rq, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// GraphCode returns the Graph error code and subcode of err (0, 0 when it is not a Graph error).
func GraphCode(err error) (code, subcode int) {
	var ge *GraphError
	if errors.As(err, &ge) {
		return ge.Code, ge.Subcode
	}
	return 0, 0
}

// Echo is the echo of a message a page sent (message_echoes), with its metadata.
type Echo struct {
	PageID, RecipientID, MessageID, Metadata string
}

// Echoes returns the echoes in a webhook body that carry metadata (ours do: the effect id).
// A body that is not a page webhook has none.
func Echoes(body []byte) []Echo {
	var p Payload
	if json.Unmarshal(body, &p) != nil || p.Object != "page" {
		return nil
	}
	var out []Echo
	for _, e := range p.Entry {
		for _, ev := range e.Messaging {
			if m := ev.Message; m != nil && m.IsEcho && m.Metadata != "" && len(m.Metadata) <= MaxMetadataBytes {
				out = append(out, Echo{PageID: e.ID, RecipientID: ev.Recipient.ID, MessageID: m.MID, Metadata: m.Metadata})
			}
		}
	}
	return out
}
