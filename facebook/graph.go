package facebook

// The Graph API client: publishing page posts, reading a page's feed and a post's comments,
// and connecting a page (Facebook Login, /me/accounts, subscribed_apps).
//
//	g, err := facebook.NewGraph(facebook.GraphConfig{AppID: id, AppSecret: secret})
//	postID, err := g.PublishPost(ctx, pageID, pageToken, facebook.PostContent{Message: "Hello"})
//	if facebook.IsRetryable(err) { ... retry later; FeedSince tells whether it was created ... }

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Graph client defaults.
const (
	DefaultGraphURL     = "https://graph.facebook.com"
	DefaultGraphVersion = "v23.0"
	DefaultDialogURL    = "https://www.facebook.com"
	DefaultHTTPTimeout  = 15 * time.Second
	DefaultMaxAttempts  = 5
	DefaultBaseDelay    = 500 * time.Millisecond
	DefaultMaxDelay     = 30 * time.Second

	// MaxResponseBytes bounds a Graph response body; a larger one is an error.
	MaxResponseBytes = 4 << 20
	// maxPages bounds how many pages of a list (feed, accounts) are followed.
	maxPages = 10
	// graphTimeLayout is how Graph writes times: "2026-11-22T10:00:00+0000".
	graphTimeLayout = "2006-01-02T15:04:05-0700"
)

// Graph client errors. A Graph API error answer is a *GraphError instead.
var (
	ErrGraphConfig        = errors.New("facebook: invalid graph config")
	ErrInvalidPost        = errors.New("facebook: invalid post")
	ErrInvalidArgument    = errors.New("facebook: invalid argument")
	ErrUnexpectedResponse = errors.New("facebook: unexpected graph response")
)

// DefaultSubscribedFields are the webhook fields Voluntree subscribes a page to.
func DefaultSubscribedFields() []string {
	return []string{"feed", "messages", "messaging_postbacks"}
}

// DefaultLoginScopes are the permissions the login dialog asks for: list the pages
// (pages_show_list), publish (pages_manage_posts), read and answer comments
// (pages_read_engagement, pages_read_user_content, pages_manage_engagement), subscribe the
// app to webhooks (pages_manage_metadata) and message people (pages_messaging).
func DefaultLoginScopes() []string {
	return []string{"pages_show_list", "pages_manage_metadata", "pages_manage_posts", "pages_read_engagement",
		"pages_read_user_content", "pages_manage_engagement", "pages_messaging"}
}

// GraphConfig configures a Graph client; zero fields take the defaults above.
type GraphConfig struct {
	BaseURL     string        // VOLUNTREE_FB_GRAPH_URL; default DefaultGraphURL
	Version     string        // default DefaultGraphVersion; "v<major>.<minor>"
	DialogURL   string        // Facebook Login dialog base; default DefaultDialogURL
	AppID       string        // for the login dialog and the code exchange
	AppSecret   string        // code exchange; signs every call with appsecret_proof
	HTTPClient  *http.Client  // default: a client with a DefaultHTTPTimeout timeout
	MaxAttempts int           // attempts of a retryable call; default DefaultMaxAttempts
	BaseDelay   time.Duration // first backoff; default DefaultBaseDelay
	MaxDelay    time.Duration // backoff cap; default DefaultMaxDelay
}

func (c *GraphConfig) setDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultGraphURL
	}
	if c.Version == "" {
		c.Version = DefaultGraphVersion
	}
	if c.DialogURL == "" {
		c.DialogURL = DefaultDialogURL
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BaseDelay == 0 {
		c.BaseDelay = DefaultBaseDelay
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = DefaultMaxDelay
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	c.DialogURL = strings.TrimRight(c.DialogURL, "/")
}

// Validate reports the first invalid field of a defaulted config.
func (c GraphConfig) Validate() error {
	for name, raw := range map[string]string{"BaseURL": c.BaseURL, "DialogURL": c.DialogURL} {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return fmt.Errorf("%w: %s %q is not an http(s) base URL", ErrGraphConfig, name, raw)
		}
	}
	if !validVersion(c.Version) {
		return fmt.Errorf("%w: Version %q does not look like v23.0", ErrGraphConfig, c.Version)
	}
	if c.MaxAttempts < 1 {
		return fmt.Errorf("%w: MaxAttempts %d < 1", ErrGraphConfig, c.MaxAttempts)
	}
	if c.BaseDelay < 0 || c.MaxDelay < c.BaseDelay {
		return fmt.Errorf("%w: want 0 <= BaseDelay (%s) <= MaxDelay (%s)", ErrGraphConfig, c.BaseDelay, c.MaxDelay)
	}
	return nil
}

