package httpapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
)

// Demo is the demo channel of the embedded default: a made-up page and post that visitors of
// the first page can comment on without a Facebook account.
type Demo struct {
	PageID      string
	PostID      string
	PostMessage string // the post's text, shown on the page
	SignupID    string // the demo signup: its web chat is /chat/<SignupID>
}

// DefaultDemo is the demo page and post.
var DefaultDemo = Demo{
	PageID:      "demo-page",
	PostID:      "demo-page_1",
	PostMessage: "Riverside cleanup this Saturday, 9am–1pm! We need 20 volunteers for litter picking, sorting and snacks. Comment if you can join.",
	SignupID:    "su_demo",
}

type demoInfo struct {
	Enabled     bool   `json:"enabled"`
	PageID      string `json:"page_id,omitempty"`
	PostID      string `json:"post_id,omitempty"`
	PostMessage string `json:"post_message,omitempty"`
	ChatURL     string `json:"chat_url,omitempty"` // the demo signup's web chat: play the volunteer
}

func (s *Server) demoInfo(c *fiber.Ctx) error {
	if s.cfg.Demo == nil {
		return c.JSON(demoInfo{})
	}
	d := s.cfg.Demo
	info := demoInfo{Enabled: true, PageID: d.PageID, PostID: d.PostID, PostMessage: d.PostMessage}
	if d.SignupID != "" {
		info.ChatURL = "/chat/" + d.SignupID
	}
	return c.JSON(info)
}

type demoComment struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

type demoAccepted struct {
	MessageID string `json:"message_id"`
	PostID    string `json:"post_id"`
}

// parseDemoComment reads {"name","text"}: both required (trimmed), the name at most 80
// characters; the text's own limit is the webhook's.
func parseDemoComment(body []byte) (demoComment, error) {
	var req demoComment
	if err := json.Unmarshal(body, &req); err != nil {
		return req, voluntree.Errorf(voluntree.EINVALID, "body must be a JSON object {\"name\", \"text\"}: %v", err)
	}
	req.Name, req.Text = strings.TrimSpace(req.Name), strings.TrimSpace(req.Text)
	switch {
	case req.Name == "":
		return req, voluntree.Errorf(voluntree.EINVALID, "name: required")
	case utf8.RuneCountInString(req.Name) > 80:
		return req, voluntree.Errorf(voluntree.EINVALID, "name: at most 80 characters")
	case req.Text == "":
		return req, voluntree.Errorf(voluntree.EINVALID, "text: required")
	}
	return req, nil
}

// demoComment handles POST /api/v1/demo/comments {"name","text"}: it builds the webhook body
// Facebook would send for that comment and takes it through the webhook's own parser,
// validation and ingest stream — nothing goes around the real path but the signature.
func (s *Server) demoComment(c *fiber.Ctx) error {
	if s.cfg.Demo == nil {
		return fiber.NewError(fiber.StatusNotFound, "the demo channel is off (it runs on the embedded default, or with VOLUNTREE_DEMO=on)")
	}
	req, err := parseDemoComment(c.Body())
	if err != nil {
		return err
	}
	d := s.cfg.Demo
	nameSum := sha256.Sum256([]byte(strings.ToLower(req.Name)))
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	commentID := d.PostID + "_" + hex.EncodeToString(nonce[:])
	payload := facebook.CommentPayload(d.PageID, facebook.ChangeValue{
		CommentID:   commentID,
		PostID:      d.PostID,
		From:        &facebook.User{ID: "demo-" + hex.EncodeToString(nameSum[:6]), Name: req.Name},
		Message:     req.Text,
		CreatedTime: time.Now().Unix(),
	})
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	msgs, err := facebook.ParseWebhook(body, time.Now())
	if err != nil {
		return err // e.g. text over 5,000 characters
	}
	for i := range msgs {
		msgs[i].Source = voluntree.SourceDemo
	}
	res, err := s.accept(c.UserContext(), msgs, nil)
	if err != nil {
		return err
	}
	if res.Rejected > 0 {
		return voluntree.Errorf(voluntree.EINVALID, "the comment cannot be stored")
	}
	return c.Status(fiber.StatusAccepted).JSON(demoAccepted{MessageID: commentID, PostID: d.PostID})
}
