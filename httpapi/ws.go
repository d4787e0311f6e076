package httpapi

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/actors"
)

// WebSocket timing.
const (
	wsPingEvery    = 30 * time.Second
	wsPongWait     = 75 * time.Second // a client silent this long (no pong) is gone
	wsWriteTimeout = 10 * time.Second
)

// wsUpgrade checks GET /ws/signups before the upgrade, so that a bad request gets a JSON
// error rather than a socket that closes at once. A feed belongs to one organization: the
// request must carry a ticket (POST /api/v1/ws-tickets), which is used up here.
func (s *Server) wsUpgrade(c *fiber.Ctx) error {
	if s.cfg.Events == nil || s.cfg.Store == nil {
		return voluntree.Errorf(voluntree.EUNAVAILABLE, "live events are not available on this node")
	}
	ticket := c.Query("ticket")
	if ticket == "" {
		return voluntree.Errorf(voluntree.EUNAUTHORIZED, "a ticket is required: POST /api/v1/ws-tickets with your admin API token, then connect to /ws/signups?ticket=<ticket>")
	}
	if !websocket.IsWebSocketUpgrade(c) {
		return fiber.NewError(fiber.StatusUpgradeRequired, "GET /ws/signups is a WebSocket endpoint")
	}
	opts, err := parseFeedQuery(c.Query("post"), c.Query("since"), c.Query("tail"), c.Query("intent"))
	if err != nil {
		return err
	}
	if s.cfg.Events.Full() {
		e := voluntree.Errorf(voluntree.EOVERLOADED, "this node has as many live feeds open as it takes; retry later")
		e.RetryAfter = 5 * time.Second
		return e
	}
	// The ticket is checked last, so that a malformed request does not use it up.
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	t, err := s.cfg.Store.TakeWSTicket(ctx, ticket)
	if err != nil {
		return err
	}
	opts.Org = t.OrgID
	c.Locals("opts", opts)
	return c.Next()
}

// parseFeedQuery reads the feed's query parameters: post, since, tail and intent (a comma-
// separated list of intents, or "all"; none: interests only).
func parseFeedQuery(post, since, tail, intent string) (actors.SubscribeOptions, error) {
	opts := actors.SubscribeOptions{PostID: post, Since: since}
	if intent == "all" {
		opts.Intents = voluntree.Intents()
	} else if intent != "" {
		for _, name := range strings.Split(intent, ",") {
			in, err := voluntree.ParseIntent(strings.TrimSpace(name))
			if err != nil {
				return opts, voluntree.Errorf(voluntree.EINVALID, "intent: %.40q is not one of %s, or all", name, joinIntents())
			}
			if !slices.Contains(opts.Intents, in) {
				opts.Intents = append(opts.Intents, in)
			}
		}
	}
	if tail != "" {
		n, err := strconv.Atoi(tail)
		if err != nil || n < 0 || n > actors.MaxTail {
			return opts, voluntree.Errorf(voluntree.EINVALID, "tail must be a number between 0 and %d", actors.MaxTail)
		}
		opts.Tail = n
	}
	check := opts
	check.Org = "-" // checked by the ticket
	if err := actors.ValidateSubscribe(check); err != nil {
		return opts, err
	}
	return opts, nil
}

// TicketTTL is how long a live-feed ticket is valid.
const TicketTTL = 60 * time.Second

type ticketResponse struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"` // seconds
}

// createTicket handles POST /api/v1/ws-tickets: a single-use ticket for the organization's
// live feed, valid TicketTTL, to pass as /ws/signups?ticket=….
func (s *Server) createTicket(c *fiber.Ctx) error {
	p := principal(c)
	ticket, _, err := s.cfg.Store.CreateWSTicket(c.UserContext(), p.OrgID, TicketTTL)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(ticketResponse{Ticket: ticket, ExpiresIn: int(TicketTTL / time.Second)})
}

// wsSignups runs one socket: this goroutine is its only writer (events, pings, the close
// frame); a reader goroutine only watches for the client leaving and for pongs.
func (s *Server) wsSignups(conn *websocket.Conn) {
	sub, err := s.cfg.Events.Subscribe(context.Background(), conn.Locals("opts").(actors.SubscribeOptions))
	if err != nil {
		msg := websocket.FormatCloseMessage(websocket.CloseTryAgainLater, voluntree.ErrorMessage(err))
		_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		return
	}
	defer sub.Close()
	gone := make(chan struct{})
	conn.SetReadLimit(4096)
	_ = conn.SetReadDeadline(time.Now().Add(wsPongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(wsPongWait)) })
	go func() {
		defer close(gone)
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	// The reader must not outlive the handler: once it returns, fasthttp recycles the
	// connection's buffers. Wake it with a past deadline and wait for it.
	defer func() {
		_ = conn.NetConn().SetReadDeadline(time.Now())
		<-gone
	}()
	ping := time.NewTicker(wsPingEvery)
	defer ping.Stop()
	for {
		select {
		case frame := <-sub.Frames():
			_ = conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
			if err := conn.WriteMessage(websocket.TextMessage, frame); err != nil {
				select {
				case <-sub.Done(): // dropped meanwhile (as slow: counted there), or shutting down
				default:
					s.cfg.Metrics.WSDropped.WithLabelValues("error").Inc()
				}
				return
			}
			s.cfg.Metrics.WSEventsSent.Inc()
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteTimeout)); err != nil {
				return
			}
		case <-sub.Done():
			code, text := websocket.CloseGoingAway, "server shutting down"
			if sub.Reason() == actors.DropSlow {
				code, text = websocket.ClosePolicyViolation, "too slow: send buffer full; reconnect with since"
			}
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
			return
		case <-gone:
			return
		}
	}
}

// joinIntents lists the intents for an error message.
func joinIntents() string {
	names := make([]string, 0, 6)
	for _, in := range voluntree.Intents() {
		names = append(names, string(in))
	}
	return strings.Join(names, ", ")
}
