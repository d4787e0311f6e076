// Package fakegraph is a fake Facebook Graph API for tests: a real HTTP server that checks
// requests the way Graph does (version segment, access tokens, appsecret_proof, required
// parameters) for the endpoints Voluntree uses, records every call, and fails calls on demand.
//
//	fg := fakegraph.New(fakegraph.Config{AppID: "app", AppSecret: "secret"})
//	defer fg.Close()
//	fg.AddPage("p1", "Food bank", "page-token")
//	fg.FailNext("POST /p1/feed", 1, fakegraph.ServerError())
//	g, _ := facebook.NewGraph(facebook.GraphConfig{BaseURL: fg.URL, AppSecret: "secret"})
//	... g.PublishPost(ctx, "p1", "page-token", ...) ...
//	posts := fg.Posts("p1")
//
// Endpoints: the login dialog GET /dialog/oauth (a redirect back, as the user set by
// SetDialogUser or DenyDialog), GET /oauth/access_token (code exchange and fb_exchange_token),
// GET /me, GET /me/accounts, GET|POST /{page}/feed,
// POST /{page}/photos, GET /{post-or-comment}/comments, GET|POST|DELETE
// /{page}/subscribed_apps, all below /{version}/.
package fakegraph

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultVersion     = "v23.0"
	DefaultMaxPageSize = 100
	DefaultAppID       = "fakegraph-app"
	// ShortUserTokenExpiresIn is the expires_in of a user token from the code exchange, in
	// seconds (about 2 hours); UserTokenExpiresIn that of a long-lived one (60 days).
	ShortUserTokenExpiresIn = 5183
	UserTokenExpiresIn      = 5183944
)

// graphTime is how Graph writes times.
const graphTime = "2006-01-02T15:04:05-0700"

// ErrClosed is returned by WaitCalls once the server is closed.
var ErrClosed = errors.New("fakegraph: server closed")

// Config configures a fake.
type Config struct {
	Version   string // the only version served; default DefaultVersion
	AppID     string // checked by the code exchange; default DefaultAppID
	AppSecret string // checked by the code exchange and appsecret_proof when set
	// RequireAppSecretProof refuses calls with a token but no appsecret_proof (Graph's "Require
	// App Secret" setting); needs AppSecret.
	RequireAppSecretProof bool
	// MaxPageSize caps a list's limit parameter (default DefaultMaxPageSize); a small value makes
	// tests page through few items.
	MaxPageSize int
	// WebhookURL receives the echoes of sent messages (message_echoes), signed with
	// WebhookSecret as X-Hub-Signature-256; "" sends none.
	WebhookURL    string
	WebhookSecret string
	// OnSend, when set, is called with each message the Send API accepts, while the fake's
	// lock is held: it must not block (or call the fake).
	OnSend func(Sent)
}

// Post is a published page post.
type Post struct {
	ID          string // "<page>_<n>"
	PageID      string
	Message     string
	Link        string
	PhotoID     string // the first attached photo
	CreatedTime time.Time
}

// Photo is an uploaded photo: bytes (Data, Name) or a URL.
type Photo struct {
	ID        string
	PageID    string
	URL       string
	Name      string
	Data      []byte
	Published bool // published itself, or attached to a post
}

// Comment is a comment on a post; ParentID is set on replies.
type Comment struct {
	ID          string
	Message     string
	FromID      string
	FromName    string
	ParentID    string
	CreatedTime time.Time
}

// Call is one request served.
type Call struct {
	Method string
	Path   string     // without the version: "/p1/feed"
	Form   url.Values // query and body (multipart values too), access_token included
	Status int
	Time   time.Time
}

func (c Call) key() string { return c.Method + " " + c.Path }

// Failure is an injected Graph error.
type Failure struct {
	HTTPStatus int // default 500 for codes 1 and 2, 400 otherwise
	// Deliver performs the call before failing it: the ambiguous failure of a call that took
	// effect (a message sent, then a 500 or a timeout on the way back).
	Deliver bool
	// Hang holds the answer this long (or until Close): with Deliver, a call that took effect
	// and whose caller crashed or timed out before the answer.
	Hang    time.Duration
	Code    int
	Subcode int
	Type    string // default "OAuthException"
	Message string
}

// ServerError is Graph's transient "unexpected error" (HTTP 500, code 2).
func ServerError() Failure {
	return Failure{HTTPStatus: 500, Code: 2, Type: "OAuthException", Message: "An unexpected error has occurred. Please retry your request later."}
}

