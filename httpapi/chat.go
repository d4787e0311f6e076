package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// The web chat channel: a public page (/chat/{signup-id}) where people without Facebook talk
// to the same conversation flow. POST /api/v1/chat/sessions gives a token for an hour (and
// /refresh another), GET /ws/chat?token=&since= opens the conversation: its history after
// since, then live. The person's messages go through the ingest stream like Messenger's
// (classified, then the conversation grain); the grain's answers come back through the effects
// worker into the conversation's history, which this node's chat hub follows.

// Web chat limits.
const (
	chatMaxText     = 2000 // characters of one message
	chatRate        = 1.0  // messages a second per session...
	chatBurst       = 5    // ...after a burst of this many
	chatStartRate   = 0.2  // sessions a client (IP) may start a second...
	chatStartBurst  = 10   // ...after a burst of this many
	chatSendBuffer  = 64   // frames queued per socket before it counts as too slow
	chatCloseBadTok = 1008 // policy violation: a bad or expired token
	chatReplayMax   = int64(redisstore.ChatHistoryMax)
)

type chatSessionRequest struct {
	SignupID string `json:"signup_id"`
	Name     string `json:"name"`
}

type chatSessionResponse struct {
	Token          string `json:"token"`
	ExpiresIn      int    `json:"expires_in"`
	ConversationID string `json:"conversation_id"`
	SignupID       string `json:"signup_id"`
	SignupTitle    string `json:"signup_title,omitempty"`
}

// createChatSession: POST /api/v1/chat/sessions {signup_id, name}.
func (s *Server) createChatSession(c *fiber.Ctx) error {
	if s.cfg.Store == nil || s.cfg.Ingest == nil {
		return voluntree.Errorf(voluntree.EUNAVAILABLE, "web chat is not available on this node")
	}
	req, err := parseChatSession(c.Body())
	if err != nil {
		return err
	}
	// Each session can have codes emailed: sessions are limited per client.
	if s.chatStarts != nil {
		if ok, wait := s.chatStarts.take(s.clientKey(c), 1); !ok {
			e := voluntree.Errorf(voluntree.ERATELIMITED, "too many chat sessions from this address; retry later")
			e.RetryAfter = wait
			return e
		}
	}
	ctx := c.UserContext()
	su, err := s.cfg.Store.Signup(ctx, req.SignupID)
	if err != nil {
		return err // ENOTFOUND: 404
	}
	if su.Disabled {
		return voluntree.Errorf(voluntree.ENOTFOUND, "signup %s is closed", su.ID)
	}
	token, sess, err := s.cfg.Store.CreateChatSession(ctx, voluntree.ChatSession{SignupID: su.ID, OrgID: su.OrgID, Name: req.Name})
	if err != nil {
		return err
	}
	// The conversation starts like any: a message through the pipeline, which greets and asks.
	if err := s.chatMessage(ctx, sess, "start", "", "START"); err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(chatSessionResponse{Token: token, ExpiresIn: int(redisstore.ChatSessionTTL / time.Second),
		ConversationID: sess.ConversationID(), SignupID: su.ID, SignupTitle: su.Title})
}

// parseChatSession decodes and checks a session request (errors are 400s naming the field).
func parseChatSession(body []byte) (chatSessionRequest, error) {
	var req chatSessionRequest
	if err := decodeJSON(body, &req); err != nil {
		return req, err
	}
	req.Name = strings.TrimSpace(req.Name)
	switch {
	case !voluntree.ValidID(req.SignupID):
		return req, voluntree.FieldErrorf("signup_id", "signup_id is required (letters, digits and _.:- only)")
	case req.Name == "" || !utf8.ValidString(req.Name) || utf8.RuneCountInString(req.Name) > voluntree.MaxNameRunes:
		return req, voluntree.FieldErrorf("name", "name is required, at most %d characters", voluntree.MaxNameRunes)
	}
	return req, nil
}

