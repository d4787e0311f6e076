package voluntree

import "time"

// ChatSession is what a web chat token opens.
type ChatSession struct {
	ID        string    `json:"id"` // the conversation is "webchat:" + ID
	SignupID  string    `json:"signup_id"`
	OrgID     string    `json:"org_id"`
	Name      string    `json:"name"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ConversationID is the session's conversation.
func (c ChatSession) ConversationID() string {
	return ConversationID(WebChatPage, c.ID)
}

// ChatOption is a button under a chat message.
type ChatOption struct {
	Title   string `json:"title"`
	Payload string `json:"payload"`
}

// ChatMessage is one message of a web chat conversation, as its frames carry it.
type ChatMessage struct {
	ID      string       `json:"id,omitempty"` // the history stream's id: ordered (always set when read)
	From    string       `json:"from"`         // volunteer, bot, admin
	Text    string       `json:"text"`
	At      time.Time    `json:"at"`
	Options []ChatOption `json:"options,omitempty"`
	// ClientID is the id the client gave a volunteer's message: its echo tells the client the
	// message was taken.
	ClientID string `json:"client_id,omitempty"`
}