// Throttled is a rate-limit error (codes 4, 17, 32, 613), answered with HTTP 400 like Graph.
func Throttled(code int) Failure {
	msg := map[int]string{
		4:   "(#4) Application request limit reached",
		17:  "(#17) User request limit reached",
		32:  "(#32) Page request limit reached",
		613: "(#613) Calls to this api have exceeded the rate limit.",
	}[code]
	if msg == "" {
		msg = fmt.Sprintf("(#%d) Request limit reached", code)
	}
	return Failure{HTTPStatus: 400, Code: code, Type: "OAuthException", Message: msg}
}

// Permanent is a client error (HTTP 400) such as code 100 (invalid parameter) or 200
// (permissions).
func Permanent(code int, msg string) Failure {
	return Failure{HTTPStatus: 400, Code: code, Type: "OAuthException", Message: msg}
}

type rule struct {
	match     string
	remaining int       // FailNext: calls left; 0 for FailUntil
	until     time.Time // FailUntil
	failure   Failure
}

type page struct {
	id, name, token string
	subscribed      []string
}

type login struct {
	userToken   string
	redirectURI string // the dialog's redirect_uri the exchange must repeat; "" for AddUser codes
	used        bool
}

// Server is a running fake Graph API. Its methods are safe for concurrent use.
type Server struct {
	URL string // base URL, without version

	cfg    Config
	srv    *httptest.Server
	closed chan struct{}
	once   sync.Once

	mu          sync.Mutex
	changed     chan struct{} // closed and replaced when a call is recorded
	pages       map[string]*page
	tokens      map[string]string // access token -> page id, or "" for a user token
	users       map[string][]string
	profiles    map[string]Profile // user token -> who it is (GET /me)
	codes       map[string]*login
	posts       []Post
	photos      map[string]*Photo
	photoIDs    []string
	comments    map[string][]Comment // by post id, in insertion order
	parentOf    map[string]string    // comment id -> post id
	rules       []*rule
	calls       []Call
	seq         int
	sent        []Sent
	replied     map[string]bool // comments answered with a private reply
	commenters  map[string]string
	outside     map[string]bool
	unavailable map[string]bool
	echoes      sync.WaitGroup
	dialog      string // the user token the login dialog logs in as; "" before SetDialogUser
	deny        bool   // the dialog answers as a user who canceled
}

// New starts a fake Graph API.
func New(cfg Config) *Server {
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.AppID == "" {
		cfg.AppID = DefaultAppID
	}
	if cfg.MaxPageSize <= 0 {
		cfg.MaxPageSize = DefaultMaxPageSize
	}
	s := &Server{
		cfg: cfg, closed: make(chan struct{}), changed: make(chan struct{}),
		pages: map[string]*page{}, tokens: map[string]string{}, users: map[string][]string{},
		codes: map[string]*login{}, photos: map[string]*Photo{}, comments: map[string][]Comment{},
		parentOf: map[string]string{}, replied: map[string]bool{}, commenters: map[string]string{},
		outside: map[string]bool{}, unavailable: map[string]bool{}, profiles: map[string]Profile{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	return s
}

// Close stops the server; pending WaitCalls return ErrClosed.
func (s *Server) Close() {
	s.once.Do(func() { close(s.closed) })
	s.srv.Close()
	s.echoes.Wait()
}

// AddPage adds a page and its page access token.
func (s *Server) AddPage(id, name, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pages[id] = &page{id: id, name: name, token: token}
	s.tokens[token] = id
}

// AddUser adds a login code that exchanges (once) to userToken, a user who manages pageIDs.
func (s *Server) AddUser(code, userToken string, pageIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = &login{userToken: userToken}
	s.tokens[userToken] = ""
	for _, id := range pageIDs {
		if !slices.Contains(s.users[userToken], id) {
			s.users[userToken] = append(s.users[userToken], id)
		}
	}
}

// SetDialogUser makes the login dialog log in as a user with userToken who manages pageIDs
// and approves: each visit redirects to its redirect_uri with a fresh code (valid once, for
// that redirect_uri) and the state.
func (s *Server) SetDialogUser(userToken string, pageIDs ...string) {
	s.AddUser("", userToken, pageIDs...)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.codes, "")
	s.dialog, s.deny = userToken, false
}

// DenyDialog makes the login dialog answer as a user who canceled: a redirect with
// error=access_denied, as Facebook does.
func (s *Server) DenyDialog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = true
}

// AddComment adds a comment on a post (whose id must start with "<page>_" to be readable).
// An empty ID becomes "<post>_<n>", a zero CreatedTime now.
func (s *Server) AddComment(postID string, c Comment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.ID == "" {
		c.ID = postID + "_" + s.next()
	}
	if c.CreatedTime.IsZero() {
		c.CreatedTime = time.Now()
	}
	c.CreatedTime = c.CreatedTime.UTC()
	s.comments[postID] = append(s.comments[postID], c)
	s.parentOf[c.ID] = postID
}

