package httpapi

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/actors"
	"github.com/voluntree/voluntree/metrics"
)

//go:embed static
var static embed.FS

// Defaults of Config.
const (
	// The largest request body of any route (the webhook's, classify's, the admin API's): a
	// longer Content-Length is refused with 413 before the body is read.
	DefaultBodyLimit      = 1 << 20
	DefaultRequestTimeout = 30 * time.Second
	// POST /api/v1/classify is public: each client (IP address) may classify this many texts a
	// second, and save up to the burst (two full requests).
	DefaultClassifyRate  = 50
	DefaultClassifyBurst = 2 * voluntree.MaxClassifyTexts
	classifyClients      = 100_000 // buckets kept at most
	maxHeaderBytes       = 8 << 10
	// DefaultMaxInflightWebhooks: a webhook call is in flight for about one Redis round trip
	// (a few ms; tens to hundreds under a burst), so this takes well over 10,000 calls a
	// second into the stream; it trips when Redis stalls, before goroutines pile up.
	DefaultMaxInflightWebhooks = 1024
	DefaultMaxConns            = 8192
)

// HealthCheck reports whether one dependency works; /healthz runs them all.
type HealthCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Store is what the API needs of the store: the admin records, accounts and web chat
// (voluntree.AdminStore), and the node's one subscription to the web chat channels.
type Store interface {
	voluntree.AdminStore
	chatFeed
}

// Config wires the API to the rest of the node.
type Config struct {
	Classifier     voluntree.Classifier
	Metrics        *metrics.Metrics
	Gatherer       prometheus.Gatherer // what /metrics exposes
	Health         []HealthCheck
	Logger         *slog.Logger
	BodyLimit      int
	RequestTimeout time.Duration

	// ClassifyRate is the texts a second each client may classify (a token bucket of
	// ClassifyBurst texts; past it, 429 with Retry-After). 0 is DefaultClassifyRate; negative
	// turns the limit off.
	ClassifyRate float64
	// ChatSessionRate: web chat sessions each client may start a second (a burst of 10);
	// 0 is the default (0.2), negative turns the limit off (load tests from one address).
	ChatSessionRate float64
	ClassifyBurst   int
	// TrustedProxies are the addresses (IPs or CIDRs) of reverse proxies whose
	// X-Forwarded-For names the client (the rate limit's key); empty: the peer address is.
	// Entries that are neither are ignored (serve checks them first).
	TrustedProxies []string
	// MetricsToken, when set, is the Bearer token GET /metrics requires (Prometheus's
	// bearer_token); empty: /metrics is open.
	MetricsToken string
	// MaxInflightWebhooks bounds the webhook calls handled at once: past it, a call is answered
	// 503 with Retry-After at once (Facebook retries it), so that a burst waits in Facebook's
	// retries and the Redis stream rather than in this node's memory. 0 is
	// DefaultMaxInflightWebhooks; negative: no bound.
	MaxInflightWebhooks int
	// MaxConns bounds the open connections (0: DefaultMaxConns).
	MaxConns int

	// The live pipeline. Ingest is required for the webhook and the demo channel; Events
	// for /ws/signups.
	Ingest      Ingester
	Events      *actors.EventHub
	AppSecret   []byte      // VOLUNTREE_FB_APP_SECRET: webhook signatures
	VerifyToken string      // VOLUNTREE_FB_VERIFY_TOKEN: webhook subscription handshake
	Overloaded  func() bool // true when the ingest backlog is too long to accept more
	Demo        *Demo       // nil: no demo channel

	// Admin data: organizations, pages, signups, posts. nil: the admin API (/api/v1/me,
	// signups, posts, pages, interests, stats) is not registered.
	Store Store
	// SlotChanges turns a signup's update into the effect batches that tell its booked
	// volunteers (cluster.SlotChangeEffects); nil: nobody is told.
	SlotChanges func(old, updated *voluntree.Signup) ([][]byte, error)
	// Conversations lets admins answer a conversation and hand it back to the bot (nil: the
	// conversation routes answer 503).
	Conversations Conversations
	Now           func() time.Time // the clock of records and schedules; nil is time.Now

	// Connecting a page. Mail queues the email verification codes (nil: those routes answer
	// 503); Outbox, set on the embedded default, adds GET /api/v1/outbox; Facebook runs the
	// login (nil: POST /api/v1/pages/connect answers 503); PublicURL is where browsers reach
	// this server (the login callback is PublicURL + CallbackPath).
	Mail      Mailer
	Outbox    Outbox
	Facebook  FacebookLogin
	PublicURL string

	// Signed-in browsers' sessions end after SessionIdle without use (0: DefaultSessionIdle)
	// and SessionMax in all (0: DefaultSessionMax).
	SessionIdle, SessionMax time.Duration
	// GitHub and FacebookSignIn sign people in (nil: their /auth/… routes answer 503).
	GitHub         GitHubSignIn
	FacebookSignIn FacebookSignIn

	// Models is the model registry (nil: its routes answer 503); OperatorOrg is the
	// organization whose owners manage it ("": nobody does through the API).
	Models      ModelRegistry
	OperatorOrg string
	// ModelVersion tells /healthz which model version this node serves (nil: not shown).
	ModelVersion func() string
}

