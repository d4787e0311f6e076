package httpapi

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"google.golang.org/protobuf/proto"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
	"github.com/voluntree/voluntree/redisstore"
)

// Conversations is what admins may do to a volunteer conversation (cluster.ConversationAdmin).
type Conversations interface {
	Reply(ctx context.Context, conversationID, text string) (string, error)
	Release(ctx context.Context, conversationID string) error
}

// conversationView is a conversation as an admin sees it.
type conversationView struct {
	ID            string                  `json:"id"`
	Name          string                  `json:"name,omitempty"`
	Channel       string                  `json:"channel"`
	Stage         string                  `json:"stage"`
	Asking        string                  `json:"asking,omitempty"`
	SignupID      string                  `json:"signup_id,omitempty"`
	SlotID        string                  `json:"slot_id,omitempty"`
	Email         string                  `json:"email,omitempty"`
	EmailVerified bool                    `json:"email_verified"`
	Handoff       bool                    `json:"handoff"` // waiting for an admin; the bot is silent
	LastInbound   *time.Time              `json:"last_inbound,omitempty"`
	WindowOpen    bool                    `json:"window_open"` // automated Messenger messages can reach the person
	Messages      int64                   `json:"messages"`
	Delivery      *voluntree.Delivery     `json:"delivery,omitempty"`
	History       []voluntree.ChatMessage `json:"history,omitempty"` // web chat
}

// conversation loads a conversation of the caller's organization (404 otherwise: another
// organization's conversations do not exist for it).
func (s *Server) conversation(c *fiber.Ctx) (string, *grainpb.ConversationState, error) {
	id := c.Params("id")
	if id == "" || len(id) > 2*voluntree.MaxIDLength+1 || !utf8.ValidString(id) || !strings.Contains(id, ":") {
		return "", nil, voluntree.Errorf(voluntree.ENOTFOUND, "no such conversation")
	}
	b, err := s.cfg.Store.LoadConversation(c.UserContext(), id)
	if err != nil {
		return "", nil, err
	}
	st := &grainpb.ConversationState{}
	if b == nil || proto.Unmarshal(b, st) != nil || st.OrgId == "" || st.OrgId != principal(c).OrgID {
		return "", nil, voluntree.Errorf(voluntree.ENOTFOUND, "no such conversation")
	}
	return id, st, nil
}

// getConversation: GET /api/v1/conversations/:id.
func (s *Server) getConversation(c *fiber.Ctx) error {
	id, st, err := s.conversation(c)
	if err != nil {
		return err
	}
	v := conversationView{ID: id, Name: st.SenderName, Channel: st.Channel, Stage: st.Stage, Asking: st.Asking,
		SignupID: st.SignupId, SlotID: st.SlotId, Email: st.Email, EmailVerified: st.EmailVerified,
		Handoff: st.Handoff, Messages: st.Messages}
	if st.LastInboundUnixNano != 0 {
		t := time.Unix(0, st.LastInboundUnixNano).UTC()
		v.LastInbound = &t
		v.WindowOpen = st.Channel == "webchat" || time.Since(t) < 24*time.Hour
	}
	ctx := c.UserContext()
	d, err := s.cfg.Store.ConversationDelivery(ctx, id)
	if err != nil {
		return err
	}
	if d.Error != "" || d.Dropped > 0 {
		v.Delivery = &d
	}
	if st.Channel == "webchat" {
		if v.History, err = s.cfg.Store.ChatHistory(ctx, id, "", redisstore.ChatHistoryMax); err != nil {
			return err
		}
	}
	return c.JSON(v)
}

// replyConversation: POST /api/v1/conversations/:id/messages {"text"}: an admin's answer, sent
// with Messenger's HUMAN_AGENT tag (7 days after the person's last message).
func (s *Server) replyConversation(c *fiber.Ctx) error {
	id, st, err := s.conversation(c)
	if err != nil {
		return err
	}
	var in struct {
		Text string `json:"text"`
	}
	if err := decodeJSON(c.Body(), &in); err != nil {
		return err
	}
	in.Text = strings.TrimSpace(in.Text)
	if in.Text == "" || !utf8.ValidString(in.Text) || utf8.RuneCountInString(in.Text) > 2000 {
		return voluntree.FieldErrorf("text", "text is required, at most 2000 characters")
	}
	if st.Channel != "webchat" && st.LastInboundUnixNano != 0 && time.Since(time.Unix(0, st.LastInboundUnixNano)) > 7*24*time.Hour {
		return voluntree.Errorf(voluntree.ECONFLICT, "the person last wrote more than 7 days ago: Messenger allows no reply any more")
	}
	mid, err := s.cfg.Conversations.Reply(c.UserContext(), id, in.Text)
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("admin reply queued", "action", "admin_reply", "org", principal(c).OrgID, "conversation", id)
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"id": mid})
}

// releaseConversation: POST /api/v1/conversations/:id/release: the bot answers again.
func (s *Server) releaseConversation(c *fiber.Ctx) error {
	id, _, err := s.conversation(c)
	if err != nil {
		return err
	}
	if err := s.cfg.Conversations.Release(c.UserContext(), id); err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"released": true})
}