// Posts returns the page's posts, oldest first.
func (s *Server) Posts(pageID string) []Post {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Post
	for _, p := range s.posts {
		if p.PageID == pageID {
			out = append(out, p)
		}
	}
	return out
}

// Photos returns the photos uploaded to the page, oldest first.
func (s *Server) Photos(pageID string) []Photo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Photo
	for _, id := range s.photoIDs {
		if p := s.photos[id]; p.PageID == pageID {
			cp := *p
			cp.Data = slices.Clone(p.Data)
			out = append(out, cp)
		}
	}
	return out
}

// Calls returns every request served so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		c.Form = cloneValues(c.Form)
		out[i] = c
	}
	return out
}

// CountCalls returns how many calls whose "METHOD /path" contains match were served.
func (s *Server) CountCalls(match string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.countLocked(match)
}

func (s *Server) countLocked(match string) int {
	n := 0
	for _, c := range s.calls {
		if strings.Contains(c.key(), match) {
			n++
		}
	}
	return n
}

// Subscriptions returns the fields the app is subscribed to on the page.
func (s *Server) Subscriptions(pageID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pages[pageID]; p != nil {
		return slices.Clone(p.subscribed)
	}
	return nil
}

// FailNext makes the next n calls whose "METHOD /path" (path without version) contains match
// fail with e. Rules apply in the order they were added.
func (s *Server) FailNext(match string, n int, e Failure) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = append(s.rules, &rule{match: match, remaining: n, failure: e})
}

// FailUntil makes every matching call fail with e until the given time (an outage).
func (s *Server) FailUntil(match string, until time.Time, e Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = append(s.rules, &rule{match: match, until: until, failure: e})
}

// Clear drops every failure rule.
func (s *Server) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = nil
}

// WaitCalls blocks until n calls whose "METHOD /path" contains match were served (their
// answer is decided and they are in Calls), ctx ends, or the server is closed.
func (s *Server) WaitCalls(ctx context.Context, match string, n int) error {
	for {
		s.mu.Lock()
		got, changed := s.countLocked(match), s.changed
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("fakegraph: waiting for %d calls matching %q, saw %d: %w", n, match, got, ctx.Err())
		case <-s.closed:
			return ErrClosed
		}
	}
}

func (s *Server) next() string {
	s.seq++
	return strconv.Itoa(s.seq)
}

// apiError is a Graph error answer.
type apiError struct {
	status, code, subcode int
	typ, msg              string
}

func badRequest(code int, msg string) *apiError {
	return &apiError{status: 400, code: code, typ: "OAuthException", msg: msg}
}

func unsupported(method, id string) *apiError {
	e := badRequest(100, fmt.Sprintf("Unsupported %s request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation.", strings.ToLower(method), id))
	e.typ, e.subcode = "GraphMethodException", 33
	return e
}

func fromFailure(f Failure) *apiError {
	e := &apiError{status: f.HTTPStatus, code: f.Code, subcode: f.Subcode, typ: f.Type, msg: f.Message}
	if e.status == 0 {
		e.status = 400
		if f.Code == 1 || f.Code == 2 {
			e.status = 500
		}
	}
	if e.typ == "" {
		e.typ = "OAuthException"
	}
	return e
}

// request is a parsed request.
type request struct {
	hang   time.Duration // an injected Failure's Hang
	method string
	path   string   // without version
	parts  []string // path segments after the version
	form   url.Values
	file   *Photo // multipart "source"
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rq, perr := parseRequest(r, s.cfg.Version)
	s.mu.Lock()
	var status int
	var body []byte
	if rq.path == "/dialog/oauth" && perr == nil {
		status, body = s.loginDialog(w, rq)
	} else {
		status, body = s.handle(rq, perr)
	}
	s.calls = append(s.calls, Call{Method: rq.method, Path: rq.path, Form: rq.form, Status: status, Time: time.Now()})
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if rq.hang > 0 {
		select {
		case <-time.After(rq.hang):
		case <-s.closed:
		case <-r.Context().Done():
		}
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	}
	w.WriteHeader(status)
	w.Write(body)
}