func (c *Config) setDefaults() {
	if c.BodyLimit == 0 {
		c.BodyLimit = DefaultBodyLimit
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://localhost:8080"
	}
	if c.SessionIdle == 0 {
		c.SessionIdle = DefaultSessionIdle
	}
	if c.SessionMax == 0 {
		c.SessionMax = DefaultSessionMax
	}
	if c.ClassifyRate == 0 {
		c.ClassifyRate = DefaultClassifyRate
	}
	if c.ClassifyBurst == 0 {
		c.ClassifyBurst = DefaultClassifyBurst
	}
	if c.MaxInflightWebhooks == 0 {
		c.MaxInflightWebhooks = DefaultMaxInflightWebhooks
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
}

// Server is the node's HTTP front: REST API, metrics, health and the dashboard.
type Server struct {
	app           *fiber.App
	cfg           Config
	classifyLimit *limiter      // nil: no limit
	proxies       []*net.IPNet  // trusted reverse proxies (the client's address: clientKey)
	webhooks      chan struct{} // a slot per webhook call in flight; nil: no bound
	chats         *chatHub      // web chat sockets of this node (nil without a Store)
	chatStarts    *limiter      // web chat sessions started, per client
	chatSends     *limiter      // web chat messages, per session (whatever its sockets)
	adminList     []AdminRoute  // the admin API's routes (AdminRoutes)
}

// New builds the Fiber app and its routes.
func New(cfg Config) *Server {
	cfg.setDefaults()
	cfg.Logger = cfg.Logger.With("component", "httpapi")
	s := &Server{cfg: cfg}
	base := errorHandler(cfg.Logger)
	fc := fiber.Config{
		AppName:   "voluntree",
		BodyLimit: cfg.BodyLimit,
		// Request line and headers up to 8 KiB (fasthttp's default is 4 KiB), as nginx allows: a
		// long URL gets its 4xx instead of a reset connection. Larger ones are answered 431.
		ReadBufferSize: maxHeaderBytes,
		Concurrency:    cfg.MaxConns,
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			// A body over the limit is refused by the server before any handler runs.
			if errors.Is(err, fiber.ErrRequestEntityTooLarge) && c.Path() == "/webhooks/facebook" {
				s.reject("too_large")
			}
			return base(c, err)
		},
		DisableStartupMessage: true,
		ReadTimeout:           cfg.RequestTimeout,
		WriteTimeout:          cfg.RequestTimeout,
		IdleTimeout:           2 * time.Minute,
	}
	app := fiber.New(fc)
	s.app = app
	if cfg.ClassifyRate > 0 {
		s.classifyLimit = newLimiter(cfg.ClassifyRate, cfg.ClassifyBurst, classifyClients)
	}
	s.proxies = parseNets(cfg.TrustedProxies)
	if cfg.MaxInflightWebhooks > 0 {
		s.webhooks = make(chan struct{}, cfg.MaxInflightWebhooks)
	}
	app.Use(s.observe)
	app.Get("/healthz", s.healthz)
	app.Get("/metrics", s.requireMetricsToken, adaptor.HTTPHandler(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})))
	app.Get("/webhooks/facebook", s.webhookVerify)
	app.Post("/webhooks/facebook", s.webhookReceive)
	app.Get("/ws/signups", s.wsUpgrade, websocket.New(s.wsSignups, websocket.Config{
		RecoverHandler: func(conn *websocket.Conn) {
			if r := recover(); r != nil {
				cfg.Logger.Error("websocket handler panic", "action", "ws", "panic", r)
			}
		},
	}))
	if cfg.Store != nil {
		s.chats = newChatHub(cfg.Store, cfg.Logger)
	}
	switch {
	case cfg.ChatSessionRate == 0:
		s.chatStarts = newLimiter(chatStartRate, chatStartBurst, classifyClients)
	case cfg.ChatSessionRate > 0:
		s.chatStarts = newLimiter(cfg.ChatSessionRate, chatStartBurst, classifyClients)
	}
	s.chatSends = newLimiter(chatRate, chatBurst, classifyClients)
	app.Get("/ws/chat", s.wsChatUpgrade, websocket.New(s.wsChat, websocket.Config{
		RecoverHandler: func(conn *websocket.Conn) {
			if r := recover(); r != nil {
				cfg.Logger.Error("websocket handler panic", "action", "chat", "panic", r)
			}
		},
	}))
	app.Get("/chat/:signup", s.chatPage)
	if cfg.Store != nil {
		app.Get("/auth/link", s.loginLinkPage)
		app.Post("/auth/link", s.useLoginLink)
		app.Post("/auth/logout", s.requireAdmin, s.logout)
		app.Get("/auth/github", s.githubStart)
		app.Get(GitHubCallback, s.githubCallback)
		app.Get("/auth/facebook", s.facebookStart)
		app.Get(FacebookSignInCallback, s.facebookSignInCallback)
		app.Get("/api/v1/signin", s.signinOptions)
		app.Get("/invite", s.invitationPage)
		app.Post("/auth/invitation", s.acceptInvitation)
	}
	api := app.Group("/api/v1")
	api.Post("/classify", s.classify)
	api.Post("/chat/sessions", s.createChatSession)
	api.Post("/chat/sessions/refresh", s.refreshChatSession)
	api.Get("/chat/history", s.chatHistory)
	api.Get("/demo", s.demoInfo)
	api.Post("/demo/comments", s.demoComment)
	if cfg.Store != nil {
		s.adminRoutes(api)
	}
	sub, _ := fs.Sub(static, "static")
	app.Use("/", filesystem.New(filesystem.Config{Root: http.FS(sub), Index: "index.html"}))
	app.Use(func(c *fiber.Ctx) error {
		return fiber.NewError(fiber.StatusNotFound, "no route for "+c.Method()+" "+c.Path())
	})
	return s
}