// refreshChatSession: POST /api/v1/chat/sessions/refresh {token}: a new token, another hour.
func (s *Server) refreshChatSession(c *fiber.Ctx) error {
	if s.cfg.Store == nil {
		return voluntree.Errorf(voluntree.EUNAVAILABLE, "web chat is not available on this node")
	}
	var req struct {
		Token string `json:"token"`
	}
	if err := decodeJSON(c.Body(), &req); err != nil {
		return err
	}
	token, sess, err := s.cfg.Store.RefreshChatSession(c.UserContext(), req.Token)
	if err != nil {
		return err
	}
	return c.JSON(chatSessionResponse{Token: token, ExpiresIn: int(redisstore.ChatSessionTTL / time.Second),
		ConversationID: sess.ConversationID(), SignupID: sess.SignupID})
}

// chatHistory: GET /api/v1/chat/history?token=&since= → {"items": [...]}: the conversation's
// messages after since (all, up to 500, without it), for a page's first paint before its
// socket opens.
func (s *Server) chatHistory(c *fiber.Ctx) error {
	if s.cfg.Store == nil {
		return voluntree.Errorf(voluntree.EUNAVAILABLE, "web chat is not available on this node")
	}
	sess, err := s.cfg.Store.ChatSessionOf(c.UserContext(), c.Query("token"))
	if err != nil {
		return err
	}
	since := c.Query("since")
	if !streamIDPattern.MatchString(since) {
		since = ""
	}
	items, err := s.cfg.Store.ChatHistory(c.UserContext(), sess.ConversationID(), since, chatReplayMax)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"items": items})
}

// chatMessage puts a web chat message into the ingest stream (durable once it returns).
func (s *Server) chatMessage(ctx context.Context, sess voluntree.ChatSession, id, text, payload string) error {
	now := time.Now()
	m := voluntree.Message{ID: "wc." + sess.ID + "." + id, Kind: voluntree.KindMessage, Source: voluntree.SourceWebChat,
		PageID: voluntree.WebChatPage, SenderID: sess.ID, SenderName: sess.Name, Text: text, Payload: payload,
		SignupID: sess.SignupID, CreatedAt: now, ReceivedAt: now}
	if err := m.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := s.cfg.Ingest.Enqueue(ctx, []voluntree.Message{m})
	if err != nil {
		return voluntree.Errorf(voluntree.EUNAVAILABLE, "could not take the message; retry")
	}
	if len(res) == 1 && res[0].Err != nil {
		return res[0].Err
	}
	return nil
}

// wsChatUpgrade lets only WebSocket upgrades through to the chat socket.
func (s *Server) wsChatUpgrade(c *fiber.Ctx) error {
	if s.cfg.Store == nil || s.chats == nil {
		return voluntree.Errorf(voluntree.EUNAVAILABLE, "web chat is not available on this node")
	}
	if !websocket.IsWebSocketUpgrade(c) {
		return fiber.NewError(fiber.StatusUpgradeRequired, "GET /ws/chat is a WebSocket endpoint")
	}
	return c.Next()
}

// chatFrame is what a client sends.
type chatFrame struct {
	ID      string `json:"id"` // the client's id of the message: a resend after a reconnect is taken once
	Text    string `json:"text"`
	Payload string `json:"payload"`
}

var (
	chatIDPattern   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	streamIDPattern = regexp.MustCompile(`^\d{1,19}-\d{1,19}$`)
)

