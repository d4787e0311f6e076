package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
)

// Pages and connecting them: POST /api/v1/pages/connect starts a Facebook Login (the
// organization's email must be verified) and answers the dialog URL; Facebook sends the
// browser back to GET /api/v1/facebook/callback, which checks the state (known, unused,
// unexpired, started in this browser), exchanges the code for a long-lived user token, reads
// the pages the admin granted (/me/accounts), subscribes the app to each page's webhooks and
// stores the page with its token. The callback ends on the dashboard with the outcome in
// the query (?facebook=connected&pages=N or ?facebook=error&message=…).

// Page connection settings.
const (
	LoginStateTTL = 10 * time.Minute
	// CallbackTimeout bounds a callback: three Graph calls, then a subscription per page.
	CallbackTimeout  = 2 * time.Minute
	loginCookie      = "vt_fblogin"
	CallbackPath     = "/api/v1/facebook/callback"
	maxStateLength   = 64
	maxMessageLength = 300
)

// FacebookLogin is the part of the Graph API client that connects pages (*facebook.Graph).
type FacebookLogin interface {
	LoginDialogURL(redirectURI, state string, scopes []string) string
	ExchangeCode(ctx context.Context, code, redirectURI string) (facebook.UserToken, error)
	LongLivedToken(ctx context.Context, userToken string) (facebook.UserToken, error)
	Accounts(ctx context.Context, userToken string) ([]facebook.PageAccount, error)
	SubscribeApp(ctx context.Context, pageID, pageToken string, fields []string) error
}

// pageView is a page as the API shows it: never its access token.
type pageView struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	TokenExpiresAt   time.Time `json:"token_expires_at,omitzero"`
	SubscribedFields []string  `json:"subscribed_fields,omitempty"`
	ConnectedAt      time.Time `json:"connected_at"`
	// Status is "connected", "expiring" (its token expires within a week), "expired" or
	// "disconnected" (Graph refused its token: messages wait until it is connected again;
	// Error says why).
	Status         string     `json:"status"`
	DisconnectedAt *time.Time `json:"disconnected_at,omitempty"`
	Error          string     `json:"error,omitempty"`
}

// pageStatus is a page's connection state at now.
func pageStatus(p voluntree.Page, now time.Time) string {
	switch {
	case p.DisconnectedAt != nil:
		return "disconnected"
	case !p.TokenExpiresAt.IsZero() && !p.TokenExpiresAt.After(now):
		return "expired"
	case !p.TokenExpiresAt.IsZero() && p.TokenExpiresAt.Before(now.Add(7*24*time.Hour)):
		return "expiring"
	}
	return "connected"
}

func (s *Server) listPages(c *fiber.Ctx) error {
	limit, offset, err := pagination(c)
	if err != nil {
		return err
	}
	pg, err := s.cfg.Store.Pages(c.UserContext(), principal(c).OrgID, offset, limit)
	if err != nil {
		return err
	}
	items := make([]pageView, len(pg.Items))
	for i, p := range pg.Items {
		items[i] = pageView{ID: p.ID, Name: p.Name, TokenExpiresAt: p.TokenExpiresAt, SubscribedFields: p.SubscribedFields,
			ConnectedAt: p.ConnectedAt, Status: pageStatus(p, s.now()), DisconnectedAt: p.DisconnectedAt, Error: p.Error}
	}
	return c.JSON(listOf(items, pg.Total, limit, offset))
}

func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("httpapi: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func hashNonce(nonce string) string {
	sum := sha256.Sum256([]byte(nonce))
	return hex.EncodeToString(sum[:])
}

func (s *Server) callbackURL() string { return strings.TrimSuffix(s.cfg.PublicURL, "/") + CallbackPath }

// loginCookie is the cookie binding a login to the browser that started it, scoped to the
// callback's path under the public URL (which may have a path prefix behind a proxy).
func (s *Server) loginCookie(value string, maxAge int) *fiber.Cookie {
	path := CallbackPath
	if u, err := url.Parse(s.callbackURL()); err == nil && u.Path != "" {
		path = u.Path
	}
	ck := &fiber.Cookie{Name: loginCookie, Value: value, Path: path, MaxAge: maxAge, HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode, Secure: strings.HasPrefix(s.cfg.PublicURL, "https://")}
	if maxAge < 0 {
		ck.Expires = time.Unix(1, 0)
	}
	return ck
}

