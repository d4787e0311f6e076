package httpapi

import (
	"cmp"
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/github"
	"github.com/voluntree/voluntree/redisstore"
)

// Signing in with GitHub: GET /auth/github sends the browser to GitHub's dialog with a
// single-use state bound to this browser (a cookie whose hash the state keeps); GitHub sends it
// back to /auth/github/callback, which checks both, exchanges the code, reads the account and,
// for an organization with a GitHub gate, the membership, then starts a session. An
// invitation token rides along (?invitation=) and is accepted on the way.

// GitHubSignIn is what the sign-in needs of GitHub (github.Client).
type GitHubSignIn interface {
	AuthorizeURL(redirectURI, state string) string
	Exchange(ctx context.Context, code, redirectURI string) (string, error)
	User(ctx context.Context, token string) (github.User, error)
	IsMember(ctx context.Context, token, org string) (bool, error)
}

// Sign-in constants.
const (
	signinCookie    = "voluntree_signin"
	SignInStateTTL  = 10 * time.Minute
	GitHubCallback  = "/auth/github/callback"
	GateRecheck     = time.Hour      // a gated session's GitHub membership is checked again this often
	GateGrace       = 24 * time.Hour // ... and, while GitHub cannot answer, the session lasts this long after the last check
	signInErrorPath = "/?signin=error&message="
)

// signinFail ends a sign-in on the dashboard with a message.
func (s *Server) signinFail(c *fiber.Ctx, msg string) error {
	s.cfg.Logger.Info("sign-in refused", "action", "sign_in", "reason", msg)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Redirect(signInErrorPath+url.QueryEscape(msg), fiber.StatusSeeOther)
}

func (s *Server) signinCookie(value string, maxAge int) *fiber.Cookie {
	path := "/auth/"
	if u, err := url.Parse(s.cfg.PublicURL); err == nil && strings.Trim(u.Path, "/") != "" {
		path = "/" + strings.Trim(u.Path, "/") + "/auth/" // behind a proxy's path prefix
	}
	ck := &fiber.Cookie{Name: signinCookie, Value: value, Path: path, MaxAge: maxAge, HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode, Secure: strings.HasPrefix(s.cfg.PublicURL, "https://")}
	if maxAge < 0 {
		ck.Expires = time.Unix(1, 0)
	}
	return ck
}

func (s *Server) githubCallbackURL() string {
	return strings.TrimSuffix(s.cfg.PublicURL, "/") + GitHubCallback
}

// startOAuth begins a sign-in at provider: a single-use state bound to this browser (a
// cookie whose hash the state keeps), carrying ?invitation=, then the provider's dialog
// (dialog(state) is its URL).
func (s *Server) startOAuth(c *fiber.Ctx, provider string, dialog func(state string) string) error {
	inv := c.Query("invitation")
	if inv != "" && (!strings.HasPrefix(inv, redisstore.InvitationPrefix) || len(inv) > 64) {
		return voluntree.FieldErrorf("invitation", "invitation: not an invitation token")
	}
	nonce, err := randomToken()
	if err != nil {
		return err
	}
	state, err := s.cfg.Store.CreateOAuthState(c.UserContext(), voluntree.OAuthState{
		Provider: provider, Browser: hashNonce(nonce), Invitation: inv}, SignInStateTTL)
	if err != nil {
		return err
	}
	c.Cookie(s.signinCookie(nonce, int(SignInStateTTL/time.Second)))
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Redirect(dialog(state), fiber.StatusFound)
}

// checkOAuth spends a callback's state and checks it was started by this browser, for
// provider, and that the person did not cancel; msg says why not.
func (s *Server) checkOAuth(ctx context.Context, c *fiber.Ctx, provider, name string) (st voluntree.OAuthState, msg string, err error) {
	nonce := c.Cookies(signinCookie)
	c.Cookie(s.signinCookie("", -1))
	st, err = s.cfg.Store.UseOAuthState(ctx, c.Query("state"))
	switch {
	case voluntree.ErrorCode(err) == voluntree.ENOTFOUND:
		return st, "This sign-in expired or was already used: start again.", nil
	case err != nil:
		return st, "", err
	case st.Provider != provider || nonce == "" || hashNonce(nonce) != st.Browser:
		return st, "This sign-in was started in another browser: start again here.", nil
	}
	if e := c.Query("error"); e != "" {
		if e == "access_denied" {
			return st, "You cancelled the " + name + " sign-in.", nil
		}
		return st, name + " refused the sign-in (" + truncate(e, 64) + ").", nil
	}
	return st, "", nil
}

// githubStart answers GET /auth/github[?invitation=vi_…].
func (s *Server) githubStart(c *fiber.Ctx) error {
	if s.cfg.GitHub == nil {
		return voluntree.Errorf(voluntree.EUNAVAILABLE, "GitHub sign-in is not configured on this server (VOLUNTREE_GITHUB_CLIENT_ID, VOLUNTREE_GITHUB_CLIENT_SECRET)")
	}
	return s.startOAuth(c, redisstore.ProviderGitHub, func(state string) string {
		return s.cfg.GitHub.AuthorizeURL(s.githubCallbackURL(), state)
	})
}

