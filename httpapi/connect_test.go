package httpapi_test

// Connecting a Facebook page: email verification (codes through the mail queue and a real
// SMTP exchange with the sink), the login flow against the fake Graph API and its dialog.

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/httpapi"
	"github.com/voluntree/voluntree/internal/fakegraph"
	"github.com/voluntree/voluntree/internal/smtpsink"
	"github.com/voluntree/voluntree/mail"
	"github.com/voluntree/voluntree/redisstore"
)

// movableClock is a clock tests move forward.
type movableClock struct{ offset atomic.Int64 }

func (c *movableClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *movableClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

type connectEnv struct {
	*adminEnv
	clock *movableClock
	sink  *smtpsink.Sink
	fg    *fakegraph.Server
}

const (
	fbAppID     = "app-1"
	fbAppSecret = "app-secret"
)

// newConnectEnv is an admin API whose mail goes through the queue and a worker to an SMTP
// sink, and whose Facebook is the fake Graph API.
func newConnectEnv(t *testing.T, adjust func(*httpapi.Config)) *connectEnv {
	t.Helper()
	sink, err := smtpsink.Start(smtpsink.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	fg := fakegraph.New(fakegraph.Config{AppID: fbAppID, AppSecret: fbAppSecret, RequireAppSecretProof: true})
	t.Cleanup(fg.Close)
	graph, err := facebook.NewGraph(facebook.GraphConfig{BaseURL: fg.URL, DialogURL: fg.URL, AppID: fbAppID, AppSecret: fbAppSecret, BaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	clock := &movableClock{}
	e := newAdminEnv(t, func(c *httpapi.Config) {
		c.Now = clock.Now
		st := c.Store.(*redisstore.Store) // newAdminEnv's store
		c.Mail = mail.NewQueue(st.Client(), st.Keys())
		c.Facebook = graph
		if adjust != nil {
			adjust(c)
		}
	})
	sender, err := mail.NewSMTPSender(sink.URL() + "?from=" + url.QueryEscape("Voluntree <noreply@voluntree.example>"))
	if err != nil {
		t.Fatal(err)
	}
	w := mail.NewWorker(e.rdb, e.store.Keys(), sender, mail.WorkerConfig{Block: 50 * time.Millisecond}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &connectEnv{adminEnv: e, clock: clock, sink: sink, fg: fg}
}

var codePattern = regexp.MustCompile(`code is: (\d{6})`)

// sendCode asks for a code for email and returns it as read from the n-th email the SMTP
// sink received.
func (e *connectEnv) sendCode(t *testing.T, token, email string, n int) string {
	t.Helper()
	status, body := e.do(t, token, "POST", "/api/v1/me/email", map[string]string{"email": email})
	if status != 202 {
		t.Fatalf("send code: %d %s", status, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := e.sink.Wait(ctx, n)
	if err != nil {
		t.Fatalf("waiting for email %d: %v", n, err)
	}
	m := msgs[n-1]
	text, err := m.Text()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.To, []string{email}) {
		t.Fatalf("email to %v, want %s", m.To, email)
	}
	code := codePattern.FindStringSubmatch(text)
	if code == nil || !strings.HasPrefix(m.Subject(), code[1]) {
		t.Fatalf("no code in email %q / %q", m.Subject(), text)
	}
	return code[1]
}

func (e *connectEnv) verify(t *testing.T, token, code string) (int, map[string]any) {
	t.Helper()
	status, body := e.do(t, token, "POST", "/api/v1/me/email/verify", map[string]string{"code": code})
	return status, decodeObject(t, body)
}

func (e *connectEnv) verified(t *testing.T, orgID string) bool {
	t.Helper()
	org, err := e.store.Org(context.Background(), orgID)
	if err != nil {
		t.Fatal(err)
	}
	return org.EmailVerifiedAt != nil
}

func TestEmailVerification(t *testing.T) {
	e := newConnectEnv(t, nil)
	token := e.org(t, "o1")

	for _, tc := range []struct{ body, field string }{
		{`{"email":"not an address"}`, "email"},
		{`{"email":"Ada <ada@example.org>"}`, "email"},
		{`{}`, "email"}, // the organization has no email yet
		{`{"mail":"ada@example.org"}`, "mail"},
	} {
		status, body := e.do(t, token, "POST", "/api/v1/me/email", tc.body)
		if got := decodeObject(t, body); status != 400 || got["field"] != tc.field {
			t.Errorf("%s: %d %s, want 400 about %s", tc.body, status, body, tc.field)
		}
	}
	if status, body := e.do(t, "", "POST", "/api/v1/me/email", `{"email":"ada@example.org"}`); status != 401 {
		t.Fatalf("without a token: %d %s", status, body)
	}
	if status, got := e.verify(t, token, "123456"); status != 409 {
		t.Fatalf("verify with no code pending: %d %v", status, got)
	}

	code := e.sendCode(t, token, "ada@example.org", 1)
	status, body, h := request(t, "POST", e.url("/api/v1/me/email"), []byte(`{"email":"ada@example.org"}`),
		map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"})
	if wait, err := strconv.Atoi(h.Get("Retry-After")); status != 429 || err != nil || wait < 1 || wait > 60 {
		t.Fatalf("second code at once: %d %s Retry-After %q", status, body, h.Get("Retry-After"))
	}
	status, body = e.do(t, token, "GET", "/api/v1/me/email", nil)
	if got := decodeObject(t, body); status != 200 || got["verified_at"] != nil || got["pending"].(map[string]any)["attempts_left"] != float64(3) {
		t.Fatalf("pending: %d %s", status, body)
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if status, got := e.verify(t, token, wrong); status != 400 || got["field"] != "code" || !strings.Contains(got["error"].(string), "2 attempt") {
		t.Fatalf("wrong code: %d %v", status, got)
	}
	if status, got := e.verify(t, token, "12a456"); status != 400 || got["field"] != "code" {
		t.Fatalf("malformed code: %d %v", status, got)
	}
	// Another organization's admin cannot use the code, even for the same address.
	other := e.org(t, "o2")
	otherCode := e.sendCode(t, other, "ada@example.org", 2)
	if otherCode != code {
		if status, got := e.verify(t, other, code); status != 400 || got["field"] != "code" || e.verified(t, "o2") {
			t.Fatalf("o2 with o1's code: %d %v", status, got)
		}
	}
	status, got := e.verify(t, token, code)
	if status != 200 || got["email"] != "ada@example.org" || got["verified_at"] == nil || got["pending"] != nil || !e.verified(t, "o1") {
		t.Fatalf("right code: %d %v", status, got)
	}
	if status, got := e.verify(t, token, code); status != 409 {
		t.Fatalf("the code twice: %d %v", status, got)
	}
	// Asking for the verified address again sends nothing.
	status, body = e.do(t, token, "POST", "/api/v1/me/email", `{}`)
	if status != 200 || len(e.sink.Messages()) != 2 {
		t.Fatalf("verified address again: %d %s, %d emails", status, body, len(e.sink.Messages()))
	}
}

func TestEmailCodeLockedAfterThreeWrongCodes(t *testing.T) {
	e := newConnectEnv(t, nil)
	token := e.org(t, "o1")
	code := e.sendCode(t, token, "ada@example.org", 1)
	wrong := []string{"000001", "000002", "000003"}
	for i, w := range wrong {
		if w == code {
			wrong[i] = "000004"
		}
	}
	for i, w := range wrong {
		want := 400
		if i == 2 {
			want = 429 // the third wrong code locks
		}
		if status, got := e.verify(t, token, w); status != want {
			t.Fatalf("wrong code %d: %d %v, want %d", i+1, status, got, want)
		}
	}
	if status, got := e.verify(t, token, code); status != 429 || e.verified(t, "o1") {
		t.Fatalf("right code once locked: %d %v, want 429", status, got)
	}
	e.clock.Advance(2 * time.Minute)
	if status, body := e.do(t, token, "POST", "/api/v1/me/email", `{"email":"ada@example.org"}`); status != 429 {
		t.Fatalf("new code while locked: %d %s", status, body)
	}
	_, body := e.do(t, token, "GET", "/api/v1/me/email", nil)
	if p := decodeObject(t, body)["pending"].(map[string]any); p["locked"] != true || p["attempts_left"] != float64(0) {
		t.Fatalf("pending while locked: %v", p)
	}
	e.clock.Advance(voluntree.EmailCodeTTL)
	code = e.sendCode(t, token, "ada@example.org", 2)
	if status, got := e.verify(t, token, code); status != 200 || !e.verified(t, "o1") {
		t.Fatalf("a new code after the lock: %d %v", status, got)
	}
}

func TestExpiredEmailCodeRefused(t *testing.T) {
	e := newConnectEnv(t, nil)
	token := e.org(t, "o1")
	code := e.sendCode(t, token, "ada@example.org", 1)
	e.clock.Advance(voluntree.EmailCodeTTL)
	status, got := e.verify(t, token, code)
	if status != 400 || got["field"] != "code" || !strings.Contains(got["error"].(string), "expired") || e.verified(t, "o1") {
		t.Fatalf("expired code: %d %v", status, got)
	}
	code = e.sendCode(t, token, "ada@example.org", 2)
	e.clock.Advance(voluntree.EmailCodeTTL - time.Second)
	if status, got := e.verify(t, token, code); status != 200 {
		t.Fatalf("a code just before it expires: %d %v", status, got)
	}
}

func TestOutboxShowsOwnMail(t *testing.T) {
	e := newConnectEnv(t, func(c *httpapi.Config) {
		st := c.Store.(*redisstore.Store)
		c.Outbox = mail.NewQueue(st.Client(), st.Keys())
	})
	a, b := e.org(t, "oa"), e.org(t, "ob")
	outbox := mail.NewOutboxSender(e.rdb, e.store.Keys())
	for _, m := range []mail.Email{
		{ID: "m1", Org: "oa", To: "a@example.org", Subject: "for a", Text: "x"},
		{ID: "m2", Org: "ob", To: "b@example.org", Subject: "for b", Text: "y"},
	} {
		if err := outbox.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	status, body := e.do(t, a, "GET", "/api/v1/outbox", nil)
	items := decodeObject(t, body)["items"].([]any)
	if status != 200 || len(items) != 1 || items[0].(map[string]any)["subject"] != "for a" {
		t.Fatalf("outbox of oa: %d %s", status, body)
	}
	if status, _ := e.do(t, "", "GET", "/api/v1/outbox", nil); status != 401 {
		t.Fatalf("outbox without a token: %d", status)
	}
	status, body = e.do(t, b, "GET", "/api/v1/outbox", nil)
	items = decodeObject(t, body)["items"].([]any)
	if status != 200 || len(items) != 1 || items[0].(map[string]any)["subject"] != "for b" {
		t.Fatalf("outbox of ob: %d %s", status, body)
	}

	plain := newConnectEnv(t, nil)
	tok := plain.org(t, "oa")
	if status, _ := plain.do(t, tok, "GET", "/api/v1/outbox", nil); status != 404 {
		t.Fatalf("outbox with SMTP: %d, want 404", status)
	}
}

// browser is an HTTP client with cookies that follows redirects until it reaches the
// dashboard ("/"), whose URL it returns.
type browser struct {
	c    *http.Client
	home string
}

func newBrowser(t *testing.T, home string) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{home: home}
	b.c = &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == strings.TrimPrefix(home, "http://") && req.URL.Path == "/" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

// connect starts a login with POST /pages/connect (whose cookie this browser keeps) and
// returns the dialog URL.
func (b *browser) connect(t *testing.T, token string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", b.home+"/api/v1/pages/connect", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		URL   string `json:"url"`
		Error string `json:"error"`
	}
	if err := decodeJSONBody(resp, &out); err != nil || resp.StatusCode != 200 || out.URL == "" {
		t.Fatalf("connect: %d %+v %v", resp.StatusCode, out, err)
	}
	return out.URL
}

// visit follows rawURL to the dashboard and returns the dashboard's query.
func (b *browser) visit(t *testing.T, rawURL string) url.Values {
	t.Helper()
	resp, err := b.c.Get(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Path != "/" {
		t.Fatalf("visit %s: %d, Location %q", rawURL, resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query()
}

// verifiedOrg creates an organization with a verified email and returns its token.
func (e *connectEnv) verifiedOrg(t *testing.T, id string) string {
	t.Helper()
	token := e.org(t, id)
	_, err := e.store.UpdateOrg(context.Background(), id, func(o *voluntree.Organization) error {
		now := time.Now().UTC()
		o.Email, o.EmailVerifiedAt = id+"@example.org", &now
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func TestConnectPage(t *testing.T) {
	e := newConnectEnv(t, nil)
	e.fg.AddPage("p1", "Food bank", "tok-p1")
	e.fg.AddPage("p2", "Shelter", "tok-p2")
	e.fg.SetDialogUser("user-tok", "p1", "p2")
	unverified := e.org(t, "o0")
	if status, body := e.do(t, unverified, "POST", "/api/v1/pages/connect", nil); status != 409 {
		t.Fatalf("connect before the email is verified: %d %s", status, body)
	}
	token := e.verifiedOrg(t, "o1")
	e.verifiedOrg(t, "o2")
	e.page(t, "o2", "p2") // p2 belongs to another organization

	b := newBrowser(t, e.url(""))
	dialog := b.connect(t, token)
	u, _ := url.Parse(dialog)
	q := u.Query()
	if q.Get("client_id") != fbAppID || q.Get("redirect_uri") != e.url(httpapi.CallbackPath) || len(q.Get("state")) < 40 ||
		!strings.Contains(q.Get("scope"), "pages_manage_posts") || !strings.Contains(q.Get("scope"), "pages_messaging") {
		t.Fatalf("dialog URL %s", dialog)
	}
	got := b.visit(t, dialog)
	if got.Get("facebook") != "connected" || got.Get("pages") != "1" || !strings.Contains(got.Get("message"), "Shelter: it is connected to another organization") {
		t.Fatalf("dashboard after the login: %v", got)
	}
	pg, err := e.store.Page(context.Background(), "p1")
	if err != nil || pg.OrgID != "o1" || pg.AccessToken != "tok-p1" || pg.Name != "Food bank" || !pg.TokenExpiresAt.IsZero() {
		t.Fatalf("stored page: %+v, %v", pg, err)
	}
	if subs := e.fg.Subscriptions("p1"); !slices.Equal(subs, []string{"feed", "messages", "messaging_postbacks"}) {
		t.Fatalf("p1 subscriptions %v", subs)
	}
	if subs := e.fg.Subscriptions("p2"); len(subs) != 0 {
		t.Fatalf("another organization's page was subscribed: %v", subs)
	}
	if p2, _ := e.store.Page(context.Background(), "p2"); p2.OrgID != "o2" {
		t.Fatalf("p2 changed hands: %+v", p2)
	}
	// The accounts were read with the long-lived token.
	calls := e.fg.Calls()
	var accountsToken string
	for _, c := range calls {
		if c.Path == "/me/accounts" {
			accountsToken = c.Form.Get("access_token")
		}
	}
	if accountsToken != "ll-user-tok" {
		t.Fatalf("/me/accounts read with %q, want the long-lived token", accountsToken)
	}
	status, body := e.do(t, token, "GET", "/api/v1/pages", nil)
	if status != 200 || !strings.Contains(string(body), `"subscribed_fields":["feed","messages","messaging_postbacks"]`) || strings.Contains(string(body), "tok-p1") {
		t.Fatalf("pages: %d %s", status, body)
	}

	// The same callback again: the state was used.
	exchanges := e.fg.CountCalls("GET /oauth/access_token")
	var callback string
	for _, c := range calls {
		if c.Path == "/dialog/oauth" {
			callback = c.Form.Get("redirect_uri") + "?state=" + url.QueryEscape(c.Form.Get("state")) + "&code=again"
		}
	}
	if got := b.visit(t, callback); got.Get("facebook") != "error" || !strings.Contains(got.Get("message"), "unknown, used or expired") {
		t.Fatalf("replayed callback: %v", got)
	}
	// A state we never issued.
	if got := b.visit(t, e.url(httpapi.CallbackPath+"?state=forged&code=c")); got.Get("facebook") != "error" {
		t.Fatalf("forged state: %v", got)
	}
	if got := b.visit(t, e.url(httpapi.CallbackPath+"?code=c")); got.Get("facebook") != "error" {
		t.Fatalf("no state: %v", got)
	}
	// A login started by o1 but finished in another browser (without its cookie): refused
	// before any code is exchanged, so a victim's code cannot connect pages to o1.
	dialog = b.connect(t, token)
	other := newBrowser(t, e.url(""))
	if got := other.visit(t, dialog); got.Get("facebook") != "error" || !strings.Contains(got.Get("message"), "another browser") {
		t.Fatalf("callback in another browser: %v", got)
	}
	if n := e.fg.CountCalls("GET /oauth/access_token"); n != exchanges {
		t.Fatalf("%d code exchanges after refused callbacks, want %d", n, exchanges)
	}
	// That stray callback did not use up the login: its own browser still finishes it.
	if got := b.visit(t, dialog); got.Get("facebook") != "connected" {
		t.Fatalf("the login after a stray callback: %v", got)
	}
	// The admin cancels in the dialog.
	e.fg.DenyDialog()
	if got := b.visit(t, b.connect(t, token)); got.Get("facebook") != "error" || !strings.Contains(got.Get("message"), "canceled") {
		t.Fatalf("denied dialog: %v", got)
	}
	// A state older than ten minutes.
	e.fg.SetDialogUser("user-tok", "p1")
	dialog = b.connect(t, token)
	e.clock.Advance(httpapi.LoginStateTTL + time.Second)
	if got := b.visit(t, dialog); got.Get("facebook") != "error" || !strings.Contains(got.Get("message"), "expired") {
		t.Fatalf("expired state: %v", got)
	}
}

func TestConnectPageGraphFailures(t *testing.T) {
	e := newConnectEnv(t, nil)
	e.fg.AddPage("p1", "Food bank", "tok-p1")
	e.fg.SetDialogUser("user-tok", "p1")
	token := e.verifiedOrg(t, "o1")
	b := newBrowser(t, e.url(""))

	e.fg.FailNext("POST /p1/subscribed_apps", 1, fakegraph.Permanent(200, "(#200) The user must be an administrator of the page"))
	got := b.visit(t, b.connect(t, token))
	if got.Get("facebook") != "error" || !strings.Contains(got.Get("message"), "No page was connected: Food bank: Facebook refused the webhook subscription ((#200) The user must be an administrator") {
		t.Fatalf("subscription refused: %v", got)
	}
	if _, err := e.store.Page(context.Background(), "p1"); voluntree.ErrorCode(err) != voluntree.ENOTFOUND {
		t.Fatalf("a page whose subscription failed was stored: %v", err)
	}
	e.fg.FailNext("GET /me/accounts", 1, fakegraph.Permanent(190, "Error validating access token"))
	if got := b.visit(t, b.connect(t, token)); got.Get("facebook") != "error" || !strings.Contains(got.Get("message"), "Error validating access token") {
		t.Fatalf("accounts refused: %v", got)
	}
	// A transient subscription failure is retried by the client; the page connects.
	e.fg.FailNext("POST /p1/subscribed_apps", 1, fakegraph.ServerError())
	if got := b.visit(t, b.connect(t, token)); got.Get("pages") != "1" {
		t.Fatalf("after a 500: %v", got)
	}
}

func TestConnectPageUnconfigured(t *testing.T) {
	e := newConnectEnv(t, func(c *httpapi.Config) { c.Facebook = nil; c.Mail = nil })
	token := e.verifiedOrg(t, "o1")
	if status, body := e.do(t, token, "POST", "/api/v1/pages/connect", nil); status != 503 || !strings.Contains(string(body), "VOLUNTREE_FB_APP_ID") {
		t.Fatalf("connect without Facebook: %d %s", status, body)
	}
	if status, body := e.do(t, token, "POST", "/api/v1/me/email", `{"email":"a@example.org"}`); status != 503 {
		t.Fatalf("email without mail: %d %s", status, body)
	}
}

func decodeJSONBody(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}
