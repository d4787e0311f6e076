package fakegraph_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/voluntree/voluntree/internal/fakegraph"
)

const secret = "app-secret"

func newServer(t *testing.T, cfg fakegraph.Config) *fakegraph.Server {
	t.Helper()
	s := fakegraph.New(cfg)
	t.Cleanup(s.Close)
	s.AddPage("p1", "Food bank", "tok-p1")
	s.AddPage("p2", "Shelter", "tok-p2")
	s.AddUser("code-1", "user-tok", "p1")
	return s
}

// answer is a decoded Graph answer.
type answer struct {
	status int
	body   map[string]any
}

func (a answer) code() int {
	e, _ := a.body["error"].(map[string]any)
	c, _ := e["code"].(float64)
	return int(c)
}

func (a answer) message() string {
	e, _ := a.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// data returns the ids of a list answer.
func (a answer) ids() []string {
	var ids []string
	items, _ := a.body["data"].([]any)
	for _, it := range items {
		id, _ := it.(map[string]any)["id"].(string)
		ids = append(ids, id)
	}
	return ids
}

func (a answer) next() string {
	p, _ := a.body["paging"].(map[string]any)
	n, _ := p["next"].(string)
	return n
}

func do(t *testing.T, method, rawURL string, form url.Values) answer {
	t.Helper()
	var req *http.Request
	var err error
	if method == http.MethodGet || method == http.MethodDelete {
		if len(form) > 0 {
			rawURL += "?" + form.Encode()
		}
		req, err = http.NewRequestWithContext(t.Context(), method, rawURL, nil)
	} else {
		req, err = http.NewRequestWithContext(t.Context(), method, rawURL, strings.NewReader(form.Encode()))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		t.Fatalf("%s %s: decoding the answer: %v", req.Method, req.URL.Path, err)
	}
	return a
}

func tok(token string, kv ...string) url.Values {
	v := url.Values{"access_token": {token}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func TestVersionChecked(t *testing.T) {
	t.Parallel()
	s := newServer(t, fakegraph.Config{})
	for _, path := range []string{"/v2.0/p1/feed", "/p1/feed", "/v23/p1/feed"} {
		a := do(t, http.MethodGet, s.URL+path, tok("tok-p1"))
		if a.status != 400 || a.code() != 2500 || !strings.HasPrefix(a.message(), "Unknown path components: ") {
			t.Errorf("%s: %d %v", path, a.status, a.body)
		}
	}
	if a := do(t, http.MethodGet, s.URL+"/v23.0/p1/feed", tok("tok-p1")); a.status != 200 {
		t.Fatalf("right version: %d %v", a.status, a.body)
	}
	calls := s.Calls()
	if len(calls) != 4 || calls[3].Path != "/p1/feed" || calls[3].Status != 200 || calls[0].Status != 400 {
		t.Fatalf("calls %+v", calls)
	}
}

func TestTokensChecked(t *testing.T) {
	t.Parallel()
	s := newServer(t, fakegraph.Config{})
	for _, tc := range []struct {
		name, method, path, token string
		code                      int
	}{
		{"missing", "GET", "/p1/feed", "", 190},
		{"unknown", "GET", "/p1/feed", "nope", 190},
		{"user token for a page", "POST", "/p1/subscribed_apps", "user-tok", 190},
		{"other page's token", "GET", "/p1/feed", "tok-p2", 190},
		{"other page's post", "GET", "/p1_5/comments", "tok-p2", 190},
		{"page token for /me/accounts", "GET", "/me/accounts", "tok-p1", 100},
		{"unknown page", "GET", "/p9/feed", "tok-p1", 100},
		{"right", "GET", "/p1/feed", "tok-p1", 0},
		{"right, user", "GET", "/me/accounts", "user-tok", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"subscribed_fields": {"feed"}}
			if tc.token != "" {
				form.Set("access_token", tc.token)
			}
			a := do(t, tc.method, s.URL+"/v23.0"+tc.path, form)
			wantStatus := 200
			if tc.code != 0 {
				wantStatus = 400
			}
			if a.status != wantStatus || a.code() != tc.code {
				t.Fatalf("%d %v, want %d code %d", a.status, a.body, wantStatus, tc.code)
			}
		})
	}
}

func TestAppSecretProof(t *testing.T) {
	t.Parallel()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("tok-p1"))
	good := hex.EncodeToString(mac.Sum(nil))
	for _, tc := range []struct {
		name    string
		require bool
		proof   string
		code    int
		msg     string
	}{
		{"good", false, good, 0, ""},
		{"bad", false, strings.Repeat("ab", 32), 100, "Invalid appsecret_proof provided in the API argument"},
		{"not hex", false, "zz", 100, "Invalid appsecret_proof provided in the API argument"},
		{"absent", false, "", 0, ""},
		{"absent but required", true, "", 100, "API calls from the server require an appsecret_proof argument"},
		{"good and required", true, good, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, fakegraph.Config{AppSecret: secret, RequireAppSecretProof: tc.require})
			form := tok("tok-p1")
			if tc.proof != "" {
				form.Set("appsecret_proof", tc.proof)
			}
			a := do(t, http.MethodGet, s.URL+"/v23.0/p1/feed", form)
			if a.code() != tc.code || a.message() != tc.msg {
				t.Fatalf("%d %v", a.status, a.body)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	s := newServer(t, fakegraph.Config{})
	feed := s.URL + "/v23.0/p1/feed"
	post := func() answer { return do(t, http.MethodPost, feed, tok("tok-p1", "message", "hi")) }

	s.FailUntil("POST /p1/feed", time.Now().Add(-time.Minute), fakegraph.ServerError()) // over
	if a := post(); a.status != 200 {
		t.Fatalf("after an outage: %d %v", a.status, a.body)
	}
	s.FailUntil("POST /p1/feed", time.Now().Add(time.Hour), fakegraph.ServerError())
	for range 3 {
		if a := post(); a.status != 500 || a.code() != 2 || a.message() != fakegraph.ServerError().Message {
			t.Fatalf("during an outage: %d %v", a.status, a.body)
		}
	}
	if a := do(t, http.MethodGet, feed, tok("tok-p1")); a.status != 200 || len(a.ids()) != 1 {
		t.Fatalf("other calls during the outage: %d %v", a.status, a.body)
	}
	s.Clear()
	s.FailNext("/p1/feed", 2, fakegraph.Throttled(32))
	for range 2 {
		if a := post(); a.status != 400 || a.code() != 32 {
			t.Fatalf("throttled: %d %v", a.status, a.body)
		}
	}
	if a := post(); a.status != 200 {
		t.Fatalf("after FailNext: %d %v", a.status, a.body)
	}
	s.FailNext("GET", 1, fakegraph.Permanent(200, "(#200) Permissions error"))
	if a := do(t, http.MethodGet, feed, tok("tok-p1")); a.status != 400 || a.code() != 200 || a.message() != "(#200) Permissions error" {
		t.Fatalf("permanent: %d %v", a.status, a.body)
	}

	if n := len(s.Posts("p1")); n != 2 {
		t.Fatalf("%d posts, want 2: failed calls create nothing", n)
	}
	var statuses []int
	for _, c := range s.Calls() {
		if c.Method == "POST" {
			statuses = append(statuses, c.Status)
		}
	}
	if want := []int{200, 500, 500, 500, 400, 400, 200}; !slices.Equal(statuses, want) {
		t.Fatalf("statuses %v, want %v", statuses, want)
	}
}

func TestWaitCalls(t *testing.T) {
	t.Parallel()
	s := newServer(t, fakegraph.Config{})
	done := make(chan error, 1)
	go func() { done <- s.WaitCalls(t.Context(), "GET /p1/feed", 2) }()
	do(t, http.MethodGet, s.URL+"/v23.0/p1/feed", tok("tok-p1"))
	do(t, http.MethodGet, s.URL+"/v23.0/p2/feed", tok("tok-p2"))
	select {
	case err := <-done:
		t.Fatalf("WaitCalls returned after one matching call: %v", err)
	default:
	}
	do(t, http.MethodGet, s.URL+"/v23.0/p1/feed", tok("tok-p1"))
	if err := <-done; err != nil {
		t.Fatalf("WaitCalls: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.WaitCalls(ctx, "GET /p1/feed", 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitCalls with a canceled ctx = %v", err)
	}
	go func() { done <- s.WaitCalls(t.Context(), "never", 1) }()
	s.Close()
	if err := <-done; !errors.Is(err, fakegraph.ErrClosed) {
		t.Fatalf("WaitCalls after Close = %v", err)
	}
}

func TestPublish(t *testing.T) {
	t.Parallel()
	s := newServer(t, fakegraph.Config{})
	v := s.URL + "/v23.0/"
	if a := do(t, http.MethodPost, v+"p1/feed", tok("tok-p1")); a.code() != 100 || a.message() != "(#100) Missing message or attachment" {
		t.Fatalf("empty post: %v", a.body)
	}
	if a := do(t, http.MethodPost, v+"p1/photos", tok("tok-p1", "published", "false")); a.code() != 324 {
		t.Fatalf("photo without source: %v", a.body)
	}

	// A multipart upload, then a post with the photo attached.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("access_token", "tok-p1")
	mw.WriteField("published", "false")
	fw, _ := mw.CreateFormFile("source", "a.jpg")
	fw.Write([]byte("jpeg bytes"))
	mw.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, v+"p1/photos", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	a := send(t, req)
	photoID, _ := a.body["id"].(string)
	if a.status != 200 || photoID == "" {
		t.Fatalf("upload: %d %v", a.status, a.body)
	}
	media := `{"media_fbid":"` + photoID + `"}`
	if a := do(t, http.MethodPost, v+"p2/feed", tok("tok-p2", "attached_media[0]", media)); a.code() != 100 {
		t.Fatalf("another page's photo: %v", a.body)
	}
	if a := do(t, http.MethodPost, v+"p1/feed", tok("tok-p1", "attached_media[0]", `{"media_fbid":"42"}`)); a.code() != 100 {
		t.Fatalf("unknown photo: %v", a.body)
	}
	a = do(t, http.MethodPost, v+"p1/feed", tok("tok-p1", "message", "with photo", "attached_media[0]", media))
	if a.status != 200 {
		t.Fatalf("post: %d %v", a.status, a.body)
	}
	if a := do(t, http.MethodPost, v+"p1/feed", tok("tok-p1", "attached_media[0]", media)); a.code() != 100 {
		t.Fatalf("photo attached twice: %v", a.body)
	}
	posts := s.Posts("p1")
	if len(posts) != 1 || posts[0].ID != a.body["id"] || posts[0].PhotoID != photoID || posts[0].Message != "with photo" {
		t.Fatalf("posts %+v, answer %v", posts, a.body)
	}
	if ph := s.Photos("p1"); len(ph) != 1 || string(ph[0].Data) != "jpeg bytes" || ph[0].Name != "a.jpg" || !ph[0].Published {
		t.Fatalf("photos %+v", ph)
	}

	// The feed, newest first, since a time, in pages.
	for _, m := range []string{"b", "c"} {
		do(t, http.MethodPost, v+"p1/feed", tok("tok-p1", "message", m))
	}
	a = do(t, http.MethodGet, v+"p1/feed", tok("tok-p1", "limit", "2", "since", "0"))
	if ids := a.ids(); len(ids) != 2 || ids[0] != s.Posts("p1")[2].ID || a.next() == "" {
		t.Fatalf("feed page 1: %v", a.body)
	}
	next, _ := url.Parse(a.next())
	if a := do(t, http.MethodGet, next.Scheme+"://"+next.Host+next.Path, next.Query()); len(a.ids()) != 1 || a.ids()[0] != posts[0].ID || a.next() != "" {
		t.Fatalf("feed page 2: %v", a.body)
	}
	future := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	if a := do(t, http.MethodGet, v+"p1/feed", tok("tok-p1", "since", future)); a.status != 200 || len(a.ids()) != 0 {
		t.Fatalf("since the future: %v", a.body)
	}
	if a := do(t, http.MethodGet, v+"p1/feed", tok("tok-p1", "since", "yesterday")); a.code() != 100 {
		t.Fatalf("bad since: %v", a.body)
	}
}

func TestComments(t *testing.T) {
	t.Parallel()
	s := newServer(t, fakegraph.Config{})
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	s.AddComment("p1_7", fakegraph.Comment{ID: "a", Message: "top", FromID: "u1", FromName: "Ann", CreatedTime: t0})
	s.AddComment("p1_7", fakegraph.Comment{ID: "b", Message: "reply", FromID: "u2", ParentID: "a", CreatedTime: t0.Add(time.Minute)})
	s.AddComment("p1_7", fakegraph.Comment{Message: "auto id", CreatedTime: t0.Add(2 * time.Minute)})
	url7 := s.URL + "/v23.0/p1_7/comments"

	a := do(t, http.MethodGet, url7, tok("tok-p1"))
	if ids := a.ids(); len(ids) != 2 || ids[0] != "a" || !strings.HasPrefix(ids[1], "p1_7_") {
		t.Fatalf("top-level by default: %v", a.body)
	}
	a = do(t, http.MethodGet, url7, tok("tok-p1", "filter", "stream", "fields", "id,from{id,name},message,created_time,parent{id}", "limit", "2"))
	if ids := a.ids(); !slices.Equal(ids, []string{"a", "b"}) || a.next() == "" {
		t.Fatalf("stream page 1: %v", a.body)
	}
	first := a.body["data"].([]any)[0].(map[string]any)
	second := a.body["data"].([]any)[1].(map[string]any)
	if first["created_time"] != "2026-11-22T10:00:00+0000" || first["from"].(map[string]any)["name"] != "Ann" || first["parent"] != nil {
		t.Fatalf("comment a: %v", first)
	}
	if second["parent"].(map[string]any)["id"] != "a" {
		t.Fatalf("comment b: %v", second)
	}
	after := a.body["paging"].(map[string]any)["cursors"].(map[string]any)["after"].(string)
	a = do(t, http.MethodGet, url7, tok("tok-p1", "filter", "stream", "limit", "2", "after", after))
	if ids := a.ids(); len(ids) != 1 || a.next() != "" {
		t.Fatalf("stream page 2: %v", a.body)
	}
	a = do(t, http.MethodGet, url7, tok("tok-p1", "fields", "id,message"))
	if item := a.body["data"].([]any)[0].(map[string]any); item["from"] != nil || item["message"] != "top" {
		t.Fatalf("fields not applied: %v", item)
	}
	if a := do(t, http.MethodGet, s.URL+"/v23.0/a/comments", tok("tok-p1")); !slices.Equal(a.ids(), []string{"b"}) {
		t.Fatalf("replies of a comment: %v", a.body)
	}
	if a := do(t, http.MethodGet, s.URL+"/v23.0/p1_8/comments", tok("tok-p1")); a.status != 200 || len(a.ids()) != 0 {
		t.Fatalf("post without comments: %v", a.body)
	}
	if a := do(t, http.MethodGet, url7, tok("tok-p1", "order", "sideways")); a.code() != 100 {
		t.Fatalf("bad order: %v", a.body)
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	s := newServer(t, fakegraph.Config{AppID: "app", AppSecret: secret, MaxPageSize: 1})
	s.AddUser("code-2", "user-2", "p1", "p2", "p9") // p9 does not exist
	oauth := s.URL + "/v23.0/oauth/access_token"
	form := func(kv ...string) url.Values {
		v := url.Values{"client_id": {"app"}, "client_secret": {secret}, "redirect_uri": {"https://x.example/cb"}, "code": {"code-2"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	for _, tc := range []struct {
		name string
		form url.Values
		code int
		msg  string
	}{
		{"no redirect", form("redirect_uri", ""), 100, "Missing redirect_uri parameter."},
		{"no secret", form("client_secret", ""), 100, "Missing client_secret parameter."},
		{"wrong app", form("client_id", "other"), 101, "Error validating application. Invalid application ID."},
		{"wrong secret", form("client_secret", "x"), 100, "Error validating client secret."},
		{"unknown code", form("code", "nope"), 100, "Invalid verification code format."},
	} {
		if a := do(t, http.MethodGet, oauth, tc.form); a.status != 400 || a.code() != tc.code || a.message() != tc.msg {
			t.Errorf("%s: %d %v", tc.name, a.status, a.body)
		}
	}
	a := do(t, http.MethodGet, oauth, form())
	if a.status != 200 || a.body["access_token"] != "user-2" || a.body["expires_in"] != float64(fakegraph.ShortUserTokenExpiresIn) {
		t.Fatalf("exchange: %v", a.body)
	}
	if a := do(t, http.MethodGet, oauth, form()); a.message() != "This authorization code has been used." {
		t.Fatalf("second exchange: %v", a.body)
	}

	a = do(t, http.MethodGet, s.URL+"/v23.0/me/accounts", tok("user-2"))
	page, _ := a.body["data"].([]any)[0].(map[string]any)
	if page["id"] != "p1" || page["access_token"] != "tok-p1" || page["name"] != "Food bank" || len(page["tasks"].([]any)) != 3 || a.next() == "" {
		t.Fatalf("accounts page 1: %v", a.body)
	}
	next, _ := url.Parse(a.next())
	if a := send(t, mustGet(t, next.String())); !slices.Equal(a.ids(), []string{"p2"}) || a.next() != "" {
		t.Fatalf("accounts page 2: %v", a.body)
	}
}

func TestLoginDialog(t *testing.T) {
	t.Parallel()
	s := newServer(t, fakegraph.Config{AppID: "app", AppSecret: secret})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	dialog := func(q url.Values) (int, *url.URL) {
		t.Helper()
		resp, err := noFollow.Do(mustGet(t, s.URL+"/v23.0/dialog/oauth?"+q.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return resp.StatusCode, loc
	}
	q := url.Values{"client_id": {"app"}, "redirect_uri": {"https://x.example/cb?a=1"}, "state": {"st-1"}, "scope": {"pages_show_list"}, "response_type": {"code"}}
	if code, _ := dialog(q); code != 400 {
		t.Fatalf("dialog before SetDialogUser: %d, want 400", code)
	}
	s.SetDialogUser("user-3", "p1")
	for _, bad := range []url.Values{
		{"client_id": {"other"}, "redirect_uri": {"https://x.example/cb"}},
		{"client_id": {"app"}, "redirect_uri": {"/cb"}},
		{"client_id": {"app"}, "redirect_uri": {"https://x.example/cb"}, "response_type": {"token"}},
	} {
		if code, _ := dialog(bad); code != 400 {
			t.Errorf("dialog %v: %d, want 400", bad, code)
		}
	}
	code, loc := dialog(q)
	if code != 302 || loc.Host != "x.example" || loc.Path != "/cb" || loc.Query().Get("a") != "1" || loc.Query().Get("state") != "st-1" || loc.Fragment != "_=_" {
		t.Fatalf("dialog: %d %v", code, loc)
	}
	oauth := s.URL + "/v23.0/oauth/access_token"
	exchange := url.Values{"client_id": {"app"}, "client_secret": {secret}, "redirect_uri": {"https://x.example/other"}, "code": {loc.Query().Get("code")}}
	if a := do(t, http.MethodGet, oauth, exchange); a.status != 400 || a.body["error"].(map[string]any)["error_subcode"] != float64(36008) {
		t.Fatalf("exchange with another redirect_uri: %v", a.body)
	}
	exchange.Set("redirect_uri", "https://x.example/cb?a=1")
	a := do(t, http.MethodGet, oauth, exchange)
	if a.status != 200 || a.body["access_token"] != "user-3" {
		t.Fatalf("exchange: %v", a.body)
	}
	ll := do(t, http.MethodGet, oauth, url.Values{"grant_type": {"fb_exchange_token"}, "client_id": {"app"}, "client_secret": {secret}, "fb_exchange_token": {"user-3"}})
	if ll.body["access_token"] != "ll-user-3" || ll.body["expires_in"] != float64(fakegraph.UserTokenExpiresIn) {
		t.Fatalf("long-lived exchange: %v", ll.body)
	}
	if a := do(t, http.MethodGet, s.URL+"/v23.0/me/accounts", tok("ll-user-3")); !slices.Equal(a.ids(), []string{"p1"}) {
		t.Fatalf("accounts of the long-lived token: %v", a.body)
	}

	s.DenyDialog()
	code, loc = dialog(q)
	if code != 302 || loc.Query().Get("error") != "access_denied" || loc.Query().Get("error_reason") != "user_denied" || loc.Query().Get("code") != "" || loc.Query().Get("state") != "st-1" {
		t.Fatalf("denied dialog: %d %v", code, loc)
	}
}

func mustGet(t *testing.T, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestSubscribedApps(t *testing.T) {
	t.Parallel()
	s := newServer(t, fakegraph.Config{AppID: "app"})
	u := s.URL + "/v23.0/p1/subscribed_apps"
	if a := do(t, http.MethodPost, u, tok("tok-p1")); a.code() != 100 || !strings.Contains(a.message(), "subscribed_fields") {
		t.Fatalf("no fields: %v", a.body)
	}
	if a := do(t, http.MethodPost, u, tok("tok-p1", "subscribed_fields", "feed,gossip")); a.code() != 100 {
		t.Fatalf("unknown field: %v", a.body)
	}
	if a := do(t, http.MethodGet, u, tok("tok-p1")); len(a.ids()) != 0 {
		t.Fatalf("before: %v", a.body)
	}
	if a := do(t, http.MethodPost, u, tok("tok-p1", "subscribed_fields", "feed,messages")); a.body["success"] != true {
		t.Fatalf("subscribe: %v", a.body)
	}
	if got := s.Subscriptions("p1"); !slices.Equal(got, []string{"feed", "messages"}) {
		t.Fatalf("Subscriptions = %v", got)
	}
	a := do(t, http.MethodGet, u, tok("tok-p1"))
	app, _ := a.body["data"].([]any)[0].(map[string]any)
	if app["id"] != "app" || len(app["subscribed_fields"].([]any)) != 2 {
		t.Fatalf("list: %v", a.body)
	}
	if a := do(t, http.MethodDelete, u, tok("tok-p1")); a.body["success"] != true || s.Subscriptions("p1") != nil {
		t.Fatalf("unsubscribe: %v", a.body)
	}
}