// adminRoutes registers the admin API, every route with the least role it needs (viewers
// read; admins run signups, posts, pages and conversations; owners manage people and tokens).
func (s *Server) adminRoutes(api fiber.Router) {
	const viewer, admin, owner = voluntree.RoleViewer, voluntree.RoleAdmin, voluntree.RoleOwner
	get, post := fiber.MethodGet, fiber.MethodPost
	r := func(method, path string, role voluntree.Role, h fiber.Handler) { s.admin(api, method, path, role, h) }
	r(get, "/me", viewer, s.getMe)
	r(post, "/ws-tickets", viewer, s.createTicket) // watching the live feed is reading
	r(post, "/session/org", viewer, s.switchOrg)

	r(get, "/signups", viewer, s.listSignups)
	r(post, "/signups", admin, s.createSignup)
	r(get, "/signups/:id", viewer, s.getSignup)
	r(fiber.MethodPut, "/signups/:id", admin, s.replaceSignup)
	r(fiber.MethodPatch, "/signups/:id", admin, s.patchSignup)
	r(fiber.MethodDelete, "/signups/:id", admin, s.deleteSignup)
	r(get, "/signups/:id/slots/:slot/interests", viewer, s.slotInterests)
	r(get, "/signups/:id/volunteers", viewer, s.signupVolunteers)
	r(get, "/signups/:id/volunteers.csv", admin, s.exportVolunteers) // viewers read, and cannot export

	r(get, "/posts", viewer, s.listPosts)
	r(post, "/posts", admin, s.createPost)
	r(get, "/posts/:id", viewer, s.getPost)
	r(post, "/posts/:id/publish", admin, s.publishPost)
	r(post, "/posts/:id/cancel", admin, s.cancelPost)
	r(post, "/posts/:id/retry", admin, s.retryPost)
	r(get, "/posts/:id/interests", viewer, s.postInterests)

	r(get, "/pages", viewer, s.listPages)
	r(post, "/pages/connect", admin, s.connectPage)
	api.Get("/facebook/callback", s.facebookCallback) // the login's state says whose it is
	r(get, "/me/email", viewer, s.getEmail)
	r(post, "/me/email", owner, s.sendEmailCode)
	r(post, "/me/email/verify", owner, s.verifyEmail)
	if s.cfg.Outbox != nil {
		r(get, "/outbox", viewer, s.listOutbox)
	}

	r(get, "/conversations/:id", viewer, s.getConversation)
	if s.cfg.Conversations != nil {
		r(post, "/conversations/:id/messages", admin, s.replyConversation)
		r(post, "/conversations/:id/release", admin, s.releaseConversation)
	}
	r(get, "/stats", viewer, s.myStats)
	r(get, "/stats/daily", viewer, s.dailyStats)
	r(get, "/orgs/:org/stats", viewer, s.orgStats)

	r(get, "/models", owner, s.operatorOnly(s.listModels))
	r(post, "/models/uploads", owner, s.operatorOnly(s.createModelUpload))
	r(get, "/models/uploads/:id", owner, s.operatorOnly(s.modelUpload))
	r(fiber.MethodPut, "/models/uploads/:id/chunks/:n", owner, s.operatorOnly(s.putModelUploadChunk))
	r(post, "/models/uploads/:id/complete", owner, s.operatorOnly(s.completeModelUpload))
	r(post, "/models/rollback", owner, s.operatorOnly(s.rollbackModel))
	r(post, "/models/:tag/promote", owner, s.operatorOnly(s.promoteModel))
	r(fiber.MethodDelete, "/models/:tag", owner, s.operatorOnly(s.removeModel))

	r(fiber.MethodPatch, "/org", owner, s.updateOrg)
	r(get, "/members", viewer, s.listMembers)
	r(fiber.MethodPatch, "/members/:user", owner, s.changeMember)
	r(fiber.MethodDelete, "/members/:user", owner, s.removeMember)
	r(get, "/invitations", owner, s.listInvitations)
	r(post, "/invitations", owner, s.createInvitation)
	r(fiber.MethodDelete, "/invitations/:id", owner, s.revokeInvitation)
	r(get, "/tokens", owner, s.listTokens)
	r(post, "/tokens", owner, s.createToken)
	r(fiber.MethodDelete, "/tokens/:id", owner, s.revokeToken)
}