// validVersion reports whether v matches ^v\d+\.\d+$.
func validVersion(v string) bool {
	rest, ok := strings.CutPrefix(v, "v")
	if !ok {
		return false
	}
	major, minor, ok := strings.Cut(rest, ".")
	return ok && allDigits(major) && allDigits(minor)
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Graph is a Graph API client, safe for concurrent use. It never logs, and access tokens
// and secrets never appear in its errors.
type Graph struct {
	cfg  GraphConfig
	base *url.URL
	rnd  func() float64
}

// NewGraph returns a client for cfg after applying defaults and validating it.
func NewGraph(cfg GraphConfig) (*Graph, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: BaseURL: %w", ErrGraphConfig, err)
	}
	return &Graph{cfg: cfg, base: base, rnd: rand.Float64}, nil
}

// GraphError is an error answer of the Graph API:
// {"error":{"message","type","code","error_subcode","fbtrace_id"}}. When the body is not of
// that shape (a proxy's HTML page...), Message is an excerpt of it and Code is 0.
type GraphError struct {
	HTTPStatus int
	Code       int
	Subcode    int
	Type       string
	Message    string
	FBTraceID  string
}

func (e *GraphError) Error() string {
	var b strings.Builder
	b.WriteString("graph API: ")
	if e.Message != "" {
		b.WriteString(e.Message)
	} else {
		b.WriteString("error")
	}
	fmt.Fprintf(&b, " (HTTP %d", e.HTTPStatus)
	if e.Type != "" {
		b.WriteString(", " + e.Type)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, ", code %d", e.Code)
	}
	if e.Subcode != 0 {
		fmt.Fprintf(&b, ", subcode %d", e.Subcode)
	}
	if e.FBTraceID != "" {
		b.WriteString(", fbtrace_id " + e.FBTraceID)
	}
	b.WriteString(")")
	return b.String()
}

// Retryable reports whether the same call may succeed later: server errors (HTTP 5xx or 429),
// unknown/service errors (codes 1, 2), throttling (4, 17, 32, 613) and the app limit (341).
func (e *GraphError) Retryable() bool {
	if e.HTTPStatus >= 500 || e.HTTPStatus == http.StatusTooManyRequests {
		return true
	}
	switch e.Code {
	case 1, 2, 341:
		return true
	}
	return e.Throttled()
}

// Throttled reports a rate-limit error (codes 4, 17, 32, 613): back off before retrying.
func (e *GraphError) Throttled() bool {
	switch e.Code {
	case 4, 17, 32, 613:
		return true
	}
	return false
}

// canceledError is returned when the caller's ctx ended during a call or its backoff. It
// unwraps to ctx.Err() and to the last attempt's error.
type canceledError struct {
	op   string
	ctx  error
	last error
}

func (e *canceledError) Error() string {
	if e.last == nil || errors.Is(e.last, e.ctx) {
		return fmt.Sprintf("facebook: %s: %v", e.op, e.ctx)
	}
	return fmt.Sprintf("facebook: %s: %v (last error: %v)", e.op, e.ctx, e.last)
}

func (e *canceledError) Unwrap() []error {
	if e.last == nil {
		return []error{e.ctx}
	}
	return []error{e.ctx, e.last}
}