// loginDialog answers the Facebook Login dialog for the user of SetDialogUser: a 302 to the
// redirect_uri with code and state (or Facebook's error parameters when denied), or a 400
// page for a request Facebook would refuse. s.mu is held.
func (s *Server) loginDialog(w http.ResponseWriter, rq *request) (int, []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	redirect, err := url.Parse(rq.form.Get("redirect_uri"))
	switch {
	case rq.method != http.MethodGet:
		return 405, []byte("method not allowed")
	case rq.form.Get("client_id") != s.cfg.AppID:
		return 400, []byte("Invalid App ID: the provided app ID does not look like a valid app ID.")
	case err != nil || !redirect.IsAbs() || redirect.Host == "":
		return 400, []byte("URL blocked: redirect_uri must be an absolute URL.")
	case rq.form.Get("response_type") != "" && rq.form.Get("response_type") != "code":
		return 400, []byte("unsupported response_type")
	case s.dialog == "" && !s.deny:
		return 400, []byte("fakegraph: nobody is logged in (SetDialogUser)")
	}
	q := redirect.Query()
	if s.deny {
		q.Set("error", "access_denied")
		q.Set("error_code", "200")
		q.Set("error_description", "Permissions error")
		q.Set("error_reason", "user_denied")
	} else {
		code := "code-" + s.next()
		s.codes[code] = &login{userToken: s.dialog, redirectURI: rq.form.Get("redirect_uri")}
		q.Set("code", code)
	}
	if st := rq.form.Get("state"); st != "" {
		q.Set("state", st)
	}
	redirect.RawQuery = q.Encode()
	redirect.Fragment = "_=_" // Facebook appends it
	w.Header().Set("Location", redirect.String())
	return 302, nil
}

func parseRequest(r *http.Request, version string) (*request, error) {
	rq := &request{method: r.Method, path: r.URL.Path, form: url.Values{}}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/"+version+"/"); ok {
		rq.path = "/" + rest
		rq.parts = strings.Split(strings.Trim(rest, "/"), "/")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 32<<20)
	var err error
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		err = r.ParseMultipartForm(32 << 20)
		if err == nil {
			if fhs := r.MultipartForm.File["source"]; len(fhs) > 0 {
				rq.file, err = readFile(fhs[0].Filename, func() (io.ReadCloser, error) { return fhs[0].Open() })
			}
		}
	} else {
		err = r.ParseForm()
	}
	for k, vs := range r.Form {
		rq.form[k] = slices.Clone(vs)
	}
	return rq, err
}

func readFile(name string, open func() (io.ReadCloser, error)) (*Photo, error) {
	f, err := open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return &Photo{Name: name, Data: data}, nil
}

// handle answers a request; s.mu is held.
func (s *Server) handle(rq *request, perr error) (int, []byte) {
	var out any
	var e *apiError
	switch {
	case perr != nil:
		e = badRequest(100, "(#100) Could not parse the request: "+perr.Error())
	default:
		var deliver bool
		var hang time.Duration
		if e, deliver, hang = s.injected(rq); e == nil || deliver {
			rq.hang = hang
			failure := e
			if rq.parts == nil {
				e = badRequest(2500, "Unknown path components: "+rq.path)
			} else {
				out, e = s.route(rq)
			}
			if failure != nil {
				e = failure // it took effect, and the answer is lost
			}
		}
	}
	if e != nil {
		return e.status, s.errorBody(e)
	}
	data, err := json.Marshal(out)
	if err != nil {
		return 500, s.errorBody(&apiError{status: 500, code: 1, typ: "OAuthException", msg: "fakegraph: " + err.Error()})
	}
	return 200, data
}

// injected returns the failure of the first rule matching rq, consuming one FailNext call.
func (s *Server) injected(rq *request) (*apiError, bool, time.Duration) {
	key := rq.method + " " + rq.path
	now := time.Now()
	for i, r := range s.rules {
		if !strings.Contains(key, r.match) {
			continue
		}
		if r.remaining > 0 {
			if r.remaining--; r.remaining == 0 {
				s.rules = slices.Delete(s.rules, i, i+1)
			}
			return fromFailure(r.failure), r.failure.Deliver, r.failure.Hang
		}
		if now.Before(r.until) {
			return fromFailure(r.failure), r.failure.Deliver, r.failure.Hang
		}
	}
	return nil, false, 0
}

func (s *Server) errorBody(e *apiError) []byte {
	body := map[string]any{
		"message":    e.msg,
		"type":       e.typ,
		"code":       e.code,
		"fbtrace_id": "FakeTrace" + s.next(),
	}
	if e.subcode != 0 {
		body["error_subcode"] = e.subcode
	}
	data, _ := json.Marshal(map[string]any{"error": body})
	return data
}