// App returns the Fiber app (tests use App().Test).
func (s *Server) App() *fiber.App { return s.app }

// Serve accepts connections on ln until Shutdown. Connections close lingering (linger.go).
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(lingerListener{ln}) }

// Shutdown stops accepting connections and waits for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.app.ShutdownWithContext(ctx)
	if s.chats != nil {
		s.chats.close()
	}
	return err
}

// observe records request counts and durations by route pattern (not raw path, which would
// let clients create unbounded label values).
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	if err := c.Next(); err != nil {
		if herr := c.App().ErrorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	route := c.Route().Path
	if c.Response().StatusCode() == fiber.StatusNotFound {
		route = "unmatched"
	}
	// Fiber's strings point into fasthttp buffers that are reused after the request: label
	// values outlive it, so they must be copies.
	method := strings.Clone(c.Method())
	s.cfg.Metrics.HTTPRequests.WithLabelValues(strings.Clone(route), method, strconv.Itoa(c.Response().StatusCode())).Inc()
	s.cfg.Metrics.HTTPDuration.WithLabelValues(strings.Clone(route), method).Observe(time.Since(start).Seconds())
	return nil
}

type healthResponse struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
	Model  string            `json:"model,omitempty"` // the model version this node serves
}

// healthz answers every check's state, "ok" or "unavailable": why a check failed (an address,
// a Redis error) is for the logs, not for whoever asks.
func (s *Server) healthz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	resp := healthResponse{Status: "ok", Checks: make(map[string]string)}
	if s.cfg.ModelVersion != nil {
		resp.Model = s.cfg.ModelVersion()
	}
	for _, h := range s.cfg.Health {
		if err := h.Check(ctx); err != nil {
			resp.Status = "unavailable"
			resp.Checks[h.Name] = "unavailable"
			s.cfg.Logger.Warn("health check failed", "action", "healthz", "check", h.Name, "error", err)
			continue
		}
		resp.Checks[h.Name] = "ok"
	}
	if resp.Status != "ok" {
		c.Status(fiber.StatusServiceUnavailable)
	}
	return c.JSON(resp)
}

// requireMetricsToken guards /metrics with MetricsToken, when one is set.
func (s *Server) requireMetricsToken(c *fiber.Ctx) error {
	if s.cfg.MetricsToken == "" {
		return c.Next()
	}
	scheme, token, _ := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
	if !strings.EqualFold(scheme, "Bearer") ||
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.cfg.MetricsToken)) != 1 {
		return voluntree.Errorf(voluntree.EUNAUTHORIZED, "/metrics needs Authorization: Bearer <VOLUNTREE_METRICS_TOKEN>")
	}
	return c.Next()
}