// connectPage starts a Facebook Login for the request's organization: 200 {"url",
// "expires_at"} and a cookie binding the login to this browser.
func (s *Server) connectPage(c *fiber.Ctx) error {
	if s.cfg.Facebook == nil {
		return voluntree.Errorf(voluntree.EUNAVAILABLE, "Facebook Login is not configured on this server (VOLUNTREE_FB_APP_ID, VOLUNTREE_FB_APP_SECRET)")
	}
	ctx, orgID, now := c.UserContext(), principal(c).OrgID, s.now()
	org, err := s.cfg.Store.Org(ctx, orgID)
	if err != nil {
		return err
	}
	if org.EmailVerifiedAt == nil {
		return voluntree.Errorf(voluntree.ECONFLICT, "verify the organization's email before connecting a page (POST /api/v1/me/email)")
	}
	state, err := randomToken()
	if err != nil {
		return err
	}
	nonce, err := randomToken()
	if err != nil {
		return err
	}
	ls := voluntree.LoginState{OrgID: orgID, NonceHash: hashNonce(nonce), RedirectURI: s.callbackURL(), CreatedAt: now, ExpiresAt: now.Add(LoginStateTTL)}
	if err := s.cfg.Store.SaveLoginState(ctx, state, ls, LoginStateTTL); err != nil {
		return err
	}
	c.Cookie(s.loginCookie(nonce, int(LoginStateTTL/time.Second)))
	s.cfg.Logger.Info("facebook login started", "action", "page_connect", "org", orgID)
	return c.JSON(fiber.Map{
		"url":        s.cfg.Facebook.LoginDialogURL(ls.RedirectURI, state, facebook.DefaultLoginScopes()),
		"expires_at": ls.ExpiresAt,
	})
}

// connectResult is how a callback ended, shown by the dashboard.
type connectResult struct {
	connected []string // page names
	failed    []string // "name: reason"
	err       string   // the whole login failed
}

// facebookCallback finishes a Facebook Login and sends the browser to the dashboard with
// the outcome. It is not behind requireAdmin: the state (and the cookie of the browser that
// started the login) says which organization it is for.
func (s *Server) facebookCallback(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), max(s.cfg.RequestTimeout, CallbackTimeout))
	defer cancel()
	res := s.finishLogin(ctx, c, c.Cookies(loginCookie))
	q := url.Values{}
	if res.err == "" && len(res.connected) == 0 {
		res.err = "No page was connected: " + strings.Join(res.failed, "; ") + "."
	}
	switch {
	case res.err != "":
		q.Set("facebook", "error")
		q.Set("message", truncate(res.err, maxMessageLength))
	default:
		q.Set("facebook", "connected")
		q.Set("pages", strconv.Itoa(len(res.connected)))
		msg := "Connected " + strings.Join(res.connected, ", ") + "." // at least one: none is an error above
		if len(res.failed) > 0 {
			msg += " Not connected: " + strings.Join(res.failed, "; ") + "."
		}
		q.Set("message", truncate(msg, maxMessageLength))
	}
	return c.Redirect(strings.TrimSuffix(s.cfg.PublicURL, "/")+"/?"+q.Encode(), fiber.StatusSeeOther)
}

