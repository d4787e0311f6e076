package httpapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
)

// MaxWebhookBody is the largest webhook call accepted (Facebook batches stay far below).
const MaxWebhookBody = 1 << 20

// Ingester appends accepted messages to the ingest stream (redisstore.Store implements it):
// one id per message, "" for a message accepted before (a redelivery).
type Ingester interface {
	Enqueue(ctx context.Context, msgs []voluntree.Message) ([]string, error)
}

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
	Invalid    int `json:"invalid,omitempty"` // events left out (counted as rejected invalid_event)
}

// webhookReceive handles POST /webhooks/facebook: signature over the raw body, then every
// handled event of every entry appended to the ingest stream; 200 only once they are stored.
func (s *Server) webhookReceive(c *fiber.Ctx) error {
	received := time.Now()
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
	msgs, invalid, err := facebook.ParseEvents(body, received)
	if err != nil {
		s.reject("malformed")
		return err
	}
	for _, e := range invalid { // left out, so that the call's other events are not lost
		s.reject("invalid_event")
		s.cfg.Logger.Warn("webhook event skipped", "action", "webhook", "error", e)
	}
	res, err := s.accept(c.UserContext(), msgs)
	if err != nil {
		return err
	}
	res.Invalid = len(invalid)
	return c.JSON(res)
}

// accept appends parsed messages to the ingest stream: the one way in for the webhook and
// the demo channel alike.
func (s *Server) accept(ctx context.Context, msgs []voluntree.Message) (webhookResponse, error) {
	if s.cfg.Ingest == nil {
		return webhookResponse{}, voluntree.Errorf(voluntree.EUNAVAILABLE, "ingest is not available on this node")
	}
	if s.cfg.Overloaded != nil && s.cfg.Overloaded() {
		s.reject("overloaded")
		return webhookResponse{}, voluntree.Errorf(voluntree.EOVERLOADED, "the ingest backlog is full; retry later")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ids, err := s.cfg.Ingest.Enqueue(ctx, msgs)
	if err != nil {
		s.reject("unavailable")
		s.cfg.Logger.Error("enqueue failed", "action", "enqueue", "messages", len(msgs), "error", err)
		return webhookResponse{}, voluntree.Errorf(voluntree.EUNAVAILABLE, "could not store the events; retry later")
	}
	var res webhookResponse
	for i, id := range ids {
		if id == "" {
			res.Duplicates++
			s.cfg.Metrics.WebhookDuplicates.Inc()
			continue
		}
		res.Accepted++
		s.cfg.Metrics.WebhookEvents.WithLabelValues(string(msgs[i].Kind)).Inc()
	}
	return res, nil
}

func (s *Server) reject(reason string) { s.cfg.Metrics.WebhookRejected.WithLabelValues(reason).Inc() }
