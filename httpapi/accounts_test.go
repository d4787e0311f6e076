package httpapi_test

// People and credentials: sessions (sign-in link, cookie flags, CSRF, expiry, logout, a
// removed member), roles, API tokens, and every admin route tried with another
// organization's ids.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
	"github.com/voluntree/voluntree/httpapi"
	"github.com/voluntree/voluntree/redisstore"
)

// cred is one way to call the admin API: a token, or a session cookie with its CSRF token.
type cred struct {
	name   string
	token  string
	cookie string
	csrf   string
	role   voluntree.Role
}

func (c cred) header(origin string) map[string]string {
	h := map[string]string{"Content-Type": "application/json"}
	if c.token != "" {
		h["Authorization"] = "Bearer " + c.token
	}
	if c.cookie != "" {
		h["Cookie"] = httpapi.SessionCookie + "=" + c.cookie
		if c.csrf != "" {
			h[httpapi.CSRFHeader] = c.csrf
		}
		if origin != "" {
			h["Origin"] = origin
		}
	}
	return h
}

// call sends a request with c; body is nil, a string or a value (JSON).
func (e *adminEnv) call(t *testing.T, c cred, method, path string, body any) (int, []byte) {
	t.Helper()
	status, out, _ := request(t, method, e.url(path), bodyBytes(t, body), c.header("http://"+e.addr))
	return status, out
}