// IsRetryable reports whether a call that failed with err may succeed if made again: a
// retryable *GraphError, or a network error or timeout. When the caller's ctx ended, the
// error is retryable if ctx ran out (an attempt that timed out) and not if it was canceled
// (the caller gave up). A failed PublishPost whose error is retryable may nonetheless have
// created the post: FeedSince tells.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var ce *canceledError
	if errors.As(err, &ce) {
		return errors.Is(ce.ctx, context.DeadlineExceeded)
	}
	var ge *GraphError
	if errors.As(err, &ge) {
		return ge.Retryable()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

// Backoff returns the wait before retry attempt+1 (attempt 0 is the wait after the first
// failure): d = min(maxDelay, base·2^attempt), then d/2 + rnd()·d/2, so the wait lies in
// [d/2, d). Jittering the upper half (AWS calls it "equal jitter") spreads retries of many
// clients while keeping a lower bound that still backs off. rnd returns values in [0, 1);
// nil means math/rand/v2's Float64. It never overflows, whatever attempt.
func Backoff(attempt int, base, maxDelay time.Duration, rnd func() float64) time.Duration {
	if base <= 0 {
		return 0
	}
	if maxDelay < base {
		maxDelay = base
	}
	d := base
	for i := 0; i < attempt && d < maxDelay; i++ {
		if d > maxDelay/2 {
			d = maxDelay
			break
		}
		d *= 2
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	r := min(max(rnd(), 0), 1)
	half := d / 2
	return half + time.Duration(r*float64(d-half))
}

// PostContent is what PublishPost publishes: a message with a link, or a message with one
// photo given as bytes (Photo, named PhotoName) or as a public URL (PhotoURL).
type PostContent struct {
	Message   string
	Link      string
	PhotoURL  string
	Photo     []byte
	PhotoName string // default "photo.jpg"
}

func (p PostContent) validate() error {
	hasPhoto := len(p.Photo) > 0 || p.PhotoURL != ""
	switch {
	case len(p.Photo) > 0 && p.PhotoURL != "":
		return fmt.Errorf("%w: both photo bytes and a photo URL", ErrInvalidPost)
	case hasPhoto && p.Link != "":
		return fmt.Errorf("%w: Graph does not take a link and a photo in one post", ErrInvalidPost)
	case !hasPhoto && p.Message == "" && p.Link == "":
		return fmt.Errorf("%w: no message, link or photo", ErrInvalidPost)
	}
	return nil
}

// PublishPost publishes p on the page and returns the post id ("<page>_<n>"). A photo is
// first uploaded unpublished (POST /{page}/photos, retried) then attached to the post. The
// POST /{page}/feed itself is made once, never retried here: it is not idempotent, so the
// caller retries durably, checking FeedSince after an ambiguous failure (5xx, timeout).
func (g *Graph) PublishPost(ctx context.Context, pageID, pageToken string, p PostContent) (string, error) {
	if err := checkArgs(pageID, pageToken); err != nil {
		return "", err
	}
	if err := p.validate(); err != nil {
		return "", err
	}
	form := url.Values{}
	if p.Message != "" {
		form.Set("message", p.Message)
	}
	if p.Link != "" {
		form.Set("link", p.Link)
	}
	if len(p.Photo) > 0 || p.PhotoURL != "" {
		photoID, err := g.uploadPhoto(ctx, pageID, pageToken, p)
		if err != nil {
			return "", err
		}
		media, err := json.Marshal(struct {
			MediaFBID string `json:"media_fbid"`
		}{photoID})
		if err != nil {
			return "", fmt.Errorf("facebook: attached_media: %w", err)
		}
		form.Set("attached_media[0]", string(media))
	}
	var out idResponse
	rq := request{method: http.MethodPost, path: []string{pageID, "feed"}, token: pageToken, params: form}
	if err := g.call(ctx, rq, &out); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", fmt.Errorf("%w: POST /%s/feed: no id", ErrUnexpectedResponse, pageID)
	}
	return out.ID, nil
}

type idResponse struct {
	ID string `json:"id"`
}

// uploadPhoto uploads p's photo unpublished and returns its id.
func (g *Graph) uploadPhoto(ctx context.Context, pageID, pageToken string, p PostContent) (string, error) {
	rq := request{
		method: http.MethodPost, path: []string{pageID, "photos"}, token: pageToken, retry: true,
		params: url.Values{"published": {"false"}},
	}
	if len(p.Photo) > 0 {
		name := p.PhotoName
		if name == "" {
			name = "photo.jpg"
		}
		rq.file = &filePart{field: "source", name: name, data: p.Photo}
	} else {
		rq.params.Set("url", p.PhotoURL)
	}
	var out idResponse
	if err := g.call(ctx, rq, &out); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", fmt.Errorf("%w: POST /%s/photos: no id", ErrUnexpectedResponse, pageID)
	}
	return out.ID, nil
}

// FeedPost is a post of a page's feed.
type FeedPost struct {
	ID          string
	Message     string
	CreatedTime time.Time
}

