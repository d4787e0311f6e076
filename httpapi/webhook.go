package httpapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
)

// MaxWebhookBody is the largest webhook call accepted (Facebook batches stay far below).
const MaxWebhookBody = 1 << 20

// Ingester appends accepted messages to the ingest stream (voluntree.Ingester; redisstore.Store
// implements it): one outcome per message — its entry id, "" for a message accepted before (a
// redelivery), or an error of its own — and an error only when the stream cannot be written.
// It keeps the events refused for their own content in the rejected-events stream.
type Ingester = voluntree.Ingester

// webhookVerify answers Facebook's subscription handshake: GET with hub.mode=subscribe, the
// verify token we configured, and a challenge to echo.
func (s *Server) webhookVerify(c *fiber.Ctx) error {
	if s.cfg.VerifyToken == "" {
		return fiber.NewError(fiber.StatusServiceUnavailable, "webhook is not configured: set VOLUNTREE_FB_VERIFY_TOKEN")
	}
	if c.Query("hub.mode") != "subscribe" {
		return voluntree.Errorf(voluntree.EINVALID, "hub.mode must be \"subscribe\"")
	}
	if subtle.ConstantTimeCompare([]byte(c.Query("hub.verify_token")), []byte(s.cfg.VerifyToken)) != 1 {
		return fiber.NewError(fiber.StatusForbidden, "hub.verify_token does not match")
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
	return c.SendString(c.Query("hub.challenge"))
}

type webhookResponse struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected,omitempty"` // events left out for their own content (rejected-events stream)
}

