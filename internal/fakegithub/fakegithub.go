// Package fakegithub is a small GitHub for tests: the OAuth web flow's authorize dialog
// (answering at once as the account chosen with SetDialogUser, or denying), the token
// exchange (single-use codes bound to their redirect_uri, errors in a 200 JSON body as
// GitHub does), GET /user, GET /user/emails and GET /user/memberships/orgs/{org}.
package fakegithub

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
)

// Account is a GitHub account of the fake.
type Account struct {
	ID    int64
	Login string
	Name  string
	Email string   // public email ("" : only the primary one in /user/emails)
	Orgs  []string // organizations it is an active member of
}

// Server is the fake; URL serves both the web endpoints and the API.
type Server struct {
	*httptest.Server
	ClientID, ClientSecret string

	mu      sync.Mutex
	dialog  *Account // who the authorize dialog signs in; nil: the person denies
	codes   map[string]grant
	tokens  map[string]*Account
	calls   []string
	primary map[int64]string
}

type grant struct {
	account     *Account
	redirectURI string
}

// New starts a fake with an OAuth app's client id and secret.
func New() *Server {
	s := &Server{ClientID: "fake-client-id", ClientSecret: "fake-client-secret",
		codes: map[string]grant{}, tokens: map[string]*Account{}, primary: map[int64]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", s.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", s.exchange)
	mux.HandleFunc("GET /user", s.user)
	mux.HandleFunc("GET /user/emails", s.emails)
	mux.HandleFunc("GET /user/memberships/orgs/{org}", s.membership)
	s.Server = httptest.NewServer(mux)
	return s
}

// SetDialogUser makes the authorize dialog sign in as a (nil: the person denies access).
func (s *Server) SetDialogUser(a *Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dialog = a
}

// SetPrimaryEmail gives an account a primary verified email, listed by /user/emails only.
func (s *Server) SetPrimaryEmail(id int64, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.primary[id] = email
}

// SetOrgs changes the organizations an account is a member of (the gate's re-check sees it).
func (s *Server) SetOrgs(a *Account, orgs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a.Orgs = orgs
}

// Calls returns "METHOD path" of every request so far.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *Server) record(r *http.Request) {
	s.mu.Lock()
	s.calls = append(s.calls, r.Method+" "+r.URL.Path)
	s.mu.Unlock()
}

func random() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	s.record(r)
	q := r.URL.Query()
	if q.Get("client_id") != s.ClientID {
		http.Error(w, "unknown client_id", http.StatusNotFound)
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Host == "" {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	back := redirect.Query()
	back.Set("state", q.Get("state"))
	s.mu.Lock()
	if s.dialog == nil {
		back.Set("error", "access_denied")
		back.Set("error_description", "The user has denied your application access.")
	} else {
		code := random()
		s.codes[code] = grant{account: s.dialog, redirectURI: q.Get("redirect_uri")}
		back.Set("code", code)
	}
	s.mu.Unlock()
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (s *Server) exchange(w http.ResponseWriter, r *http.Request) {
	s.record(r)
	_ = r.ParseForm()
	w.Header().Set("Content-Type", "application/json")
	fail := func(code, desc string) {
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if r.PostForm.Get("client_id") != s.ClientID || r.PostForm.Get("client_secret") != s.ClientSecret {
		fail("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
		return
	}
	s.mu.Lock()
	g, ok := s.codes[r.PostForm.Get("code")]
	delete(s.codes, r.PostForm.Get("code")) // single use
	s.mu.Unlock()
	switch {
	case !ok:
		fail("bad_verification_code", "The code passed is incorrect or expired.")
		return
	case g.redirectURI != r.PostForm.Get("redirect_uri"):
		fail("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.")
		return
	}
	token := "gho_" + random()
	s.mu.Lock()
	s.tokens[token] = g.account
	s.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]string{"access_token": token, "token_type": "bearer", "scope": "read:user,user:email,read:org"})
}

func (s *Server) account(w http.ResponseWriter, r *http.Request) *Account {
	s.record(r)
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	a := s.tokens[token]
	s.mu.Unlock()
	if !ok || a == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"message":"Bad credentials"}`))
		return nil
	}
	return a
}

func (s *Server) user(w http.ResponseWriter, r *http.Request) {
	a := s.account(w, r)
	if a == nil {
		return
	}
	s.mu.Lock()
	out := map[string]any{"id": a.ID, "login": a.Login, "name": a.Name, "email": nil}
	if a.Email != "" {
		out["email"] = a.Email
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Server) emails(w http.ResponseWriter, r *http.Request) {
	a := s.account(w, r)
	if a == nil {
		return
	}
	s.mu.Lock()
	out := []map[string]any{}
	if e := s.primary[a.ID]; e != "" {
		out = append(out, map[string]any{"email": e, "primary": true, "verified": true})
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Server) membership(w http.ResponseWriter, r *http.Request) {
	a := s.account(w, r)
	if a == nil {
		return
	}
	org := r.PathValue("org")
	s.mu.Lock()
	member := false
	for _, o := range a.Orgs {
		member = member || strings.EqualFold(o, org)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !member {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"Not Found"}`))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"state": "active", "role": "member", "organization": map[string]string{"login": org}})
}

// RevokeGrants forgets every access token issued to a: as when the person revokes the app.
func (s *Server) RevokeGrants(a *Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tok, acc := range s.tokens {
		if acc == a {
			delete(s.tokens, tok)
		}
	}
}