func (s *Server) route(rq *request) (any, *apiError) {
	p := rq.parts
	switch {
	case len(p) == 2 && p[0] == "oauth" && p[1] == "access_token":
		return s.accessToken(rq)
	case len(p) == 2 && p[0] == "me" && p[1] == "accounts" && rq.method == http.MethodGet:
		return s.accounts(rq)
	case len(p) == 1 && p[0] == "me" && rq.method == http.MethodGet:
		return s.me(rq)
	case len(p) == 2 && p[1] == "feed" && rq.method == http.MethodGet:
		return s.feed(rq, p[0])
	case len(p) == 2 && p[1] == "feed" && rq.method == http.MethodPost:
		return s.publish(rq, p[0])
	case len(p) == 2 && p[1] == "photos" && rq.method == http.MethodPost:
		return s.uploadPhoto(rq, p[0])
	case len(p) == 2 && p[1] == "comments" && rq.method == http.MethodGet:
		return s.listComments(rq, p[0])
	case len(p) == 2 && p[1] == "messages" && rq.method == http.MethodPost:
		return s.sendMessage(rq, p[0])
	case len(p) == 2 && p[1] == "subscribed_apps":
		return s.subscribedApps(rq, p[0])
	}
	return nil, unsupported(rq.method, strings.Join(p, "/"))
}

// token resolves the request's access token: the page id of a page token, "" for a user
// token. It checks appsecret_proof.
func (s *Server) token(rq *request) (pageID string, e *apiError) {
	tok := rq.form.Get("access_token")
	if tok == "" {
		return "", badRequest(190, "An access token is required to request this resource.")
	}
	pageID, ok := s.tokens[tok]
	if !ok {
		return "", badRequest(190, "Invalid OAuth access token - Cannot parse access token")
	}
	if s.cfg.AppSecret != "" {
		proof := rq.form.Get("appsecret_proof")
		switch {
		case proof == "" && s.cfg.RequireAppSecretProof:
			return "", badRequest(100, "API calls from the server require an appsecret_proof argument")
		case proof != "" && !validProof(s.cfg.AppSecret, tok, proof):
			return "", badRequest(100, "Invalid appsecret_proof provided in the API argument")
		}
	}
	return pageID, nil
}

func validProof(secret, token, proof string) bool {
	got, err := hex.DecodeString(proof)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(token))
	return hmac.Equal(got, mac.Sum(nil))
}

// pageAuth checks that the request carries the page token of pageID.
func (s *Server) pageAuth(rq *request, pageID, objectID string) *apiError {
	tokPage, e := s.token(rq)
	if e != nil {
		return e
	}
	if _, ok := s.pages[pageID]; !ok {
		return unsupported(rq.method, objectID)
	}
	if tokPage == "" {
		return badRequest(190, "A page access token is required to request this resource.")
	}
	if tokPage != pageID {
		return badRequest(190, fmt.Sprintf("The access token does not belong to page %s.", pageID))
	}
	return nil
}

func (s *Server) accessToken(rq *request) (any, *apiError) {
	if rq.form.Get("grant_type") == "fb_exchange_token" {
		return s.longLivedToken(rq)
	}
	if e := s.checkClient(rq, "client_id", "redirect_uri", "client_secret", "code"); e != nil {
		return nil, e
	}
	l := s.codes[rq.form.Get("code")]
	if l == nil {
		return nil, badRequest(100, "Invalid verification code format.")
	}
	if l.used {
		e := badRequest(100, "This authorization code has been used.")
		e.subcode = 36009
		return nil, e
	}
	if l.redirectURI != "" && l.redirectURI != rq.form.Get("redirect_uri") {
		e := badRequest(100, "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request")
		e.subcode = 36008
		return nil, e
	}
	l.used = true
	return map[string]any{"access_token": l.userToken, "token_type": "bearer", "expires_in": ShortUserTokenExpiresIn}, nil
}

// checkClient checks the app credentials of a token exchange and that its required
// parameters are present.
func (s *Server) checkClient(rq *request, required ...string) *apiError {
	for _, name := range required {
		if rq.form.Get(name) == "" {
			return badRequest(100, fmt.Sprintf("Missing %s parameter.", name))
		}
	}
	if rq.form.Get("client_id") != s.cfg.AppID {
		return badRequest(101, "Error validating application. Invalid application ID.")
	}
	if s.cfg.AppSecret != "" && rq.form.Get("client_secret") != s.cfg.AppSecret {
		return badRequest(100, "Error validating client secret.")
	}
	return nil
}

// longLivedToken exchanges a user token for a long-lived one ("ll-" + the token), which
// manages the same pages.
func (s *Server) longLivedToken(rq *request) (any, *apiError) {
	if e := s.checkClient(rq, "client_id", "client_secret", "fb_exchange_token"); e != nil {
		return nil, e
	}
	tok := rq.form.Get("fb_exchange_token")
	if pageID, ok := s.tokens[tok]; !ok || pageID != "" {
		return nil, badRequest(190, "Invalid OAuth access token - Cannot parse access token")
	}
	ll := tok
	if !strings.HasPrefix(tok, "ll-") {
		ll = "ll-" + tok
	}
	s.tokens[ll] = ""
	s.users[ll] = slices.Clone(s.users[tok])
	return map[string]any{"access_token": ll, "token_type": "bearer", "expires_in": UserTokenExpiresIn}, nil
}