// webhookReceive handles POST /webhooks/facebook: signature over the raw body, then every
// handled event of every entry appended to the ingest stream; 200 only once they are stored.
func (s *Server) webhookReceive(c *fiber.Ctx) error {
	received := time.Now()
	if s.webhooks != nil {
		select {
		case s.webhooks <- struct{}{}:
			s.cfg.Metrics.WebhookInflight.Inc()
			defer func() { <-s.webhooks; s.cfg.Metrics.WebhookInflight.Dec() }()
		default:
			s.reject("busy")
			e := voluntree.Errorf(voluntree.EOVERLOADED, "too many webhook calls at once; retry later")
			e.RetryAfter = time.Second
			return e
		}
	}
	body := c.Request().Body() // raw bytes, never decoded: the signature covers exactly these
	if len(body) > MaxWebhookBody {
		s.reject("too_large")
		return fiber.NewError(fiber.StatusRequestEntityTooLarge, "webhook body exceeds 1 MiB")
	}
	if len(s.cfg.AppSecret) == 0 {
		s.reject("not_configured")
		return fiber.NewError(fiber.StatusServiceUnavailable, "webhook is not configured: set VOLUNTREE_FB_APP_SECRET")
	}
	if err := facebook.VerifySignature(s.cfg.AppSecret, body, c.Get(facebook.SignatureHeader)); err != nil {
		if errors.Is(err, facebook.ErrNoSignature) {
			s.reject("no_signature")
			return fiber.NewError(fiber.StatusUnauthorized, err.Error())
		}
		s.reject("bad_signature")
		return fiber.NewError(fiber.StatusForbidden, err.Error())
	}
	msgs, rejected, err := facebook.ParseEvents(body, received)
	if err != nil {
		s.reject("malformed")
		return err
	}
	if err := s.recordEchoes(c.UserContext(), body); err != nil {
		return err
	}
	rs := make([]voluntree.Rejection, 0, len(rejected))
	for _, r := range rejected { // left out, so that the call's other events are not lost
		rs = append(rs, voluntree.Rejection{Reason: r.Reason, Error: voluntree.ErrorMessage(r.Err),
			Source: voluntree.SourceWebhook, Raw: string(r.Raw), At: received})
	}
	res, err := s.accept(c.UserContext(), msgs, rs)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

// recordEchoes marks the effects whose messages Facebook echoed (message_echoes with our
// metadata): the effects worker then knows an ambiguous send went through.
func (s *Server) recordEchoes(ctx context.Context, body []byte) error {
	if s.cfg.Store == nil || !bytes.Contains(body, []byte(`"is_echo"`)) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, e := range facebook.Echoes(body) {
		if _, err := s.cfg.Store.MarkEchoed(ctx, e.Metadata, e.MessageID); err != nil {
			s.cfg.Logger.Error("record echo", "action", "webhook", "error", err)
			return voluntree.Errorf(voluntree.EUNAVAILABLE, "could not record the echoes; retry later")
		}
		// Our metadata is "<conversation>:<n>": a private reply's echo names the commenter's
		// Messenger id, which then continues that conversation (as the Send API's answer says,
		// in case that answer was lost).
		conv := e.Metadata[:max(0, strings.LastIndexByte(e.Metadata, ':'))]
		alias := voluntree.ConversationID(e.PageID, e.RecipientID)
		if strings.HasPrefix(conv, e.PageID+":") && alias != conv && e.RecipientID != "" {
			if err := s.cfg.Store.SetConversationAlias(ctx, alias, conv); err != nil {
				return voluntree.Errorf(voluntree.EUNAVAILABLE, "could not record the echoes; retry later")
			}
		}
	}
	return nil
}

// accept appends parsed messages to the ingest stream, and refused events to the
// rejected-events stream: the one way in for the webhook and the demo channel alike. Its
// error is for our side failing (503); a message refused for its own content is counted in
// the response, never an error of the call.
func (s *Server) accept(ctx context.Context, msgs []voluntree.Message, rejected []voluntree.Rejection) (webhookResponse, error) {
	if s.cfg.Ingest == nil {
		return webhookResponse{}, voluntree.Errorf(voluntree.EUNAVAILABLE, "ingest is not available on this node")
	}
	if s.cfg.Overloaded != nil && s.cfg.Overloaded() {
		s.reject("overloaded")
		return webhookResponse{}, voluntree.Errorf(voluntree.EOVERLOADED, "the ingest backlog is full; retry later")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := s.cfg.Ingest.Enqueue(ctx, msgs)
	if err != nil {
		s.reject("unavailable")
		s.cfg.Logger.Error("enqueue failed", "action", "enqueue", "messages", len(msgs), "error", err)
		return webhookResponse{}, voluntree.Errorf(voluntree.EUNAVAILABLE, "could not store the events; retry later")
	}
	var out webhookResponse
	for i, r := range res {
		switch {
		case r.Err != nil:
			// What made it unencodable is most likely a time: the rest is kept as it came.
			m := msgs[i]
			m.CreatedAt, m.ReceivedAt = time.Time{}, time.Time{}
			b, _ := json.Marshal(m)
			rejected = append(rejected, voluntree.Rejection{Reason: "unencodable_event", Error: voluntree.ErrorMessage(r.Err),
				Source: msgs[i].Source, Raw: string(b)})
		case r.ID == "":
			out.Duplicates++
			s.cfg.Metrics.WebhookDuplicates.Inc()
		default:
			out.Accepted++
			s.cfg.Metrics.WebhookEvents.WithLabelValues(string(msgs[i].Kind)).Inc()
		}
	}
	out.Rejected = len(rejected)
	for _, r := range rejected {
		s.reject(r.Reason)
		s.cfg.Logger.Warn("webhook event rejected", "action", "reject", "reason", r.Reason, "error", r.Error)
	}
	// The accepted events are stored: a failure to keep the rejected ones for operators is
	// logged, and does not make Facebook send the whole call again.
	if err := s.cfg.Ingest.Reject(ctx, rejected); err != nil {
		s.cfg.Logger.Error("keep rejected events", "action", "reject", "events", len(rejected), "error", err)
	}
	return out, nil
}

func (s *Server) reject(reason string) { s.cfg.Metrics.WebhookRejected.WithLabelValues(reason).Inc() }
