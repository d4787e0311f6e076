package voluntree

import (
	"crypto/subtle"
	"time"
)

// The records of signing in: sessions, one-time links, sign-ins in progress, admin API tokens
// and live-feed tickets (SessionStore, SignInStore, AdminTokenStore, TicketStore keep them).

// Session is a signed-in browser's server-side session. Its cookie carries a random token;
// only the token's SHA-256 (ID) is stored.
type Session struct {
	ID        string    `json:"-"`
	UserID    string    `json:"user_id"`
	OrgID     string    `json:"org_id"` // the organization it acts for
	CSRF      string    `json:"-"`      // what cookie-authenticated changes send as X-CSRF-Token
	Via       string    `json:"via"`    // github, facebook or link
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"` // absolute: signed out then, however active
	// GitHubToken is the access token of a GitHub sign-in, kept to re-check the
	// organization's GitHub gate; CheckedAt is when it was last checked.
	GitHubToken string    `json:"-"`
	CheckedAt   time.Time `json:"-"`
}

// CheckCSRF reports whether token is the session's CSRF token (in constant time).
func (s Session) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) == 1
}

// LoginLink is what a one-time sign-in link signs in as.
type LoginLink struct {
	UserID string `json:"user_id"`
	OrgID  string `json:"org_id"`
}

// OAuthState is a sign-in in progress at a provider: Browser is the SHA-256 of a random
// value in a cookie of the browser that started it, so that the callback is accepted only in
// that browser; Invitation carries an invitation token through the sign-in.
type OAuthState struct {
	Provider   string `json:"provider"`
	Browser    string `json:"browser"`
	ReturnTo   string `json:"return_to,omitempty"`
	Invitation string `json:"invitation,omitempty"`
}

// AdminToken is the stored record of an admin API token (the token itself is never stored:
// its SHA-256 is the key).
type AdminToken struct {
	ID        string    `json:"id"` // the first characters of the token's SHA-256: names it in lists
	OrgID     string    `json:"org_id"`
	Label     string    `json:"label,omitempty"`
	Hint      string    `json:"hint"`                 // the token's first characters, to tell tokens apart
	Role      Role      `json:"role"`                 // what it may do; tokens from before roles act as owners
	CreatedBy string    `json:"created_by,omitempty"` // user id; "" from the CLI
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"` // zero: never
}

// Expired reports whether the token has expired at now.
func (t AdminToken) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}

// TokenOptions describe a new admin API token.
type TokenOptions struct {
	Label     string
	Role      Role          // default owner
	TTL       time.Duration // 0: never expires
	CreatedBy string
}

// WSTicket is what a live-feed ticket opens.
type WSTicket struct {
	OrgID     string    `json:"org_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// LoginState is a started Facebook Login (connecting a page), waiting for its callback.
type LoginState struct {
	OrgID       string    `json:"org_id"`
	NonceHash   string    `json:"nonce_hash"`   // SHA-256 of the cookie set in the browser that started it
	RedirectURI string    `json:"redirect_uri"` // given to the dialog; the code exchange repeats it
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}