// wsChat serves one web chat socket: history after since, then live messages; the person's
// messages go to the pipeline. A bad or expired token closes the socket with 1008.
func (s *Server) wsChat(conn *websocket.Conn) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess, err := s.cfg.Store.ChatSessionOf(ctx, conn.Query("token"))
	if err != nil {
		msg := websocket.FormatCloseMessage(chatCloseBadTok, voluntree.ErrorMessage(err))
		_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		return
	}
	conv := sess.ConversationID()
	sub := s.chats.subscribe(conv)
	defer s.chats.unsubscribe(conv, sub)
	// History first (subscribed before reading it, so nothing falls between the two).
	last := conn.Query("since")
	if !streamIDPattern.MatchString(last) {
		last = "" // not a message id: the whole history
	}
	history, err := s.cfg.Store.ChatHistory(ctx, conv, last, chatReplayMax)
	if err != nil {
		msg := websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "could not read the history; reconnect")
		_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		return
	}
	var wmu sync.Mutex
	write := func(b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		_ = conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
		return conn.WriteMessage(websocket.TextMessage, b)
	}
	for _, m := range history {
		b, _ := json.Marshal(m)
		if write(b) != nil {
			return
		}
		last = m.ID
	}
	gone := make(chan struct{})
	conn.SetReadLimit(16 << 10)
	_ = conn.SetReadDeadline(time.Now().Add(wsPongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(wsPongWait)) })
	go func() {
		defer close(gone)
		s.chatReader(ctx, conn, sess, write)
	}()
	defer func() {
		_ = conn.NetConn().SetReadDeadline(time.Now())
		<-gone
	}()
	ping := time.NewTicker(wsPingEvery)
	defer ping.Stop()
	for {
		select {
		case m, ok := <-sub:
			if !ok {
				return // too slow: dropped
			}
			if m.id != "" && !streamIDAfter(m.id, last) {
				continue // replayed already
			}
			last = m.id
			if write(m.frame) != nil {
				return
			}
		case <-ping.C:
			wmu.Lock()
			err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteTimeout))
			wmu.Unlock()
			if err != nil {
				return
			}
		case <-gone:
			return
		}
	}
}

// chatReader reads the person's frames: each message goes to the pipeline and the history;
// past the session's rate, an error frame.
func (s *Server) chatReader(ctx context.Context, conn *websocket.Conn, sess voluntree.ChatSession, write func([]byte) error) {
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		fail := func(msg string) {
			b, _ := json.Marshal(map[string]string{"error": msg})
			_ = write(b)
		}
		f, msg := parseChatFrame(data)
		if msg != "" {
			fail(msg)
			continue
		}
		if ok, _ := s.chatSends.take(sess.ID, 1); !ok {
			fail("slow down: at most one message a second")
			continue
		}
		id := "c" + f.ID
		if f.ID == "" {
			id = voluntree.NewID("")
		}
		shown := f.Text
		if shown == "" {
			shown = optionTitle(f.Payload)
		}
		// The pipeline first (durable, once per id: the ingest stream's dedupe), then the
		// history, whose echo of the message tells the client it was taken. A client that saw no
		// echo resends after a reconnect: taken once, echoed once.
		if err := s.chatMessage(ctx, sess, id, f.Text, f.Payload); err != nil {
			fail(voluntree.ErrorMessage(err))
			continue
		}
		if _, err := s.cfg.Store.AppendChat(ctx, sess.ConversationID(),
			voluntree.ChatMessage{From: "volunteer", Text: shown, ClientID: f.ID}, "wc."+sess.ID+"."+id); err != nil {
			fail("could not take the message; send it again")
		}
	}
}

// parseChatFrame decodes and checks a client frame; msg says what is wrong ("" when nothing).
func parseChatFrame(data []byte) (f chatFrame, msg string) {
	if json.Unmarshal(data, &f) != nil {
		return f, `frames are JSON: {"text": "..."} or {"payload": "..."}`
	}
	f.Text, f.Payload = strings.TrimSpace(f.Text), strings.TrimSpace(f.Payload)
	switch {
	case f.Text == "" && f.Payload == "":
		return f, "an empty message"
	case !utf8.ValidString(f.Text) || utf8.RuneCountInString(f.Text) > chatMaxText:
		return f, "a message has at most 2000 characters"
	case len(f.Payload) > voluntree.MaxPayloadBytes || !utf8.ValidString(f.Payload):
		return f, "payload too long"
	case f.ID != "" && !chatIDPattern.MatchString(f.ID):
		return f, "id: letters, digits, _ and - only, at most 64"
	}
	return f, ""
}