// FeedSince lists the page's posts created since since (at second precision), newest first,
// following paging.next for up to 10 pages of 100. It tells whether a post whose publish
// call failed ambiguously was in fact created.
func (g *Graph) FeedSince(ctx context.Context, pageID, pageToken string, since time.Time) ([]FeedPost, error) {
	if err := checkArgs(pageID, pageToken); err != nil {
		return nil, err
	}
	params := url.Values{"fields": {"id,message,created_time"}, "limit": {"100"}}
	if !since.IsZero() {
		params.Set("since", strconv.FormatInt(since.Unix(), 10))
	}
	rq := request{method: http.MethodGet, path: []string{pageID, "feed"}, token: pageToken, params: params, retry: true}
	var posts []FeedPost
	err := g.list(ctx, rq, func(raw json.RawMessage) error {
		var p struct {
			ID          string `json:"id"`
			Message     string `json:"message"`
			CreatedTime string `json:"created_time"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return err
		}
		t, err := parseGraphTime(p.CreatedTime)
		if err != nil {
			return err
		}
		posts = append(posts, FeedPost{ID: p.ID, Message: p.Message, CreatedTime: t})
		return nil
	})
	return posts, err
}

// GraphUser is a comment's author as Graph gives it to a page token.
type GraphUser struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// GraphComment is one comment of a post; ParentID is set on replies.
type GraphComment struct {
	ID          string
	Message     string
	From        *GraphUser // nil when Graph does not say
	ParentID    string
	CreatedTime time.Time
}

// CommentsPage is one page of comments. After is the cursor after its last comment (Graph's
// paging.cursors.after), given even on the last page so that a poller can later ask for the
// comments made since; it is "" only when the page is empty. More tells whether Graph has more
// comments now (paging.next is present).
type CommentsPage struct {
	Comments []GraphComment
	After    string
	More     bool
}

// Comments returns one page of the post's comments and replies (filter=stream), oldest
// first, after the cursor after ("" for the first page); limit <= 0 takes Graph's default.
func (g *Graph) Comments(ctx context.Context, postID, token, after string, limit int) (CommentsPage, error) {
	if err := checkArgs(postID, token); err != nil {
		return CommentsPage{}, err
	}
	params := url.Values{
		"fields": {"id,from{id,name},message,created_time,parent{id}"},
		"filter": {"stream"},
		"order":  {"chronological"},
	}
	if limit > 0 {
		params.Set("limit", strconv.Itoa(limit))
	}
	if after != "" {
		params.Set("after", after)
	}
	var out struct {
		Data []struct {
			ID          string     `json:"id"`
			Message     string     `json:"message"`
			From        *GraphUser `json:"from"`
			CreatedTime string     `json:"created_time"`
			Parent      *struct {
				ID string `json:"id"`
			} `json:"parent"`
		} `json:"data"`
		Paging graphPaging `json:"paging"`
	}
	rq := request{method: http.MethodGet, path: []string{postID, "comments"}, token: token, params: params, retry: true}
	if err := g.call(ctx, rq, &out); err != nil {
		return CommentsPage{}, err
	}
	page := CommentsPage{Comments: make([]GraphComment, 0, len(out.Data))}
	for _, c := range out.Data {
		t, err := parseGraphTime(c.CreatedTime)
		if err != nil {
			return CommentsPage{}, fmt.Errorf("%w: GET /%s/comments: comment %s: %w", ErrUnexpectedResponse, postID, c.ID, err)
		}
		gc := GraphComment{ID: c.ID, Message: c.Message, From: c.From, CreatedTime: t}
		if c.Parent != nil {
			gc.ParentID = c.Parent.ID
		}
		page.Comments = append(page.Comments, gc)
	}
	page.After, page.More = out.Paging.Cursors.After, out.Paging.Next != ""
	return page, nil
}

// LoginDialogURL is the Facebook Login dialog that sends the person back to redirectURI with
// ?code=...&state=state once they granted scopes.
func (g *Graph) LoginDialogURL(redirectURI, state string, scopes []string) string {
	q := url.Values{
		"client_id":     {g.cfg.AppID},
		"redirect_uri":  {redirectURI},
		"state":         {state},
		"scope":         {strings.Join(scopes, ",")},
		"response_type": {"code"},
	}
	return g.cfg.DialogURL + "/" + g.cfg.Version + "/dialog/oauth?" + q.Encode()
}

// UserToken is a user access token from the code exchange.
type UserToken struct {
	AccessToken string
	ExpiresAt   time.Time // zero when Graph gave no expires_in
}

// ExchangeCode trades the login dialog's code for a user access token; redirectURI must be
// the one given to the dialog.
func (g *Graph) ExchangeCode(ctx context.Context, code, redirectURI string) (UserToken, error) {
	if g.cfg.AppID == "" || g.cfg.AppSecret == "" {
		return UserToken{}, fmt.Errorf("%w: the code exchange needs AppID and AppSecret", ErrGraphConfig)
	}
	if code == "" || redirectURI == "" {
		return UserToken{}, fmt.Errorf("%w: empty code or redirect URI", ErrInvalidArgument)
	}
	params := url.Values{
		"client_id":     {g.cfg.AppID},
		"client_secret": {g.cfg.AppSecret},
		"redirect_uri":  {redirectURI},
		"code":          {code},
	}
	return g.oauthToken(ctx, params)
}

// Person is who a user access token belongs to (GET /me).
type Person struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"` // "" without the email permission
}

// Me reads who a user token belongs to: id, name and, with the email permission, email.
func (g *Graph) Me(ctx context.Context, userToken string) (Person, error) {
	if err := checkArgs("me", userToken); err != nil {
		return Person{}, err
	}
	var p Person
	rq := request{method: http.MethodGet, path: []string{"me"}, token: userToken,
		params: url.Values{"fields": {"id,name,email"}}, retry: true}
	if err := g.call(ctx, rq, &p); err != nil {
		return Person{}, err
	}
	if p.ID == "" {
		return Person{}, fmt.Errorf("%w: GET /me: no id", ErrUnexpectedResponse)
	}
	return p, nil
}

// PageAccount is a page the user manages, with its page access token and the user's tasks
// on it (MANAGE, CREATE_CONTENT, MODERATE...).
type PageAccount struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	AccessToken string   `json:"access_token"`
	Tasks       []string `json:"tasks"`
}

// LongLivedToken exchanges a user token for a long-lived one (about 60 days). Page tokens
// read with a long-lived user token do not expire, so this is what a page connection uses.
func (g *Graph) LongLivedToken(ctx context.Context, userToken string) (UserToken, error) {
	if g.cfg.AppID == "" || g.cfg.AppSecret == "" {
		return UserToken{}, fmt.Errorf("%w: the token exchange needs AppID and AppSecret", ErrGraphConfig)
	}
	if userToken == "" {
		return UserToken{}, fmt.Errorf("%w: empty user token", ErrInvalidArgument)
	}
	params := url.Values{
		"grant_type":        {"fb_exchange_token"},
		"client_id":         {g.cfg.AppID},
		"client_secret":     {g.cfg.AppSecret},
		"fb_exchange_token": {userToken},
	}
	return g.oauthToken(ctx, params)
}

// oauthToken calls GET /oauth/access_token with params.
func (g *Graph) oauthToken(ctx context.Context, params url.Values) (UserToken, error) {
	var out struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	rq := request{method: http.MethodGet, path: []string{"oauth", "access_token"}, params: params, retry: true}
	if err := g.call(ctx, rq, &out); err != nil {
		return UserToken{}, err
	}
	if out.AccessToken == "" {
		return UserToken{}, fmt.Errorf("%w: GET /oauth/access_token: no access_token", ErrUnexpectedResponse)
	}
	tok := UserToken{AccessToken: out.AccessToken}
	if out.ExpiresIn > 0 {
		tok.ExpiresAt = time.Now().Add(time.Duration(out.ExpiresIn) * time.Second)
	}
	return tok, nil
}

// Accounts lists the pages the user of userToken manages (up to 10 pages of 100).
func (g *Graph) Accounts(ctx context.Context, userToken string) ([]PageAccount, error) {
	if err := checkArgs("me", userToken); err != nil {
		return nil, err
	}
	params := url.Values{"fields": {"id,name,access_token,tasks"}, "limit": {"100"}}
	rq := request{method: http.MethodGet, path: []string{"me", "accounts"}, token: userToken, params: params, retry: true}
	var accounts []PageAccount
	err := g.list(ctx, rq, func(raw json.RawMessage) error {
		var a PageAccount
		if err := json.Unmarshal(raw, &a); err != nil {
			return err
		}
		accounts = append(accounts, a)
		return nil
	})
	return accounts, err
}

// SubscribeApp subscribes the app to the page's webhook fields (DefaultSubscribedFields when
// fields is empty).
func (g *Graph) SubscribeApp(ctx context.Context, pageID, pageToken string, fields []string) error {
	if err := checkArgs(pageID, pageToken); err != nil {
		return err
	}
	if len(fields) == 0 {
		fields = DefaultSubscribedFields()
	}
	var out struct {
		Success bool `json:"success"`
	}
	rq := request{
		method: http.MethodPost, path: []string{pageID, "subscribed_apps"}, token: pageToken, retry: true,
		params: url.Values{"subscribed_fields": {strings.Join(fields, ",")}},
	}
	if err := g.call(ctx, rq, &out); err != nil {
		return err
	}
	if !out.Success {
		return fmt.Errorf("%w: POST /%s/subscribed_apps: success is not true", ErrUnexpectedResponse, pageID)
	}
	return nil
}

func checkArgs(id, token string) error {
	if id == "" {
		return fmt.Errorf("%w: empty object id", ErrInvalidArgument)
	}
	if token == "" {
		return fmt.Errorf("%w: empty access token", ErrInvalidArgument)
	}
	return nil
}

// parseGraphTime parses Graph's "2026-11-22T10:00:00+0000" or RFC 3339; "" is the zero time.
func parseGraphTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(graphTimeLayout, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("facebook: bad created_time %q: %w", s, err)
	}
	return t, nil
}

type graphPaging struct {
	Cursors struct {
		Before string `json:"before"`
		After  string `json:"after"`
	} `json:"cursors"`
	Next string `json:"next"`
}

// list calls rq and follows paging.next for up to maxPages pages, handing each item to add.
func (g *Graph) list(ctx context.Context, rq request, add func(json.RawMessage) error) error {
	for range maxPages {
		var out struct {
			Data   []json.RawMessage `json:"data"`
			Paging graphPaging       `json:"paging"`
		}
		if err := g.call(ctx, rq, &out); err != nil {
			return err
		}
		for _, raw := range out.Data {
			if err := add(raw); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrUnexpectedResponse, rq.op(), err)
			}
		}
		if out.Paging.Next == "" || len(out.Data) == 0 {
			return nil
		}
		next, err := g.sameHost(out.Paging.Next)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrUnexpectedResponse, rq.op(), err)
		}
		rq.next, rq.params = next, nil
	}
	return nil
}

