package httpapi

import (
	"cmp"
	"context"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/redisstore"
)

// Signing in with Facebook Login (the app that connects pages): the same single-use state
// bound to the browser as GitHub's, the scopes public_profile and email, and the person's
// app-scoped id as their identity.

// FacebookSignIn is what the sign-in needs of Facebook (facebook.Graph).
type FacebookSignIn interface {
	LoginDialogURL(redirectURI, state string, scopes []string) string
	ExchangeCode(ctx context.Context, code, redirectURI string) (facebook.UserToken, error)
	Me(ctx context.Context, userToken string) (facebook.Person, error)
}

// FacebookSignInCallback is where Facebook sends the browser back after a sign-in.
const FacebookSignInCallback = "/auth/facebook/callback"

func (s *Server) facebookSignInCallbackURL() string {
	return strings.TrimSuffix(s.cfg.PublicURL, "/") + FacebookSignInCallback
}

// facebookStart answers GET /auth/facebook[?invitation=vi_…].
func (s *Server) facebookStart(c *fiber.Ctx) error {
	if s.cfg.FacebookSignIn == nil {
		return voluntree.Errorf(voluntree.EUNAVAILABLE, "Facebook sign-in is not configured on this server (VOLUNTREE_FB_APP_ID, VOLUNTREE_FB_APP_SECRET)")
	}
	return s.startOAuth(c, redisstore.ProviderFacebook, func(state string) string {
		return s.cfg.FacebookSignIn.LoginDialogURL(s.facebookSignInCallbackURL(), state, []string{"public_profile", "email"})
	})
}

// facebookSignInCallback answers GET /auth/facebook/callback?code=&state= (or ?error=).
func (s *Server) facebookSignInCallback(c *fiber.Ctx) error {
	if s.cfg.FacebookSignIn == nil {
		return voluntree.Errorf(voluntree.EUNAVAILABLE, "Facebook sign-in is not configured on this server")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), max(s.cfg.RequestTimeout, CallbackTimeout))
	defer cancel()
	st, msg, err := s.checkOAuth(ctx, c, redisstore.ProviderFacebook, "Facebook")
	if err != nil {
		return err
	}
	if msg != "" {
		return s.signinFail(c, msg)
	}
	tok, err := s.cfg.FacebookSignIn.ExchangeCode(ctx, c.Query("code"), s.facebookSignInCallbackURL())
	if err != nil {
		s.cfg.Logger.Warn("facebook code exchange", "action", "sign_in", "error", err)
		return s.signinFail(c, "Facebook did not confirm the sign-in: start again.")
	}
	me, err := s.cfg.FacebookSignIn.Me(ctx, tok.AccessToken)
	if err != nil {
		s.cfg.Logger.Warn("facebook me", "action", "sign_in", "error", err)
		return s.signinFail(c, "Facebook did not tell who you are: start again.")
	}
	fill := func(u *voluntree.User) {
		u.Name, u.FacebookID = cmp.Or(me.Name, "Facebook user"), me.ID
		if me.Email != "" {
			u.Email = me.Email
		}
	}
	user, err := s.cfg.Store.UserByIdentity(ctx, redisstore.ProviderFacebook, me.ID, fill)
	if err != nil {
		return err
	}
	return s.finishSignIn(ctx, c, voluntree.Session{UserID: user.ID, Via: redisstore.ProviderFacebook}, st.Invitation)
}
