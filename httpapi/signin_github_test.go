package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/github"
	"github.com/voluntree/voluntree/httpapi"
	"github.com/voluntree/voluntree/internal/fakegithub"
	"github.com/voluntree/voluntree/internal/fakegraph"
	"github.com/voluntree/voluntree/redisstore"
)

// ghBrowser is a cookie-keeping client that does not follow redirects: each step of a sign-in
// is looked at.
type ghBrowser struct {
	t      *testing.T
	client *http.Client
}

func newGHBrowser(t *testing.T) *ghBrowser {
	jar, _ := cookiejar.New(nil)
	return &ghBrowser{t: t, client: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// get returns the status and the Location of a GET.
func (b *ghBrowser) get(u string) (int, string) {
	b.t.Helper()
	resp, err := b.client.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// session returns the browser's session cookie for the server at base ("" when none).
func (b *ghBrowser) session(base string) string {
	u, _ := url.Parse(base)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == httpapi.SessionCookie {
			return c.Value
		}
	}
	return ""
}

// signIn walks GET /auth/github → the fake's dialog → the callback, and returns the callback
// URL and where the callback sent the browser.
func (b *ghBrowser) signIn(base, invitation string) (callback, outcome string) {
	b.t.Helper()
	start := base + "/auth/github"
	if invitation != "" {
		start += "?invitation=" + url.QueryEscape(invitation)
	}
	status, dialog := b.get(start)
	if status != 302 || !strings.Contains(dialog, "/login/oauth/authorize?") {
		b.t.Fatalf("GET /auth/github: %d → %q", status, dialog)
	}
	status, callback = b.get(dialog)
	if status != 302 || !strings.HasPrefix(callback, base+httpapi.GitHubCallback+"?") {
		b.t.Fatalf("the dialog: %d → %q", status, callback)
	}
	status, outcome = b.get(callback)
	if status != 303 {
		b.t.Fatalf("the callback: %d → %q", status, outcome)
	}
	return callback, outcome
}

func signinError(t *testing.T, outcome string) string {
	t.Helper()
	if !strings.HasPrefix(outcome, "/?signin=error&message=") {
		t.Fatalf("outcome %q, want a sign-in error", outcome)
	}
	u, _ := url.Parse(outcome)
	return u.Query().Get("message")
}

func TestGitHubSignIn(t *testing.T) {
	t.Parallel()
	gh := fakegithub.New()
	t.Cleanup(gh.Close)
	client, err := github.New(github.Config{ClientID: gh.ClientID, ClientSecret: gh.ClientSecret, WebURL: gh.URL, APIURL: gh.URL})
	if err != nil {
		t.Fatal(err)
	}
	e := newAdminEnv(t, func(c *httpapi.Config) { c.GitHub = client })
	ctx := context.Background()
	base := "http://" + e.addr
	owner := e.org(t, "org_a")
	ada := &fakegithub.Account{ID: 101, Login: "ada", Name: "Ada Lovelace"}
	gh.SetPrimaryEmail(101, "ada@example.org")
	gh.SetDialogUser(ada)

	// Nobody invited Ada: no organization to sign in to.
	_, outcome := newGHBrowser(t).signIn(base, "")
	if msg := signinError(t, outcome); !strings.Contains(msg, "not a member of any organization") {
		t.Fatalf("uninvited: %q", msg)
	}

	// Invited as an admin: the invitation rides through GitHub and is accepted.
	var inv struct {
		Token string `json:"token"`
	}
	token, _, err := e.store.CreateInvitation(ctx, voluntree.Invitation{OrgID: "org_a", Email: "ada@example.org", Role: voluntree.RoleAdmin}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	inv.Token = token
	b := newGHBrowser(t)
	callback, outcome := b.signIn(base, inv.Token)
	if outcome != "/" || b.session(base) == "" {
		t.Fatalf("invited sign-in ended on %q, session %q", outcome, b.session(base))
	}
	c := cred{cookie: b.session(base)}
	var me struct {
		Role string         `json:"role"`
		User voluntree.User `json:"user"`
	}
	e.mustJSON(t, c, "GET", "/api/v1/me", &me)
	if me.Role != "admin" || me.User.GitHubLogin != "ada" || me.User.Name != "Ada Lovelace" || me.User.Email != "ada@example.org" {
		t.Fatalf("me %+v", me)
	}
	// The callback URL again (a replayed state): refused, no second session.
	if status, outcome := b.get(callback); status != 303 || !strings.Contains(signinError(t, outcome), "expired or was already used") {
		t.Fatalf("replayed callback: %d %q", status, outcome)
	}
	// A forged state.
	if _, outcome := b.get(base + httpapi.GitHubCallback + "?code=x&state=vo_forged"); !strings.Contains(signinError(t, outcome), "expired or was already used") {
		t.Fatalf("forged state: %q", outcome)
	}
	// Another browser finishing Ada's sign-in (it has the callback URL, not the cookie).
	b1 := newGHBrowser(t)
	_, dialog := b1.get(base + "/auth/github")
	_, cb := b1.get(dialog)
	thief := newGHBrowser(t)
	if _, outcome := thief.get(cb); !strings.Contains(signinError(t, outcome), "another browser") || thief.session(base) != "" {
		t.Fatalf("wrong browser: %q", outcome)
	}
	// Its state is spent: the right browser cannot finish it either.
	if _, outcome := b1.get(cb); !strings.Contains(signinError(t, outcome), "already used") {
		t.Fatalf("after the wrong browser: %q", outcome)
	}
	// A person who denies the dialog.
	gh.SetDialogUser(nil)
	if _, outcome := newGHBrowser(t).signIn(base, ""); !strings.Contains(signinError(t, outcome), "cancelled") {
		t.Fatalf("denied: %q", outcome)
	}
	gh.SetDialogUser(ada)

	// The organization's GitHub gate: checked at sign-in…
	e.must(t, 200, owner, "PATCH", "/api/v1/org", map[string]any{"github_org": "acme-gh"}, nil)
	if _, outcome := newGHBrowser(t).signIn(base, ""); !strings.Contains(signinError(t, outcome), "acme-gh") {
		t.Fatalf("gate, not a member: %q", outcome)
	}
	gh.SetOrgs(ada, "acme-gh")
	b2 := newGHBrowser(t)
	if _, outcome := b2.signIn(base, ""); outcome != "/" {
		t.Fatalf("gate, a member: %q", outcome)
	}
	c2 := cred{cookie: b2.session(base)}
	e.mustJSON(t, c2, "GET", "/api/v1/me", &me)
	// …and again as the session goes on: membership lost, the next check ends it.
	gh.SetOrgs(ada)
	e.mustJSON(t, c2, "GET", "/api/v1/me", &me) // checked less than GateRecheck ago: still fine
	if err := e.rdb.HSet(ctx, e.store.Keys().Session(hashOf(c2.cookie)), "checked", time.Now().Add(-2*httpapi.GateRecheck).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	if status, raw := e.call(t, c2, "GET", "/api/v1/me", nil); status != 401 || !strings.Contains(string(raw), "GitHub") {
		t.Fatalf("after losing the gate: %d %s", status, truncate(raw))
	}
	// Revoking the app at GitHub (its token answers 401) does not keep a gated session alive.
	gh.SetOrgs(ada, "acme-gh")
	b3 := newGHBrowser(t)
	if _, outcome := b3.signIn(base, ""); outcome != "/" {
		t.Fatalf("gate, a member again: %q", outcome)
	}
	c3 := cred{cookie: b3.session(base)}
	gh.RevokeGrants(ada)
	if err := e.rdb.HSet(ctx, e.store.Keys().Session(hashOf(c3.cookie)), "checked", time.Now().Add(-2*httpapi.GateRecheck).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	if status, _ := e.call(t, c3, "GET", "/api/v1/me", nil); status != 401 {
		t.Fatalf("after revoking the grant: %d, want 401", status)
	}
	// An invitation to a gated organization is not spent by a sign-in the gate refuses.
	gh.SetOrgs(ada)
	tok2, _, err := e.store.CreateInvitation(ctx, voluntree.Invitation{OrgID: "org_a", Email: "x@example.org", Role: voluntree.RoleViewer}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bob := &fakegithub.Account{ID: 202, Login: "bob", Name: "Bob"}
	gh.SetDialogUser(bob)
	if _, outcome := newGHBrowser(t).signIn(base, tok2); !strings.Contains(signinError(t, outcome), "acme-gh") {
		t.Fatalf("gated invitation: %q", outcome)
	}
	if _, err := e.store.Invitation(ctx, tok2); err != nil {
		t.Fatalf("the refused sign-in spent the invitation: %v", err)
	}
	if n := e.rdb.Exists(ctx, e.store.Keys().Session(hashOf(c2.cookie))).Val(); n != 0 {
		t.Fatal("the gated session is kept")
	}
	// Bad gate names.
	e.mustFail(t, 400, owner, "PATCH", "/api/v1/org", map[string]any{"github_org": "-bad name"})
	e.mustFail(t, 400, owner, "PATCH", "/api/v1/org", map[string]any{"name": ""})
}

func (e *adminEnv) mustJSON(t *testing.T, c cred, method, path string, out any) {
	t.Helper()
	status, raw := e.call(t, c, method, path, nil)
	if status != 200 {
		t.Fatalf("%s %s: %d %s", method, path, status, truncate(raw))
	}
	if err := jsonUnmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
}

func hashOf(token string) string { return redisstore.HashToken(token) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// TestFacebookSignIn: Facebook Login signs an invited person in (the dialog, the code
// exchange, GET /me); a replayed callback fails; a GitHub-gated organization refuses it.
func TestFacebookSignIn(t *testing.T) {
	t.Parallel()
	fg := fakegraph.New(fakegraph.Config{AppID: fbAppID, AppSecret: fbAppSecret, RequireAppSecretProof: true})
	t.Cleanup(fg.Close)
	graph, err := facebook.NewGraph(facebook.GraphConfig{BaseURL: fg.URL, DialogURL: fg.URL, AppID: fbAppID, AppSecret: fbAppSecret, BaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := newAdminEnv(t, func(c *httpapi.Config) { c.FacebookSignIn = graph })
	ctx := context.Background()
	base := "http://" + e.addr
	owner := e.org(t, "org_a")
	fg.SetDialogUser("user-token-bo")
	fg.SetProfile("user-token-bo", fakegraph.Profile{ID: "10001", Name: "Bo Diddley", Email: "bo@example.org"})
	token, _, err := e.store.CreateInvitation(ctx, voluntree.Invitation{OrgID: "org_a", Email: "bo@example.org", Role: voluntree.RoleViewer}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b := newGHBrowser(t)
	status, dialog := b.get(base + "/auth/facebook?invitation=" + url.QueryEscape(token))
	if status != 302 || !strings.Contains(dialog, "/dialog/oauth") || !strings.Contains(dialog, "scope=public_profile%2Cemail") {
		t.Fatalf("GET /auth/facebook: %d → %q", status, dialog)
	}
	status, callback := b.get(dialog)
	if status != 302 || !strings.HasPrefix(callback, base+httpapi.FacebookSignInCallback+"?") {
		t.Fatalf("the dialog: %d → %q", status, callback)
	}
	if status, outcome := b.get(callback); status != 303 || outcome != "/" {
		t.Fatalf("the callback: %d → %q", status, outcome)
	}
	var me struct {
		Role string         `json:"role"`
		User voluntree.User `json:"user"`
	}
	e.mustJSON(t, cred{cookie: b.session(base)}, "GET", "/api/v1/me", &me)
	if me.Role != "viewer" || me.User.FacebookID != "10001" || me.User.Name != "Bo Diddley" || me.User.Email != "bo@example.org" {
		t.Fatalf("me %+v", me)
	}
	if _, outcome := b.get(callback); !strings.Contains(signinError(t, outcome), "already used") {
		t.Fatalf("replayed callback: %q", outcome)
	}
	// A GitHub-gated organization takes GitHub sign-ins only.
	e.must(t, 200, owner, "PATCH", "/api/v1/org", map[string]any{"github_org": "acme-gh"}, nil)
	b2 := newGHBrowser(t)
	_, dialog = b2.get(base + "/auth/facebook")
	_, callback = b2.get(dialog)
	if _, outcome := b2.get(callback); !strings.Contains(signinError(t, outcome), "requires signing in with GitHub") {
		t.Fatalf("gated: %q", outcome)
	}
	// The existing session of that person ends at its next request (it cannot be checked).
	if status, _ := e.call(t, cred{cookie: b.session(base)}, "GET", "/api/v1/me", nil); status != 401 {
		t.Fatalf("a Facebook session in a gated organization: %d, want 401", status)
	}
}