// sameHost parses a paging URL, refusing one that would send the token elsewhere.
func (g *Graph) sameHost(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("unparsable paging.next")
	}
	if u.Scheme != g.base.Scheme || u.Host != g.base.Host {
		return nil, fmt.Errorf("paging.next points to %s://%s", u.Scheme, u.Host)
	}
	return u, nil
}

// request is one Graph call.
type request struct {
	method string
	path   []string // below the version: {"123", "feed"}; ignored when next is set
	next   *url.URL // an absolute paging.next URL
	token  string
	params url.Values // the query of a GET, the form of a POST
	file   *filePart  // makes a POST multipart
	retry  bool       // retry retryable errors with backoff
}

type filePart struct {
	field, name string
	data        []byte
}

// op names the call in errors, without its query (which holds the token).
func (rq request) op() string {
	if rq.next != nil {
		return rq.method + " " + rq.next.Path
	}
	return rq.method + " /" + strings.Join(rq.path, "/")
}

// appSecretProof is hex(HMAC-SHA256(app secret, access token)).
func appSecretProof(secret, token string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(token))
	return hex.EncodeToString(mac.Sum(nil))
}

// build encodes rq once; the returned function makes a fresh *http.Request per attempt.
func (g *Graph) build(ctx context.Context, rq request) (func() (*http.Request, error), error) {
	var u url.URL
	var params url.Values
	if rq.next != nil {
		u = *rq.next
		params = u.Query()
	} else {
		u = *g.base
		segs := make([]string, 0, len(rq.path))
		for _, s := range rq.path {
			segs = append(segs, url.PathEscape(s))
		}
		u.Path = strings.TrimRight(u.Path, "/") + "/" + g.cfg.Version + "/" + strings.Join(rq.path, "/")
		u.RawPath = strings.TrimRight(g.base.EscapedPath(), "/") + "/" + g.cfg.Version + "/" + strings.Join(segs, "/")
		params = url.Values{}
	}
	for k, vs := range rq.params {
		params[k] = vs
	}
	if rq.token != "" {
		params.Set("access_token", rq.token)
		if g.cfg.AppSecret != "" {
			params.Set("appsecret_proof", appSecretProof(g.cfg.AppSecret, rq.token))
		}
	}
	var body []byte
	var contentType string
	switch {
	case rq.method == http.MethodGet:
		u.RawQuery = params.Encode()
	case rq.file != nil:
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, vs := range params {
			for _, v := range vs {
				if err := mw.WriteField(k, v); err != nil {
					return nil, fmt.Errorf("facebook: %s: multipart: %w", rq.op(), err)
				}
			}
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, rq.file.field, rq.file.name))
		h.Set("Content-Type", http.DetectContentType(rq.file.data))
		part, err := mw.CreatePart(h)
		if err == nil {
			_, err = part.Write(rq.file.data)
		}
		if err == nil {
			err = mw.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("facebook: %s: multipart: %w", rq.op(), err)
		}
		body, contentType = buf.Bytes(), mw.FormDataContentType()
	default:
		body, contentType = []byte(params.Encode()), "application/x-www-form-urlencoded"
	}
	target := u.String()
	return func() (*http.Request, error) {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, rq.method, target, rd)
		if err != nil {
			return nil, fmt.Errorf("facebook: %s: %w", rq.op(), redact(err))
		}
		req.Header.Set("Accept", "application/json")
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		return req, nil
	}, nil
}