// Profile is who a user token belongs to (GET /me).
type Profile struct {
	ID, Name, Email string
}

// SetProfile says who userToken (and the long-lived tokens made from it) belongs to.
func (s *Server) SetProfile(userToken string, p Profile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.profiles[userToken] = p
}

// me answers GET /me with the fields asked for (id and name by default), as Graph does; a
// user without a profile is "Facebook User" with an id made from the token.
func (s *Server) me(rq *request) (any, *apiError) {
	pageID, e := s.token(rq)
	if e != nil {
		return nil, e
	}
	if pageID != "" {
		return map[string]any{"id": pageID, "name": s.pages[pageID].name}, nil
	}
	tok := rq.form.Get("access_token")
	p, ok := s.profiles[tok]
	if !ok {
		p, ok = s.profiles[strings.TrimPrefix(tok, "ll-")]
	}
	if !ok {
		sum := sha256.Sum256([]byte(tok))
		p = Profile{ID: "1" + hex.EncodeToString(sum[:6]), Name: "Facebook User"}
	}
	out := map[string]any{}
	for _, f := range strings.Split(cmp.Or(rq.form.Get("fields"), "id,name"), ",") {
		switch strings.TrimSpace(f) {
		case "id":
			out["id"] = p.ID
		case "name":
			out["name"] = p.Name
		case "email":
			if p.Email != "" {
				out["email"] = p.Email
			}
		}
	}
	return out, nil
}

func (s *Server) accounts(rq *request) (any, *apiError) {
	pageID, e := s.token(rq)
	if e != nil {
		return nil, e
	}
	if pageID != "" {
		return nil, badRequest(100, "(#100) Tried accessing nonexisting field (accounts) on node type (Page)")
	}
	fields := parseFields(rq.form.Get("fields"), "id", "name", "access_token", "tasks")
	var items []item
	for _, id := range s.users[rq.form.Get("access_token")] {
		p := s.pages[id]
		if p == nil {
			continue
		}
		items = append(items, item{id: p.id, fields: fields.pick(map[string]any{
			"id": p.id, "name": p.name, "access_token": p.token, "category": "Nonprofit organization",
			"tasks": []string{"MANAGE", "CREATE_CONTENT", "MODERATE"},
		})})
	}
	return s.list(rq, items, 25)
}

func (s *Server) feed(rq *request, pageID string) (any, *apiError) {
	if e := s.pageAuth(rq, pageID, pageID); e != nil {
		return nil, e
	}
	since, e := unixParam(rq.form, "since")
	if e != nil {
		return nil, e
	}
	until, e := unixParam(rq.form, "until")
	if e != nil {
		return nil, e
	}
	fields := parseFields(rq.form.Get("fields"), "id", "message", "created_time")
	var items []item
	for i := len(s.posts) - 1; i >= 0; i-- { // newest first
		p := s.posts[i]
		t := p.CreatedTime.Unix()
		if p.PageID != pageID || (since != nil && t < *since) || (until != nil && t > *until) {
			continue
		}
		v := map[string]any{
			"id": p.ID, "created_time": p.CreatedTime.Format(graphTime),
			"permalink_url": "https://www.facebook.com/" + p.ID,
		}
		if p.Message != "" {
			v["message"] = p.Message
		}
		if p.Link != "" {
			v["link"] = p.Link
		}
		items = append(items, item{id: p.ID, fields: fields.pick(v)})
	}
	return s.list(rq, items, 25)
}

func unixParam(form url.Values, name string) (*int64, *apiError) {
	raw := form.Get(name)
	if raw == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return nil, badRequest(100, fmt.Sprintf("(#100) The parameter %s must be a unix timestamp", name))
	}
	return &n, nil
}

func (s *Server) publish(rq *request, pageID string) (any, *apiError) {
	if e := s.pageAuth(rq, pageID, pageID); e != nil {
		return nil, e
	}
	var media []string
	for k, vs := range rq.form {
		if !strings.HasPrefix(k, "attached_media") {
			continue
		}
		var m struct {
			MediaFBID string `json:"media_fbid"`
		}
		ph := (*Photo)(nil)
		if json.Unmarshal([]byte(vs[0]), &m) == nil {
			ph = s.photos[m.MediaFBID]
		}
		if ph == nil || ph.PageID != pageID || ph.Published {
			return nil, badRequest(100, fmt.Sprintf("(#100) param %s must be the media_fbid of an unpublished photo of this page", k))
		}
		media = append(media, k)
	}
	sort.Slice(media, func(i, j int) bool { return mediaIndex(media[i]) < mediaIndex(media[j]) })
	msg, link := rq.form.Get("message"), rq.form.Get("link")
	if msg == "" && link == "" && len(media) == 0 {
		return nil, badRequest(100, "(#100) Missing message or attachment")
	}
	post := Post{ID: pageID + "_" + s.next(), PageID: pageID, Message: msg, Link: link, CreatedTime: time.Now().UTC()}
	for i, k := range media {
		var m struct {
			MediaFBID string `json:"media_fbid"`
		}
		json.Unmarshal([]byte(rq.form.Get(k)), &m)
		s.photos[m.MediaFBID].Published = true
		if i == 0 {
			post.PhotoID = m.MediaFBID
		}
	}
	s.posts = append(s.posts, post)
	return map[string]any{"id": post.ID}, nil
}