// optionTitle is what a tapped option shows when the client sent its payload only.
func optionTitle(payload string) string {
	switch {
	case payload == "YES":
		return "Yes"
	case payload == "NO":
		return "No"
	case payload == "CANCEL":
		return "Cancel"
	case payload == "CHANGE":
		return "Change slot"
	case strings.HasPrefix(payload, "SLOT:"):
		return "This slot"
	}
	return payload
}

// streamIDAfter reports whether Redis stream id a comes after b ("" is before everything).
func streamIDAfter(a, b string) bool {
	if b == "" || b == "0" || b == "0-0" {
		return true
	}
	ams, aseq, _ := strings.Cut(a, "-")
	bms, bseq, _ := strings.Cut(b, "-")
	if len(ams) != len(bms) {
		return len(ams) > len(bms)
	}
	if ams != bms {
		return ams > bms
	}
	if len(aseq) != len(bseq) {
		return len(aseq) > len(bseq)
	}
	return aseq > bseq
}

// chatFeed is the Redis Pub/Sub of the web chat channels (redisstore.Store): one subscription
// to them all, and the conversation a channel is of.
type chatFeed interface {
	SubscribeChats(ctx context.Context) *redis.PubSub
	ConversationOfChatChannel(channel string) (string, bool)
}

// chatHub follows every web chat channel with one subscription per node and hands each new
// message to the sockets of its conversation on this node.
type chatHub struct {
	store chatFeed
	log   *slog.Logger

	mu   sync.Mutex
	subs map[string]map[chan chatEvent]struct{}
	stop context.CancelFunc
	done chan struct{}
}

type chatEvent struct {
	id    string
	frame []byte
}

func newChatHub(store chatFeed, log *slog.Logger) *chatHub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &chatHub{store: store, log: log, subs: map[string]map[chan chatEvent]struct{}{}, stop: cancel, done: make(chan struct{})}
	go h.run(ctx)
	return h
}

func (h *chatHub) run(ctx context.Context) {
	defer close(h.done)
	ps := h.store.SubscribeChats(ctx)
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			conv, ok := h.store.ConversationOfChatChannel(msg.Channel)
			if !ok {
				continue
			}
			var head struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal([]byte(msg.Payload), &head)
			h.mu.Lock()
			for sub := range h.subs[conv] {
				select {
				case sub <- chatEvent{id: head.ID, frame: []byte(msg.Payload)}:
				default: // too slow: drop the socket (it reconnects with since)
					delete(h.subs[conv], sub)
					close(sub)
				}
			}
			h.mu.Unlock()
		}
	}
}

func (h *chatHub) subscribe(conv string) chan chatEvent {
	sub := make(chan chatEvent, chatSendBuffer)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[conv] == nil {
		h.subs[conv] = map[chan chatEvent]struct{}{}
	}
	h.subs[conv][sub] = struct{}{}
	return sub
}

func (h *chatHub) unsubscribe(conv string, sub chan chatEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[conv][sub]; ok {
		delete(h.subs[conv], sub)
		close(sub)
	}
	if len(h.subs[conv]) == 0 {
		delete(h.subs, conv)
	}
}

func (h *chatHub) close() {
	h.stop()
	<-h.done
}

// chatPage serves the web chat page of a signup (the page reads the id from its path).
func (s *Server) chatPage(c *fiber.Ctx) error {
	if !voluntree.ValidID(c.Params("signup")) {
		return voluntree.Errorf(voluntree.ENOTFOUND, "no such signup")
	}
	b, err := static.ReadFile("static/chat.html")
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(b)
}