// call makes rq, retrying retryable errors with Backoff when rq.retry, and decodes a 2xx
// JSON body into out.
func (g *Graph) call(ctx context.Context, rq request, out any) error {
	newReq, err := g.build(ctx, rq)
	if err != nil {
		return err
	}
	attempts := 1
	if rq.retry {
		attempts = g.cfg.MaxAttempts
	}
	for attempt := 0; ; attempt++ {
		err := g.once(newReq, out)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return &canceledError{op: rq.op(), ctx: ctx.Err(), last: err}
		}
		if attempt+1 >= attempts || !IsRetryable(err) {
			if attempt > 0 {
				return fmt.Errorf("facebook: %s (attempt %d): %w", rq.op(), attempt+1, err)
			}
			return fmt.Errorf("facebook: %s: %w", rq.op(), err)
		}
		timer := time.NewTimer(Backoff(attempt, g.cfg.BaseDelay, g.cfg.MaxDelay, g.rnd))
		select {
		case <-ctx.Done():
			timer.Stop()
			return &canceledError{op: rq.op(), ctx: ctx.Err(), last: err}
		case <-timer.C:
		}
	}
}

// once makes one attempt.
func (g *Graph) once(newReq func() (*http.Request, error), out any) error {
	req, err := newReq()
	if err != nil {
		return err
	}
	resp, err := g.cfg.HTTPClient.Do(req)
	if err != nil {
		return redact(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("reading the response: %w", redact(err))
	}
	if len(data) > MaxResponseBytes {
		return fmt.Errorf("%w: body larger than %d bytes", ErrUnexpectedResponse, MaxResponseBytes)
	}
	if ge := parseGraphError(resp.StatusCode, data); ge != nil {
		return ge
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: HTTP %d: %w (body %q)", ErrUnexpectedResponse, resp.StatusCode, err, excerpt(data))
	}
	return nil
}

// parseGraphError returns the *GraphError of a non-2xx answer, or of a 2xx one whose body
// is an error object; nil otherwise.
func parseGraphError(status int, data []byte) *GraphError {
	var body struct {
		Error *struct {
			Message   string `json:"message"`
			Type      string `json:"type"`
			Code      int    `json:"code"`
			Subcode   int    `json:"error_subcode"`
			FBTraceID string `json:"fbtrace_id"`
		} `json:"error"`
	}
	parsed := json.Unmarshal(data, &body) == nil && body.Error != nil
	if status/100 == 2 && !parsed {
		return nil
	}
	if !parsed {
		return &GraphError{HTTPStatus: status, Message: excerpt(data)}
	}
	e := body.Error
	return &GraphError{
		HTTPStatus: status, Code: e.Code, Subcode: e.Subcode, Type: e.Type,
		Message: e.Message, FBTraceID: e.FBTraceID,
	}
}

// excerpt is a short, single-line, valid UTF-8 prefix of a body.
func excerpt(data []byte) string {
	const n = 200
	s := strings.Join(strings.Fields(string(data[:min(len(data), 4*n)])), " ")
	s = strings.ToValidUTF8(s, "")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

// redact drops the query (tokens, secrets, codes) from the URL of a *url.Error.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery, u.Fragment, u.User = "", "", nil
			ue.URL = u.String()
		} else {
			ue.URL = "(unparsable URL)"
		}
	}
	return err
}