func mediaIndex(key string) int {
	n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(key, "attached_media["), "]"))
	return n
}

func (s *Server) uploadPhoto(rq *request, pageID string) (any, *apiError) {
	if e := s.pageAuth(rq, pageID, pageID); e != nil {
		return nil, e
	}
	ph := &Photo{PageID: pageID}
	switch raw := rq.form.Get("url"); {
	case rq.file != nil:
		ph.Name, ph.Data = rq.file.Name, rq.file.Data
		if len(ph.Data) == 0 {
			return nil, badRequest(324, "(#324) Requires upload file")
		}
	case raw != "":
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, badRequest(100, "(#100) url should represent a valid URL")
		}
		ph.URL = raw
	default:
		return nil, badRequest(324, "(#324) Requires upload file")
	}
	published := rq.form.Get("published")
	ph.Published = published != "false" && published != "0"
	ph.ID = strconv.Itoa(900000 + len(s.photoIDs) + 1)
	s.photos[ph.ID] = ph
	s.photoIDs = append(s.photoIDs, ph.ID)
	if !ph.Published {
		return map[string]any{"id": ph.ID}, nil
	}
	msg := rq.form.Get("caption")
	if msg == "" {
		msg = rq.form.Get("message")
	}
	post := Post{ID: pageID + "_" + s.next(), PageID: pageID, Message: msg, PhotoID: ph.ID, CreatedTime: time.Now().UTC()}
	s.posts = append(s.posts, post)
	return map[string]any{"id": ph.ID, "post_id": post.ID}, nil
}

// listComments lists a post's comments, or a comment's replies.
func (s *Server) listComments(rq *request, objectID string) (any, *apiError) {
	postID, parent := objectID, ""
	if p, ok := s.parentOf[objectID]; ok {
		postID, parent = p, objectID
	}
	pageID := s.pageOfPost(postID)
	if pageID == "" {
		if _, e := s.token(rq); e != nil {
			return nil, e
		}
		return nil, unsupported(rq.method, objectID)
	}
	if e := s.pageAuth(rq, pageID, objectID); e != nil {
		return nil, e
	}
	filter := rq.form.Get("filter")
	if filter != "" && filter != "stream" && filter != "toplevel" {
		return nil, badRequest(100, "(#100) filter must be one of the following values: toplevel, stream")
	}
	order := rq.form.Get("order")
	if order != "" && order != "chronological" && order != "reverse_chronological" {
		return nil, badRequest(100, "(#100) order must be one of the following values: chronological, reverse_chronological")
	}
	all := slices.Clone(s.comments[postID])
	sort.SliceStable(all, func(i, j int) bool { return all[i].CreatedTime.Before(all[j].CreatedTime) })
	if order == "reverse_chronological" {
		slices.Reverse(all)
	}
	fields := parseFields(rq.form.Get("fields"), "id", "message", "created_time", "from")
	var items []item
	for _, c := range all {
		switch {
		case parent != "" && c.ParentID != parent:
			continue
		case parent == "" && filter != "stream" && c.ParentID != "":
			continue
		}
		v := map[string]any{"id": c.ID, "message": c.Message, "created_time": c.CreatedTime.Format(graphTime)}
		if c.FromID != "" {
			v["from"] = map[string]string{"id": c.FromID, "name": c.FromName}
		}
		if c.ParentID != "" {
			v["parent"] = map[string]string{"id": c.ParentID}
		}
		items = append(items, item{id: c.ID, fields: fields.pick(v)})
	}
	return s.list(rq, items, 25)
}

// pageOfPost returns the page whose id followed by "_" starts postID (the longest such).
func (s *Server) pageOfPost(postID string) string {
	best := ""
	for id := range s.pages {
		if strings.HasPrefix(postID, id+"_") && len(id) > len(best) {
			best = id
		}
	}
	return best
}