// githubCallback answers GET /auth/github/callback?code=&state= (or ?error=).
func (s *Server) githubCallback(c *fiber.Ctx) error {
	if s.cfg.GitHub == nil {
		return voluntree.Errorf(voluntree.EUNAVAILABLE, "GitHub sign-in is not configured on this server")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), max(s.cfg.RequestTimeout, CallbackTimeout))
	defer cancel()
	st, msg, err := s.checkOAuth(ctx, c, redisstore.ProviderGitHub, "GitHub")
	if err != nil {
		return err
	}
	if msg != "" {
		return s.signinFail(c, msg)
	}
	token, err := s.cfg.GitHub.Exchange(ctx, c.Query("code"), s.githubCallbackURL())
	if err != nil {
		s.cfg.Logger.Warn("github code exchange", "action", "sign_in", "error", err)
		return s.signinFail(c, "GitHub did not confirm the sign-in: start again.")
	}
	gu, err := s.cfg.GitHub.User(ctx, token)
	if err != nil {
		s.cfg.Logger.Warn("github user", "action", "sign_in", "error", err)
		return s.signinFail(c, "GitHub did not tell who you are: start again.")
	}
	user, err := s.githubUser(ctx, gu)
	if err != nil {
		return err
	}
	return s.finishSignIn(ctx, c, voluntree.Session{UserID: user.ID, Via: redisstore.ProviderGitHub,
		GitHubToken: token, CheckedAt: s.now()}, st.Invitation)
}

// finishSignIn picks the organization the person signs in to and starts the session (sess
// has the user, the provider and, for GitHub, the token). With an invitation it is the
// invitation's organization, whose gate is checked before the invitation is accepted;
// otherwise the first of the person's organizations whose gate lets them in.
func (s *Server) finishSignIn(ctx context.Context, c *fiber.Ctx, sess voluntree.Session, invitation string) error {
	var candidates []string
	if invitation != "" {
		inv, err := s.cfg.Store.Invitation(ctx, invitation)
		if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
			return s.signinFail(c, invitationGone)
		}
		if err != nil {
			return err
		}
		candidates = []string{inv.OrgID}
	} else {
		orgs, err := s.cfg.Store.UserOrgs(ctx, sess.UserID)
		if err != nil {
			return err
		}
		if len(orgs) == 0 {
			return s.signinFail(c, "You are not a member of any organization here: ask an owner for an invitation.")
		}
		candidates = orgs
	}
	refusal := ""
	for _, orgID := range candidates {
		msg, err := s.gateAtSignIn(ctx, sess, orgID)
		if err != nil {
			return err
		}
		if msg != "" {
			refusal = cmp.Or(refusal, msg)
			continue
		}
		if invitation != "" {
			m, err := s.cfg.Store.AcceptInvitation(ctx, invitation, sess.UserID)
			if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
				return s.signinFail(c, invitationGone)
			}
			if err != nil {
				return err
			}
			s.cfg.Logger.Info("invitation accepted", "action", "member", "org", m.OrgID, "user", sess.UserID, "role", m.Role)
		}
		sess.OrgID, sess.CheckedAt = orgID, s.now()
		ck, _, err := s.cfg.Store.CreateSessionWith(ctx, sess, s.cfg.SessionIdle, s.cfg.SessionMax)
		if err != nil {
			return err
		}
		c.Cookie(s.sessionCookie(ck, s.cfg.SessionMax))
		s.cfg.Logger.Info("signed in", "action", "sign_in", "user", sess.UserID, "org", orgID, "via", sess.Via)
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Redirect("/", fiber.StatusSeeOther)
	}
	return s.signinFail(c, refusal)
}

// gateAtSignIn checks orgID's GitHub gate for a sign-in: "" lets it in, else why not.
func (s *Server) gateAtSignIn(ctx context.Context, sess voluntree.Session, orgID string) (string, error) {
	org, err := s.cfg.Store.Org(ctx, orgID)
	if err != nil {
		return "", err
	}
	if org.GitHubOrg == "" {
		return "", nil
	}
	if sess.Via != redisstore.ProviderGitHub || s.cfg.GitHub == nil {
		return org.Name + " requires signing in with GitHub, as a member of " + org.GitHubOrg + ".", nil
	}
	ok, err := s.cfg.GitHub.IsMember(ctx, sess.GitHubToken, org.GitHubOrg)
	if err != nil {
		s.cfg.Logger.Warn("github membership", "action", "sign_in", "error", err)
		return "GitHub did not confirm your membership of " + org.GitHubOrg + ": try again later.", nil
	}
	if !ok {
		return org.Name + " requires membership of the GitHub organization " + org.GitHubOrg + ".", nil
	}
	return "", nil
}

// githubUser finds or makes the user of a GitHub account, keeping its profile up to date.
func (s *Server) githubUser(ctx context.Context, gu github.User) (voluntree.User, error) {
	return s.cfg.Store.UserByIdentity(ctx, redisstore.ProviderGitHub, strconv.FormatInt(gu.ID, 10), func(u *voluntree.User) {
		u.Name, u.Email, u.GitHubLogin, u.GitHubID = cmp.Or(gu.Name, gu.Login), gu.Email, gu.Login, gu.ID
	})
}

// recheckGate checks a GitHub session's membership of its organization's GitHub gate again
// once GateRecheck has passed; false: the session must end.
func (s *Server) recheckGate(ctx context.Context, sess voluntree.Session) (bool, error) {
	org, err := s.cfg.Store.Org(ctx, sess.OrgID)
	if err != nil {
		return false, err
	}
	if org.GitHubOrg == "" {
		return true, nil
	}
	if sess.Via != redisstore.ProviderGitHub {
		return sess.Via == "link", nil // links come from the operator's CLI; others cannot be checked
	}
	if s.now().Sub(sess.CheckedAt) < GateRecheck {
		return true, nil
	}
	if s.cfg.GitHub == nil {
		return false, nil
	}
	ok, err := s.cfg.GitHub.IsMember(ctx, sess.GitHubToken, org.GitHubOrg)
	if err != nil {
		return false, err
	}
	if ok {
		err = s.cfg.Store.MarkSessionChecked(ctx, sess.ID, s.now())
	}
	return ok, err
}
