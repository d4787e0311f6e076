// Package github signs people in with GitHub (OAuth web application flow) and checks their
// membership of a GitHub organization (an organization's sign-in gate).
package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultWebURL = "https://github.com"
	DefaultAPIURL = "https://api.github.com"
)

// Scopes a sign-in asks for: the profile, the email, and organization membership (the gate).
const Scopes = "read:user user:email read:org"

// Config configures a Client.
type Config struct {
	ClientID     string // VOLUNTREE_GITHUB_CLIENT_ID
	ClientSecret string // VOLUNTREE_GITHUB_CLIENT_SECRET
	WebURL       string // the authorize and token endpoints' base; default DefaultWebURL
	APIURL       string // the REST API's base; default DefaultAPIURL
	HTTP         *http.Client
}

// Client talks to GitHub for sign-ins.
type Client struct{ cfg Config }

// New returns a client; the URLs must be http(s) URLs.
func New(cfg Config) (*Client, error) {
	if cfg.WebURL == "" {
		cfg.WebURL = DefaultWebURL
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	for _, u := range []string{cfg.WebURL, cfg.APIURL} {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("github: want an http(s) URL, got %q", u)
		}
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("github: client id and secret are required")
	}
	cfg.WebURL, cfg.APIURL = strings.TrimRight(cfg.WebURL, "/"), strings.TrimRight(cfg.APIURL, "/")
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{cfg: cfg}, nil
}

// AuthorizeURL is where a browser is sent to sign in: GitHub asks the person, then sends the
// browser to redirectURI with code and state.
func (c *Client) AuthorizeURL(redirectURI, state string) string {
	q := url.Values{"client_id": {c.cfg.ClientID}, "redirect_uri": {redirectURI}, "scope": {Scopes},
		"state": {state}, "allow_signup": {"false"}}
	return c.cfg.WebURL + "/login/oauth/authorize?" + q.Encode()
}

// Error is a refusal by GitHub.
type Error struct {
	Status  int    // HTTP status (200 for an OAuth error in a JSON body)
	Code    string // OAuth error code (bad_verification_code, …) or ""
	Message string
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("github: %s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("github: %d: %s", e.Status, e.Message)
}

// Exchange trades a callback's code for an access token.
func (c *Client) Exchange(ctx context.Context, code, redirectURI string) (string, error) {
	form := url.Values{"client_id": {c.cfg.ClientID}, "client_secret": {c.cfg.ClientSecret},
		"code": {code}, "redirect_uri": {redirectURI}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.WebURL+"/login/oauth/access_token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("github: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := c.do(req, &out); err != nil {
		return "", err
	}
	if out.Error != "" || out.AccessToken == "" { // GitHub answers 200 with an error field
		return "", &Error{Status: http.StatusOK, Code: cmpOr(out.Error, "no_token"), Message: cmpOr(out.Description, "no access token in the answer")}
	}
	return out.AccessToken, nil
}

// User is a GitHub account.
type User struct {
	ID    int64  `json:"id"`
	Login string `json:"login"`
	Name  string `json:"name"`
	Email string `json:"email"` // the public email; may be empty
}

// User reads the signed-in account; without a public email it asks for the primary verified
// one.
func (c *Client) User(ctx context.Context, token string) (User, error) {
	var u User
	if err := c.get(ctx, token, "/user", &u); err != nil {
		return u, err
	}
	if u.ID == 0 || u.Login == "" {
		return u, &Error{Status: http.StatusOK, Message: "the account has no id or login"}
	}
	if u.Email == "" {
		var emails []struct {
			Email    string `json:"email"`
			Primary  bool   `json:"primary"`
			Verified bool   `json:"verified"`
		}
		if err := c.get(ctx, token, "/user/emails", &emails); err == nil {
			for _, e := range emails {
				if e.Primary && e.Verified {
					u.Email = e.Email
				}
			}
		}
	}
	return u, nil
}

// IsMember reports whether the token's account is an active member of the GitHub
// organization org (GET /user/memberships/orgs/{org}: 404 or 403 when not).
func (c *Client) IsMember(ctx context.Context, token, org string) (bool, error) {
	var m struct {
		State string `json:"state"`
	}
	err := c.get(ctx, token, "/user/memberships/orgs/"+url.PathEscape(org), &m)
	var ge *Error
	// 404 and 403: not a member; 401: the person revoked the grant, which can no longer
	// vouch for anything.
	if errors.As(err, &ge) && (ge.Status == http.StatusNotFound || ge.Status == http.StatusForbidden || ge.Status == http.StatusUnauthorized) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return m.State == "active", nil
}

func (c *Client) get(ctx context.Context, token, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.APIURL+path, nil)
	if err != nil {
		return fmt.Errorf("github: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	return c.do(req, out)
}

func (c *Client) do(req *http.Request, out any) error {
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("github: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("github: read %s: %w", req.URL.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &e)
		return &Error{Status: resp.StatusCode, Message: cmpOr(e.Message, http.StatusText(resp.StatusCode))}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("github: decode %s: %w", req.URL.Path, err)
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