func (s *Server) finishLogin(ctx context.Context, c *fiber.Ctx, nonce string) connectResult {
	state := c.Query("state")
	if state == "" || len(state) > maxStateLength || strings.Trim(state, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		return connectResult{err: "This Facebook login has no valid state: start again from Voluntree."}
	}
	// The state is read first and taken (once) only by the browser that started the login:
	// a stray hit on the callback (another browser, a link preview) does not end it.
	ls, err := s.cfg.Store.LoginState(ctx, state)
	if err == nil && (nonce == "" || subtle.ConstantTimeCompare([]byte(hashNonce(nonce)), []byte(ls.NonceHash)) != 1) {
		s.cfg.Logger.Warn("facebook callback from another browser", "action", "page_connect", "org", ls.OrgID)
		return connectResult{err: "This Facebook login was started in another browser (or at another address than this one): start again here."}
	}
	if err == nil {
		ls, err = s.cfg.Store.TakeLoginState(ctx, state)
	}
	switch {
	case voluntree.ErrorCode(err) == voluntree.ENOTFOUND || err == nil && !s.now().Before(ls.ExpiresAt):
		return connectResult{err: "This Facebook login is unknown, used or expired: start again from Voluntree."}
	case err != nil:
		s.cfg.Logger.Error("facebook login state", "action", "page_connect", "error", err)
		return connectResult{err: "Voluntree could not read this login: try again."}
	}
	c.Cookie(s.loginCookie("", -1)) // the login is used up
	log := s.cfg.Logger.With("action", "page_connect", "org", ls.OrgID)
	if e := c.Query("error"); e != "" {
		desc := c.Query("error_description", e)
		log.Info("facebook login canceled", "error", e, "reason", c.Query("error_reason"))
		return connectResult{err: "Facebook login canceled: " + truncate(desc, 100) + "."}
	}
	code := c.Query("code")
	if code == "" {
		return connectResult{err: "Facebook sent no code: start again from Voluntree."}
	}
	if s.cfg.Facebook == nil {
		return connectResult{err: "Facebook Login is not configured on this server."}
	}
	org, err := s.cfg.Store.Org(ctx, ls.OrgID)
	switch {
	case err != nil && voluntree.ErrorCode(err) != voluntree.ENOTFOUND:
		log.Error("read organization", "error", err)
		return connectResult{err: "Voluntree could not read the organization: try again."}
	case err != nil || org.EmailVerifiedAt == nil:
		return connectResult{err: "Verify the organization's email before connecting a page."}
	}
	short, err := s.cfg.Facebook.ExchangeCode(ctx, code, ls.RedirectURI)
	if err != nil {
		return connectResult{err: graphFailure(log, "exchange the code", err)}
	}
	// Page tokens read with a long-lived user token do not expire.
	long, err := s.cfg.Facebook.LongLivedToken(ctx, short.AccessToken)
	if err != nil {
		return connectResult{err: graphFailure(log, "get a long-lived token", err)}
	}
	accounts, err := s.cfg.Facebook.Accounts(ctx, long.AccessToken)
	if err != nil {
		return connectResult{err: graphFailure(log, "list the pages", err)}
	}
	if len(accounts) == 0 {
		return connectResult{err: "Facebook shared no page: choose at least one page in the Facebook dialog."}
	}
	var res connectResult
	for _, a := range accounts {
		if why := s.connectAccount(ctx, log, ls.OrgID, a); why != "" {
			res.failed = append(res.failed, a.Name+": "+why)
			continue
		}
		res.connected = append(res.connected, a.Name)
	}
	log.Info("facebook login finished", "connected", len(res.connected), "failed", len(res.failed))
	return res
}

// connectAccount subscribes the app to one page's webhooks and stores the page; it returns
// why not, or "".
func (s *Server) connectAccount(ctx context.Context, log *slog.Logger, orgID string, a facebook.PageAccount) string {
	if a.ID == "" || a.AccessToken == "" {
		return "Facebook gave no token for this page"
	}
	if len(a.Tasks) > 0 && !slices.Contains(a.Tasks, "MANAGE") &&
		(!slices.Contains(a.Tasks, "CREATE_CONTENT") || !slices.Contains(a.Tasks, "MODERATE")) {
		return "you need to be allowed to create content and moderate on this page"
	}
	old, err := s.cfg.Store.Page(ctx, a.ID)
	switch {
	case err == nil && old.OrgID != orgID:
		return "it is connected to another organization"
	case err != nil && voluntree.ErrorCode(err) != voluntree.ENOTFOUND:
		log.Warn("read page", "page", a.ID, "error", err)
		return "Voluntree could not read it, try again"
	}
	fields := facebook.DefaultSubscribedFields()
	if err := s.cfg.Facebook.SubscribeApp(ctx, a.ID, a.AccessToken, fields); err != nil {
		log.Warn("subscribe app", "page", a.ID, "error", err)
		return "Facebook refused the webhook subscription (" + graphMessage(err) + ")"
	}
	pg := voluntree.Page{ID: a.ID, OrgID: orgID, Name: a.Name, AccessToken: a.AccessToken, SubscribedFields: fields, ConnectedAt: s.now()}
	if err := s.cfg.Store.SavePage(ctx, pg); err != nil {
		log.Warn("save page", "page", a.ID, "error", err)
		if voluntree.ErrorCode(err) == voluntree.ECONFLICT {
			return "it is connected to another organization"
		}
		return "Voluntree could not store it, try again"
	}
	return ""
}

// graphFailure logs a failed login step and words it for the admin.
func graphFailure(log *slog.Logger, step string, err error) string {
	log.Warn("facebook login failed", "step", step, "error", err)
	if facebook.IsRetryable(err) {
		return "Facebook did not answer (" + step + "): try again in a minute."
	}
	return "Facebook refused to " + step + ": " + graphMessage(err)
}

func graphMessage(err error) string {
	var ge *facebook.GraphError
	if errors.As(err, &ge) && ge.Message != "" {
		return truncate(ge.Message, 150)
	}
	return "unexpected answer"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