// member makes a user with role in org and returns both a session and a token of that role.
func (e *adminEnv) member(t *testing.T, org string, role voluntree.Role) (session, token cred, user voluntree.User) {
	t.Helper()
	ctx := context.Background()
	user = voluntree.User{ID: voluntree.NewID("u"), Name: string(role) + " of " + org, CreatedAt: time.Now().UTC()}
	if err := e.store.SaveUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.SetMember(ctx, org, user.ID, role); err != nil {
		t.Fatal(err)
	}
	ck, sess, err := e.store.CreateSession(ctx, user.ID, org, "link", time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := e.store.CreateAdminToken(ctx, org, redisstore.TokenOptions{Label: string(role), Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return cred{name: string(role) + " session", cookie: ck, csrf: sess.CSRF, role: role},
		cred{name: string(role) + " token", token: tok, role: role}, user
}

// snapshot reads every key of the test's prefix with its value (DUMP), to tell that nothing
// changed. Keys that change on any authenticated request (sessions' idle expiry, the token
// lists' clean-up) are left out.
func (e *adminEnv) snapshot(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	prefix := e.store.Keys().Session("")
	iter := e.rdb.Scan(ctx, 0, strings.TrimSuffix(prefix, ":session:")+":*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if strings.HasPrefix(k, prefix) {
			continue
		}
		v, err := e.rdb.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAdminRoutesRefuseOtherOrganizations: two organizations, each with an owner, an admin
// and a viewer, each with a session and a token. Every admin route (as registered: a new one
// cannot be forgotten), tried with each of A's credentials on B's ids, answers 403 or 404 and
// changes nothing. And every route above a viewer refuses A's viewer on A's own ids.
func TestAdminRoutesRefuseOtherOrganizations(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, func(c *httpapi.Config) { c.Conversations = refusingConversations{t} })
	ctx := context.Background()
	ownerA := e.org(t, "org_a")
	ownerB := e.org(t, "org_b")
	e.page(t, "org_a", "1001")
	e.page(t, "org_b", "2002")
	suA := e.createSignup(t, ownerA, "A's signup")
	suB := e.createSignup(t, ownerB, "B's signup")
	poA := e.createPost(t, ownerA, map[string]any{"signup_id": suA.ID, "page_id": "1001", "message": "A", "draft": true})
	poB := e.createPost(t, ownerB, map[string]any{"signup_id": suB.ID, "page_id": "2002", "message": "B", "draft": true})
	var creds []cred
	var usersA, usersB []voluntree.User
	for _, r := range []voluntree.Role{voluntree.RoleOwner, voluntree.RoleAdmin, voluntree.RoleViewer} {
		s, tk, u := e.member(t, "org_a", r)
		creds = append(creds, s, tk)
		usersA = append(usersA, u)
		_, _, u = e.member(t, "org_b", r)
		usersB = append(usersB, u)
	}
	var tokensB struct {
		Items []redisstore.AdminToken `json:"items"`
	}
	e.must(t, 200, ownerB, "GET", "/api/v1/tokens", nil, &tokensB)
	var tokensA struct {
		Items []redisstore.AdminToken `json:"items"`
	}
	e.must(t, 200, ownerA, "GET", "/api/v1/tokens", nil, &tokensA)
	// A conversation of each organization.
	for org, page := range map[string]string{"org_a": "1001", "org_b": "2002"} {
		st, _ := proto.Marshal(&grainpb.ConversationState{OrgId: org, Channel: "messenger", Stage: "invited"})
		if err := e.store.SaveConversation(ctx, page+":someone", st); err != nil {
			t.Fatal(err)
		}
	}
	invA, invB := e.invite(t, ownerA, "viewer"), e.invite(t, ownerB, "viewer")
	idsA := map[string]string{"signups": suA.ID, "posts": poA.ID, "slot": suA.Slots[0].ID, "conversations": "1001:someone",
		"org": "org_a", "members": usersA[2].ID, "tokens": tokensA.Items[0].ID, "invitations": invA, "models": "v1",
		"uploads": "mu_0123456789abcdef0123", "chunks": "0"}
	idsB := map[string]string{"signups": suB.ID, "posts": poB.ID, "slot": suB.Slots[0].ID, "conversations": "2002:someone",
		"org": "org_b", "members": usersB[1].ID, "tokens": tokensB.Items[0].ID, "invitations": invB, "models": "v1",
		"uploads": "mu_0123456789abcdef0123", "chunks": "0"}
	param := regexp.MustCompile(`:[a-z]+`)
	fill := func(path string, ids map[string]string) string {
		parts := strings.Split(path, "/")
		for i, p := range parts {
			if !strings.HasPrefix(p, ":") {
				continue
			}
			switch p {
			case ":slot":
				parts[i] = ids["slot"]
			case ":org":
				parts[i] = ids["org"]
			default: // the id of the collection before it
				parts[i] = ids[parts[i-1]]
			}
		}
		return strings.Join(parts, "/")
	}
	// Bodies that would succeed on one's own ids: a refusal is the gate's, not a bad body's.
	bodies := map[string]any{
		"PUT /api/v1/signups/:id":                 signupBody("taken over"),
		"PATCH /api/v1/signups/:id":               map[string]any{"disabled": true},
		"PATCH /api/v1/members/:user":             map[string]any{"role": "viewer"},
		"POST /api/v1/conversations/:id/messages": map[string]any{"text": "hello"},
		"POST /api/v1/signups":                    signupBody("new"),
		"POST /api/v1/posts":                      map[string]any{"signup_id": suA.ID, "page_id": "1001", "message": "x", "draft": true},
		"POST /api/v1/tokens":                     map[string]any{"label": "x", "role": "viewer"},
		"POST /api/v1/session/org":                map[string]any{"org_id": "org_b"},
		"POST /api/v1/me/email":                   map[string]any{"email": "a@example.org"},
		"POST /api/v1/me/email/verify":            map[string]any{"code": "123456"},
		"POST /api/v1/conversations/:id/release":  nil,
		"POST /api/v1/members/:user":              nil,
	}
	routes := e.srv.AdminRoutes()
	if len(routes) < 30 {
		t.Fatalf("only %d admin routes registered", len(routes))
	}
	before := e.snapshot(t)
	withIDs := 0
	for _, r := range routes {
		key := r.Method + " " + r.Path
		if !param.MatchString(r.Path) {
			continue // acts on the caller's own organization: checked below for changes to B
		}
		withIDs++
		for _, c := range creds {
			status, raw := e.call(t, c, r.Method, fill(r.Path, idsB), bodies[key])
			if status != 403 && status != 404 {
				t.Errorf("%s with A's %s on B's ids: %d %s, want 403 or 404", key, c.name, status, truncate(raw))
			}
		}
	}
	// Refused requests changed nothing at all.
	refused := e.snapshot(t)
	for k, v := range before {
		if refused[k] != v {
			t.Errorf("key %s changed by refused requests", k)
		}
	}
	for k := range refused {
		if _, ok := before[k]; !ok {
			t.Errorf("key %s appeared through refused requests", k)
		}
	}
	// Routes without ids, with every credential of A: whatever they do, it is in A.
	for _, r := range routes {
		key := r.Method + " " + r.Path
		if param.MatchString(r.Path) {
			continue
		}
		for _, c := range creds {
			e.call(t, c, r.Method, r.Path, bodies[key])
		}
	}
	after := e.snapshot(t)
	for k, v := range before {
		if !strings.Contains(k, "org_b") && !strings.Contains(k, suB.ID) && !strings.Contains(k, poB.ID) && !strings.Contains(k, "2002") {
			continue
		}
		if after[k] != v {
			t.Errorf("B's key %s changed", k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok && (strings.Contains(k, "org_b") || strings.Contains(k, "2002")) {
			t.Errorf("B's key %s appeared", k)
		}
	}
	if withIDs < 15 {
		t.Fatalf("only %d routes with ids", withIDs)
	}
	// Below the route's role, on one's own organization: 403, nothing changes.
	for _, c := range creds {
		for _, r := range routes {
			if c.role.AtLeast(r.Role) {
				continue
			}
			status, raw := e.call(t, c, r.Method, fill(r.Path, idsA), bodies[r.Method+" "+r.Path])
			if status != 403 {
				t.Errorf("%s %s as A's %s: %d %s, want 403 (needs %s)", r.Method, r.Path, c.name, status, truncate(raw), r.Role)
			}
		}
	}
}

// refusingConversations fails the test when a conversation action gets through.
type refusingConversations struct{ t *testing.T }

func (r refusingConversations) Reply(context.Context, string, string) (string, error) {
	r.t.Error("a conversation reply got through")
	return "", fmt.Errorf("refused")
}

func (r refusingConversations) Release(context.Context, string) error {
	r.t.Error("a conversation release got through")
	return fmt.Errorf("refused")
}

// TestSignInLinkAndSession: the one-time link signs a browser in (a confirmation page first,
// then a POST), with the cookie's flags; the session reads without CSRF and changes only
// with it and from this site; logout and a removed member end it; a used link fails.
func TestSignInLinkAndSession(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	ctx := context.Background()
	e.org(t, "org_a")
	token, link, err := e.store.LoginLinkFor(ctx, "org_a", "", "Ada", httpapi.LoginLinkTTL)
	if err != nil {
		t.Fatal(err)
	}
	// GET shows a form and spends nothing (mail scanners open links).
	status, page, _ := request(t, "GET", e.url("/auth/link?token="+url.QueryEscape(token)), nil, nil)
	if status != 200 || !strings.Contains(string(page), `method="post"`) || !strings.Contains(string(page), token) {
		t.Fatalf("link page: %d %s", status, truncate(page))
	}
	form := []byte("token=" + url.QueryEscape(token))
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://" + e.addr}
	// From another site: refused, and the link is still good.
	h["Origin"] = "https://evil.example"
	if status, _, _ := postNoRedirect(t, e.url("/auth/link"), form, h); status != 403 {
		t.Fatalf("cross-site POST /auth/link: %d, want 403", status)
	}
	h["Origin"] = "http://" + e.addr
	status, _, hdr := postNoRedirect(t, e.url("/auth/link"), form, h)
	if status != 303 || hdr.Get("Location") != "/" {
		t.Fatalf("POST /auth/link: %d, Location %q", status, hdr.Get("Location"))
	}
	ck := sessionCookieOf(t, hdr)
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.Path != "/" || ck.MaxAge < 6*24*3600 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, not Secure on http, Path=/, kept 7 days", ck)
	}
	if status, _, _ := postNoRedirect(t, e.url("/auth/link"), form, h); status != 401 {
		t.Fatalf("a used link: %d, want 401", status)
	}
	c := cred{name: "session", cookie: ck.Value}
	var me struct {
		Role      string         `json:"role"`
		Via       string         `json:"via"`
		CSRF      string         `json:"csrf_token"`
		User      voluntree.User `json:"user"`
		Orgs      []string       `json:"orgs"`
		Org       struct{ ID string }
		ExpiresAt time.Time `json:"session_expires_at"`
	}
	status, raw := e.call(t, c, "GET", "/api/v1/me", nil)
	if status != 200 || json.Unmarshal(raw, &me) != nil || me.Role != "owner" || me.Via != "session" || me.CSRF == "" ||
		me.User.ID != link.UserID || !slices.Equal(me.Orgs, []string{"org_a"}) || me.Org.ID != "org_a" {
		t.Fatalf("GET /me with the session: %d %s", status, truncate(raw))
	}
	// A change without the CSRF header, with a wrong one, or from another site: 403.
	body := signupBody("by session")
	if status, raw := e.call(t, c, "POST", "/api/v1/signups", body); status != 403 {
		t.Fatalf("POST without CSRF: %d %s", status, truncate(raw))
	}
	c.csrf = me.CSRF + "x"
	if status, _ := e.call(t, c, "POST", "/api/v1/signups", body); status != 403 {
		t.Fatalf("POST with a wrong CSRF token: %d", status)
	}
	c.csrf = me.CSRF
	evil := c.header("https://evil.example")
	if status, _, _ := request(t, "POST", e.url("/api/v1/signups"), mustMarshal(t, body), evil); status != 403 {
		t.Fatalf("POST from another Origin: %d", status)
	}
	if n := e.signupCount(t, "org_a"); n != 0 {
		t.Fatalf("%d signups made by refused requests", n)
	}
	if status, raw := e.call(t, c, "POST", "/api/v1/signups", body); status != 201 {
		t.Fatalf("POST with CSRF: %d %s", status, truncate(raw))
	}
	// The live feed's ticket: with the session and its CSRF token; not from another site.
	if status, _ := e.call(t, c, "POST", "/api/v1/ws-tickets", nil); status != 200 {
		t.Fatalf("ticket with the session: %d", status)
	}
	if status, _, _ := request(t, "POST", e.url("/api/v1/ws-tickets"), nil, evil); status != 403 {
		t.Fatalf("ticket from another Origin: %d", status)
	}
	// Logout ends it at once.
	if status, _ := e.call(t, c, "POST", "/auth/logout", nil); status != 204 {
		t.Fatalf("logout: %d", status)
	}
	if status, _ := e.call(t, c, "GET", "/api/v1/me", nil); status != 401 {
		t.Fatalf("after logout: %d, want 401", status)
	}

	// A removed member's session ends at once.
	s2, _, u2 := e.member(t, "org_a", voluntree.RoleAdmin)
	if status, _ := e.call(t, s2, "GET", "/api/v1/me", nil); status != 200 {
		t.Fatalf("admin session: %d", status)
	}
	ownerSess, _, _ := e.member(t, "org_a", voluntree.RoleOwner)
	if status, raw := e.call(t, ownerSess, "DELETE", "/api/v1/members/"+u2.ID, nil); status != 204 {
		t.Fatalf("remove member: %d %s", status, truncate(raw))
	}
	if status, _ := e.call(t, s2, "GET", "/api/v1/me", nil); status != 401 {
		t.Fatalf("a removed member's session: %d, want 401", status)
	}
	// A demoted member loses the role at once.
	s3, _, u3 := e.member(t, "org_a", voluntree.RoleAdmin)
	if status, _ := e.call(t, ownerSess, "PATCH", "/api/v1/members/"+u3.ID, map[string]any{"role": "viewer"}); status != 200 {
		t.Fatalf("demote: %d", status)
	}
	if status, _ := e.call(t, s3, "POST", "/api/v1/signups", signupBody("viewer's")); status != 403 {
		t.Fatalf("a demoted member's change: %d, want 403", status)
	}
}

// TestSessionCookieSecureOnHTTPS: behind an https public URL the cookie is Secure.
func TestSessionCookieSecureOnHTTPS(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, func(c *httpapi.Config) { c.PublicURL = "https://voluntree.example.org" })
	e.org(t, "org_a")
	token, _, err := e.store.LoginLinkFor(context.Background(), "org_a", "", "Ada", httpapi.LoginLinkTTL)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://voluntree.example.org"}
	status, _, hdr := postNoRedirect(t, e.url("/auth/link"), []byte("token="+url.QueryEscape(token)), h)
	if status != 303 || !sessionCookieOf(t, hdr).Secure {
		t.Fatalf("POST /auth/link: %d, cookie %+v; want a Secure cookie", status, sessionCookieOf(t, hdr))
	}
}

// TestTokensAPI: owners list, create (no more power than theirs) and revoke tokens; a revoked
// token is refused at once.
func TestTokensAPI(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	owner := e.org(t, "org_a")
	var created struct {
		Token  string                `json:"token"`
		Record redisstore.AdminToken `json:"record"`
	}
	e.must(t, 201, owner, "POST", "/api/v1/tokens", map[string]any{"label": "ci", "role": "viewer", "expires_in": 3600}, &created)
	if !strings.HasPrefix(created.Token, "vt_") || created.Record.Role != "viewer" || created.Record.ExpiresAt.IsZero() {
		t.Fatalf("created %+v", created)
	}
	e.must(t, 200, created.Token, "GET", "/api/v1/signups", nil, nil)
	e.mustFail(t, 403, created.Token, "POST", "/api/v1/signups", signupBody("viewer"))
	var list struct {
		Items []redisstore.AdminToken `json:"items"`
	}
	e.must(t, 200, owner, "GET", "/api/v1/tokens", nil, &list)
	i := slices.IndexFunc(list.Items, func(r redisstore.AdminToken) bool { return r.ID == created.Record.ID })
	if len(list.Items) != 2 || i < 0 || list.Items[i].Label != "ci" || list.Items[i].Role != "viewer" {
		t.Fatalf("tokens %+v", list.Items)
	}
	for _, bad := range []map[string]any{{"role": "root"}, {"expires_in": -1}, {"expires_in": 1 << 40}, {"label": strings.Repeat("x", 101)}, {"extra": 1}} {
		e.mustFail(t, 400, owner, "POST", "/api/v1/tokens", bad)
	}
	// An admin token cannot make an owner token (and cannot manage tokens at all).
	var adminTok struct {
		Token string `json:"token"`
	}
	e.must(t, 201, owner, "POST", "/api/v1/tokens", map[string]any{"role": "admin"}, &adminTok)
	e.mustFail(t, 403, adminTok.Token, "POST", "/api/v1/tokens", map[string]any{"role": "owner"})
	// Revoked: refused at once, by every route.
	e.must(t, 204, owner, "DELETE", "/api/v1/tokens/"+created.Record.ID, nil, nil)
	e.mustFail(t, 401, created.Token, "GET", "/api/v1/signups", nil)
	e.mustFail(t, 404, owner, "DELETE", "/api/v1/tokens/"+created.Record.ID, nil)
}

func sessionCookieOf(t *testing.T, h http.Header) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == httpapi.SessionCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", httpapi.SessionCookie, h.Values("Set-Cookie"))
	return nil
}

// signupCount is how many signups org has.
func (e *adminEnv) signupCount(t *testing.T, org string) int {
	t.Helper()
	p, err := e.store.Signups(context.Background(), org, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	return p.Total
}

// postNoRedirect sends a POST and returns its answer as is (a redirect is not followed).
func postNoRedirect(t *testing.T, url string, body []byte, header map[string]string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw, resp.Header
}

// invite makes an invitation through the API and returns its id.
func (e *adminEnv) invite(t *testing.T, token, role string) string {
	t.Helper()
	var out struct {
		Invitation voluntree.Invitation `json:"invitation"`
		Link       string               `json:"link"`
	}
	e.must(t, 201, token, "POST", "/api/v1/invitations", map[string]any{"email": "new@example.org", "role": role}, &out)
	return out.Invitation.ID
}

// TestInvitations: an owner invites by email; without a mail server the answer carries the
// link; a signed-in person accepts it from its page and the session then acts for the new
// organization; a used or revoked invitation fails.
func TestInvitations(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	ownerA := e.org(t, "org_a")
	e.org(t, "org_b")
	var out struct {
		Invitation voluntree.Invitation `json:"invitation"`
		Link       string               `json:"link"`
	}
	e.must(t, 201, ownerA, "POST", "/api/v1/invitations", map[string]any{"email": "Cy@Example.org", "role": "admin"}, &out)
	if out.Invitation.Role != "admin" || out.Invitation.OrgID != "org_a" || !strings.HasPrefix(out.Link, "http://"+e.addr+"/invite?token=vi_") {
		t.Fatalf("created %+v", out)
	}
	for _, bad := range []map[string]any{{"email": "not an address", "role": "admin"}, {"email": "a@example.org", "role": "god"}, {"email": "a@example.org"}} {
		e.mustFail(t, 400, ownerA, "POST", "/api/v1/invitations", bad)
	}
	var list struct {
		Items []voluntree.Invitation `json:"items"`
	}
	e.must(t, 200, ownerA, "GET", "/api/v1/invitations", nil, &list)
	if len(list.Items) != 1 || list.Items[0].ID != out.Invitation.ID {
		t.Fatalf("invitations %+v", list.Items)
	}
	// Cy is signed in to org_b; the invitation's page offers to accept.
	cy, _, cyUser := e.member(t, "org_b", voluntree.RoleViewer)
	status, page, _ := request(t, "GET", out.Link, nil, map[string]string{"Cookie": httpapi.SessionCookie + "=" + cy.cookie})
	if status != 200 || !strings.Contains(string(page), "Org org_a") || !strings.Contains(string(page), `action="/auth/invitation"`) {
		t.Fatalf("invitation page: %d %s", status, truncate(page))
	}
	u, _ := url.Parse(out.Link)
	form := []byte("token=" + url.QueryEscape(u.Query().Get("token")))
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://" + e.addr,
		"Cookie": httpapi.SessionCookie + "=" + cy.cookie}
	if status, _, hdr := postNoRedirect(t, e.url("/auth/invitation"), form, h); status != 303 || hdr.Get("Location") != "/" {
		t.Fatalf("accept: %d %q", status, hdr.Get("Location"))
	}
	var me struct {
		Role string   `json:"role"`
		Orgs []string `json:"orgs"`
		Org  struct{ ID string }
	}
	e.mustJSON(t, cy, "GET", "/api/v1/me", &me)
	if me.Org.ID != "org_a" || me.Role != "admin" || !slices.Equal(me.Orgs, []string{"org_a", "org_b"}) {
		t.Fatalf("after accepting: %+v", me)
	}
	if m, err := e.store.Member(context.Background(), "org_a", cyUser.ID); err != nil || m.Role != voluntree.RoleAdmin {
		t.Fatalf("membership %+v, %v", m, err)
	}
	// Used: its page is gone, and a second accept fails.
	if status, _, _ := request(t, "GET", out.Link, nil, nil); status != 404 {
		t.Fatalf("a used invitation's page: %d", status)
	}
	if status, _, hdr := postNoRedirect(t, e.url("/auth/invitation"), form, h); status != 303 || !strings.HasPrefix(hdr.Get("Location"), "/?signin=error") {
		t.Fatalf("accepting twice: %d %q", status, hdr.Get("Location"))
	}
	// Revoked before use.
	id := e.invite(t, ownerA, "viewer")
	e.must(t, 204, ownerA, "DELETE", "/api/v1/invitations/"+id, nil, nil)
	e.mustFail(t, 404, ownerA, "DELETE", "/api/v1/invitations/"+id, nil)
}

// TestTokensFollowTheirMaker: a removed member's tokens are revoked with them, a demoted
// member's tokens above the new role too, and a token made by a token lives no longer than it.
func TestTokensFollowTheirMaker(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	ctx := context.Background()
	owner := e.org(t, "org_a")
	ada, _, adaUser := e.member(t, "org_a", voluntree.RoleOwner)
	e.member(t, "org_a", voluntree.RoleOwner) // so that Ada is not the last owner
	mint := func(c cred, role string, expires int) string {
		t.Helper()
		status, raw := e.call(t, c, "POST", "/api/v1/tokens", map[string]any{"role": role, "expires_in": expires})
		var out struct {
			Token  string                `json:"token"`
			Record redisstore.AdminToken `json:"record"`
		}
		if status != 201 || json.Unmarshal(raw, &out) != nil {
			t.Fatalf("mint %s: %d %s", role, status, truncate(raw))
		}
		return out.Token
	}
	adaOwnerTok := mint(ada, "owner", 0)
	adaViewerTok := mint(ada, "viewer", 0)
	// Demoted to admin: her owner token goes, her viewer token stays.
	e.must(t, 200, owner, "PATCH", "/api/v1/members/"+adaUser.ID, map[string]any{"role": "admin"}, nil)
	e.mustFail(t, 401, adaOwnerTok, "GET", "/api/v1/me", nil)
	e.must(t, 200, adaViewerTok, "GET", "/api/v1/me", nil, nil)
	// Removed: every token she made goes.
	e.must(t, 204, owner, "DELETE", "/api/v1/members/"+adaUser.ID, nil, nil)
	e.mustFail(t, 401, adaViewerTok, "GET", "/api/v1/me", nil)
	// A token made by a short-lived token expires with it.
	short := mint(cred{token: owner}, "owner", 3600)
	child := mint(cred{token: short}, "viewer", 0)
	rec, err := e.store.LookupAdminToken(ctx, child)
	if err != nil || rec.ExpiresAt.IsZero() || rec.ExpiresAt.After(time.Now().Add(time.Hour+time.Minute)) || !strings.HasPrefix(rec.CreatedBy, "token:") {
		t.Fatalf("child token %+v, %v: want an expiry within the parent's hour", rec, err)
	}
}