// subscribableFields are the page webhook fields the fake accepts.
func subscribableFields() []string {
	return []string{
		"feed", "messages", "messaging_postbacks", "messaging_optins", "message_deliveries",
		"message_reads", "message_echoes", "message_reactions", "messaging_referrals", "mention",
	}
}

func (s *Server) subscribedApps(rq *request, pageID string) (any, *apiError) {
	if e := s.pageAuth(rq, pageID, pageID); e != nil {
		return nil, e
	}
	p := s.pages[pageID]
	switch rq.method {
	case http.MethodGet:
		data := []map[string]any{}
		if len(p.subscribed) > 0 {
			data = append(data, map[string]any{"id": s.cfg.AppID, "name": "fakegraph app", "subscribed_fields": p.subscribed})
		}
		return map[string]any{"data": data}, nil
	case http.MethodDelete:
		p.subscribed = nil
		return map[string]any{"success": true}, nil
	case http.MethodPost:
	default:
		return nil, unsupported(rq.method, pageID+"/subscribed_apps")
	}
	raw := strings.TrimSpace(rq.form.Get("subscribed_fields"))
	if raw == "" {
		return nil, badRequest(100, "(#100) The parameter subscribed_fields is required")
	}
	var fields []string
	if strings.HasPrefix(raw, "[") {
		if err := json.Unmarshal([]byte(raw), &fields); err != nil {
			return nil, badRequest(100, "(#100) Param subscribed_fields must be an array of strings")
		}
	} else {
		for f := range strings.SplitSeq(raw, ",") {
			fields = append(fields, strings.TrimSpace(f))
		}
	}
	for i, f := range fields {
		if known := subscribableFields(); !slices.Contains(known, f) {
			return nil, badRequest(100, fmt.Sprintf("(#100) Param subscribed_fields[%d] must be one of {%s} - got %q", i, strings.Join(known, ", "), f))
		}
	}
	p.subscribed = fields
	return map[string]any{"success": true}, nil
}

// fieldSet is a parsed "fields" parameter: its top-level names.
type fieldSet map[string]bool

// parseFields parses "id,from{id,name},message" (sub-field lists are accepted, not applied);
// empty means the defaults.
func parseFields(raw string, defaults ...string) fieldSet {
	fs := fieldSet{}
	if strings.TrimSpace(raw) == "" {
		for _, f := range defaults {
			fs[f] = true
		}
		return fs
	}
	depth, start := 0, 0
	add := func(end int) {
		name := raw[start:end]
		if i := strings.IndexAny(name, "{."); i >= 0 {
			name = name[:i]
		}
		if name = strings.TrimSpace(name); name != "" {
			fs[name] = true
		}
	}
	for i, r := range raw {
		switch r {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				add(i)
				start = i + 1
			}
		}
	}
	add(len(raw))
	return fs
}

// pick keeps the requested fields of v; "id" is always kept, like Graph does.
func (fs fieldSet) pick(v map[string]any) map[string]any {
	out := map[string]any{"id": v["id"]}
	for k, x := range v {
		if fs[k] {
			out[k] = x
		}
	}
	return out
}

// item is one element of a list answer.
type item struct {
	id     string
	fields map[string]any
}

// list answers a Graph list: {"data":[...],"paging":{"cursors":{"before","after"},"next"}},
// one page of limit items after the "after" cursor (a cursor names an item id).
func (s *Server) list(rq *request, items []item, defaultLimit int) (any, *apiError) {
	limit := defaultLimit
	if raw := rq.form.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			return nil, badRequest(100, "(#100) The parameter limit must be a non-negative integer")
		}
		limit = n
	}
	limit = min(limit, s.cfg.MaxPageSize)
	start := 0
	if after := rq.form.Get("after"); after != "" {
		id, err := base64.RawURLEncoding.DecodeString(after)
		if err != nil {
			return nil, badRequest(100, "(#100) The after cursor is invalid")
		}
		start = len(items) // an item that is gone: nothing after it is known
		for i, it := range items {
			if it.id == string(id) {
				start = i + 1
				break
			}
		}
	}
	end := min(start+limit, len(items))
	data := make([]map[string]any, 0, end-start)
	for _, it := range items[start:end] {
		data = append(data, it.fields)
	}
	out := map[string]any{"data": data}
	if len(data) == 0 {
		return out, nil
	}
	paging := map[string]any{"cursors": map[string]string{
		"before": cursor(items[start].id), "after": cursor(items[end-1].id),
	}}
	if end < len(items) {
		q := cloneValues(rq.form)
		q.Set("after", cursor(items[end-1].id))
		q.Set("limit", strconv.Itoa(limit))
		paging["next"] = s.URL + "/" + s.cfg.Version + rq.path + "?" + q.Encode()
	}
	out["paging"] = paging
	return out, nil
}

func cursor(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
