package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
)

// People, memberships, sessions, one-time sign-in links and invitations. Every secret handed
// out (session cookie, link, invitation, OAuth state) is stored only as its SHA-256.

// Prefixes of the secrets this file issues, so that a leaked one tells what it is.
const (
	SessionPrefix    = "vs_"
	LoginLinkPrefix  = "vl_"
	InvitationPrefix = "vi_"
	OAuthStatePrefix = "vo_"
)

// Identity providers a user can sign in with.
const (
	ProviderGitHub   = "github"
	ProviderFacebook = "facebook"
)

// ---- Users ----

// User returns a user; ENOTFOUND when there is none.
func (s *Store) User(ctx context.Context, id string) (voluntree.User, error) {
	return getJSON[voluntree.User](ctx, s.rdb, s.keys.User(id), "user", id)
}

// SaveUser stores a user (a new one, or changed fields of an existing one).
func (s *Store) SaveUser(ctx context.Context, u voluntree.User) error {
	if u.ID == "" {
		return voluntree.Errorf(voluntree.EINVALID, "user has no id")
	}
	if err := s.rdb.Set(ctx, s.keys.User(u.ID), mustJSON(u), 0).Err(); err != nil {
		return fmt.Errorf("redisstore: save user %s: %w", u.ID, err)
	}
	return nil
}

// UserByIdentity returns the user signed in as externalID at provider, with fill applied: it
// makes the user the first time (atomically: two first sign-ins at once make one user) and
// keeps the profile up to date after (saved only when fill changed it).
func (s *Store) UserByIdentity(ctx context.Context, provider, externalID string, fill func(*voluntree.User)) (voluntree.User, error) {
	if externalID == "" {
		return voluntree.User{}, voluntree.Errorf(voluntree.EINVALID, "%s account without an id", provider)
	}
	key := s.keys.UserIdentity(provider, externalID)
	id, err := s.rdb.Get(ctx, key).Result()
	if err == nil {
		u, err := s.User(ctx, id)
		if err != nil {
			return u, err
		}
		before := u
		fill(&u)
		if u != before {
			err = s.SaveUser(ctx, u)
		}
		return u, err
	}
	if !errors.Is(err, redis.Nil) {
		return voluntree.User{}, fmt.Errorf("redisstore: identity %s: %w", provider, err)
	}
	u := voluntree.User{ID: voluntree.NewID("u"), CreatedAt: time.Now().UTC()}
	fill(&u)
	// The user record first, then the identity claims it; a loser of the race leaves an
	// unreferenced user record, which nothing lists.
	if err := s.SaveUser(ctx, u); err != nil {
		return voluntree.User{}, err
	}
	ok, err := s.rdb.SetNX(ctx, key, u.ID, 0).Result()
	if err != nil {
		return voluntree.User{}, fmt.Errorf("redisstore: claim identity %s: %w", provider, err)
	}
	if !ok {
		_ = s.rdb.Del(ctx, s.keys.User(u.ID)).Err()
		return s.UserByIdentity(ctx, provider, externalID, fill)
	}
	return u, nil
}

// ---- Members ----

// SetMember makes user a member of org with role (a new member, or a role change). Demoting
// the last owner is ECONFLICT: an organization always keeps an owner.
//
// The user's index of organizations and the organization's members are in two slots (Redis
// Cluster): the index first, then the membership, under an optimistic transaction on the
// members alone. UserOrgs keeps only the organizations that have the user as a member, so an
// index entry whose membership was never written (a refused change, a crash) shows nowhere.
func (s *Store) SetMember(ctx context.Context, orgID, userID string, role voluntree.Role) (voluntree.Member, error) {
	if !role.Valid() {
		return voluntree.Member{}, voluntree.FieldErrorf("role", "role must be owner, admin or viewer")
	}
	if _, err := s.Org(ctx, orgID); err != nil {
		return voluntree.Member{}, err
	}
	if _, err := s.User(ctx, userID); err != nil {
		return voluntree.Member{}, err
	}
	key := s.keys.OrgMembers(orgID)
	if err := s.rdb.SAdd(ctx, s.keys.UserOrgs(userID), orgID).Err(); err != nil {
		return voluntree.Member{}, fmt.Errorf("redisstore: organizations of %s: %w", userID, err)
	}
	var out voluntree.Member
	err := s.watch(ctx, func(tx *redis.Tx) error {
		all, err := tx.HGetAll(ctx, key).Result()
		if err != nil {
			return fmt.Errorf("redisstore: members of %s: %w", orgID, err)
		}
		m := voluntree.Member{OrgID: orgID, UserID: userID, Role: role, JoinedAt: time.Now().UTC()}
		if raw, ok := all[userID]; ok {
			prev, err := decodeMember(raw)
			if err != nil {
				return err
			}
			m.JoinedAt = prev.JoinedAt
			if prev.Role == voluntree.RoleOwner && role != voluntree.RoleOwner && owners(all) == 1 {
				return voluntree.Errorf(voluntree.ECONFLICT, "the organization's last owner cannot be demoted: make another member owner first")
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, userID, mustJSON(m))
			return nil
		})
		out = m
		return err
	}, key)
	if err != nil {
		return out, err
	}
	// Again after: a RemoveMember running meanwhile may have taken the entry out.
	if err := s.rdb.SAdd(ctx, s.keys.UserOrgs(userID), orgID).Err(); err != nil {
		return out, fmt.Errorf("redisstore: organizations of %s: %w", userID, err)
	}
	// Tokens the member made keep no more power than the member has now.
	return out, s.revokeTokensOf(ctx, orgID, userID, role)
}

// revokeTokensOf revokes the tokens of org that userID made with a role above keep (every
// one of them when keep is ""): a removed or demoted member's tokens lose what they lost.
func (s *Store) revokeTokensOf(ctx context.Context, orgID, userID string, keep voluntree.Role) error {
	ts, err := s.AdminTokens(ctx, orgID)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.CreatedBy != userID || (keep != "" && keep.AtLeast(t.Role)) {
			continue
		}
		if _, err := s.RevokeAdminToken(ctx, orgID, t.ID); err != nil && voluntree.ErrorCode(err) != voluntree.ENOTFOUND {
			return err
		}
	}
	return nil
}

func decodeMember(raw string) (voluntree.Member, error) {
	return decodeJSON[voluntree.Member](raw, "member")
}

// owners counts the owners among a members hash's values.
func owners(all map[string]string) int {
	n := 0
	for _, raw := range all {
		if m, err := decodeMember(raw); err == nil && m.Role == voluntree.RoleOwner {
			n++
		}
	}
	return n
}

// Member returns a user's membership of org; ENOTFOUND when they are not a member.
func (s *Store) Member(ctx context.Context, orgID, userID string) (voluntree.Member, error) {
	raw, err := s.rdb.HGet(ctx, s.keys.OrgMembers(orgID), userID).Result()
	if errors.Is(err, redis.Nil) {
		return voluntree.Member{}, voluntree.Errorf(voluntree.ENOTFOUND, "not a member of this organization")
	}
	if err != nil {
		return voluntree.Member{}, fmt.Errorf("redisstore: member: %w", err)
	}
	return decodeMember(raw)
}

// Members returns an organization's members with their users, owners first, then by name.
func (s *Store) Members(ctx context.Context, orgID string) ([]voluntree.Member, error) {
	all, err := s.rdb.HGetAll(ctx, s.keys.OrgMembers(orgID)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: members of %s: %w", orgID, err)
	}
	out := make([]voluntree.Member, 0, len(all))
	for _, raw := range all {
		m, err := decodeMember(raw)
		if err != nil {
			return nil, err
		}
		if u, err := s.User(ctx, m.UserID); err == nil {
			m.User = &u
		}
		out = append(out, m)
	}
	sortMembers(out)
	return out, nil
}

// RemoveMember ends a user's membership of org and signs out their sessions there. Removing
// the last owner is ECONFLICT; removing a non-member is ENOTFOUND. The membership goes first,
// then the user's index entry (UserOrgs skips an entry left by a crash in between).
func (s *Store) RemoveMember(ctx context.Context, orgID, userID string) error {
	key := s.keys.OrgMembers(orgID)
	err := s.watch(ctx, func(tx *redis.Tx) error {
		all, err := tx.HGetAll(ctx, key).Result()
		if err != nil {
			return fmt.Errorf("redisstore: members of %s: %w", orgID, err)
		}
		raw, ok := all[userID]
		if !ok {
			return voluntree.Errorf(voluntree.ENOTFOUND, "not a member of this organization")
		}
		if m, err := decodeMember(raw); err == nil && m.Role == voluntree.RoleOwner && owners(all) == 1 {
			return voluntree.Errorf(voluntree.ECONFLICT, "the organization's last owner cannot be removed")
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HDel(ctx, key, userID)
			return nil
		})
		return err
	}, key)
	if err != nil {
		return err
	}
	// The index entry, unless the user became a member again meanwhile (SetMember writes the
	// entry before the membership: then it goes back).
	if err := s.rdb.SRem(ctx, s.keys.UserOrgs(userID), orgID).Err(); err != nil {
		return fmt.Errorf("redisstore: organizations of %s: %w", userID, err)
	}
	if again, err := s.rdb.HExists(ctx, key, userID).Result(); err == nil && again {
		if err := s.rdb.SAdd(ctx, s.keys.UserOrgs(userID), orgID).Err(); err != nil {
			return fmt.Errorf("redisstore: organizations of %s: %w", userID, err)
		}
	}
	if err := s.revokeTokensOf(ctx, orgID, userID, ""); err != nil {
		return err
	}
	return s.revokeSessions(ctx, userID, orgID)
}

// UserOrgs returns the ids of the organizations a user is a member of, sorted: the user's
// index, checked against each organization's members (one more round trip).
func (s *Store) UserOrgs(ctx context.Context, userID string) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, s.keys.UserOrgs(userID)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: organizations of %s: %w", userID, err)
	}
	if len(ids) == 0 {
		return ids, nil
	}
	member := make([]*redis.BoolCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			member[i] = p.HExists(ctx, s.keys.OrgMembers(id), userID)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("redisstore: organizations of %s: %w", userID, err)
	}
	out := ids[:0]
	for i, id := range ids {
		if member[i].Val() {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out, nil
}

// ---- Sessions ----

// CreateSession starts a session for user acting for org, valid for idle without use and
// absolute in all, and returns its cookie token: the only time it is seen.
func (s *Store) CreateSession(ctx context.Context, userID, orgID, via string, idle, absolute time.Duration) (string, Session, error) {
	return s.CreateSessionWith(ctx, Session{UserID: userID, OrgID: orgID, Via: via}, idle, absolute)
}

// CreateSessionWith is CreateSession for a session with a GitHub token (UserID, OrgID, Via,
// GitHubToken and CheckedAt are taken from sess).
func (s *Store) CreateSessionWith(ctx context.Context, sess Session, idle, absolute time.Duration) (string, Session, error) {
	if idle <= 0 || absolute <= 0 {
		return "", Session{}, errors.New("redisstore: session lifetimes must be positive")
	}
	token, err := newToken(SessionPrefix)
	if err != nil {
		return "", Session{}, err
	}
	csrf, err := newToken("")
	if err != nil {
		return "", Session{}, err
	}
	now := time.Now().UTC()
	sess.ID, sess.CSRF, sess.CreatedAt, sess.ExpiresAt = HashToken(token), csrf, now, now.Add(absolute)
	// The user's index first (revokeSessions forgets the ids of sessions that are gone), then
	// the session: two slots on Redis Cluster.
	key := s.keys.Session(sess.ID)
	if err := s.rdb.SAdd(ctx, s.keys.UserSessions(sess.UserID), sess.ID).Err(); err != nil {
		return "", Session{}, fmt.Errorf("redisstore: create session: %w", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "user", sess.UserID, "org", sess.OrgID, "csrf", sess.CSRF, "via", sess.Via,
			"created", sess.CreatedAt.UnixMilli(), "expires", sess.ExpiresAt.UnixMilli(),
			"gh", sess.GitHubToken, "checked", sess.CheckedAt.UnixMilli())
		p.PExpire(ctx, key, min(idle, absolute))
		return nil
	})
	if err != nil {
		return "", Session{}, fmt.Errorf("redisstore: create session: %w", err)
	}
	return token, sess, nil
}

// touchSessionScript reads a session and extends its idle expiry, never past its absolute
// one; an expired session is deleted.
//
// KEYS[1] -> session hash
// ARGV[1] -> now (Unix ms)
// ARGV[2] -> idle lifetime (ms)
// Returns user, org, csrf, via, created, expires, gh, checked; or false.
var touchSessionScript = newScript(`
local h = redis.call('HMGET', KEYS[1], 'user', 'org', 'csrf', 'via', 'created', 'expires', 'gh', 'checked')
if not h[1] or not h[6] then return false end
local left = tonumber(h[6]) - tonumber(ARGV[1])
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return false
end
redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[2]), left))
return h
`)

// UseSession returns the session of a cookie token and extends its idle expiry; ENOTFOUND
// for an unknown, expired or signed-out one.
func (s *Store) UseSession(ctx context.Context, token string, idle time.Duration) (Session, error) {
	if !tokenFormat(token, SessionPrefix, len(SessionPrefix)+43) {
		return Session{}, voluntree.Errorf(voluntree.ENOTFOUND, "unknown session")
	}
	id := HashToken(token)
	res, err := touchSessionScript.Run(ctx, s.rdb, []string{s.keys.Session(id)},
		time.Now().UnixMilli(), idle.Milliseconds()).Slice()
	if errors.Is(err, redis.Nil) {
		return Session{}, voluntree.Errorf(voluntree.ENOTFOUND, "unknown or expired session")
	}
	if err != nil {
		return Session{}, fmt.Errorf("redisstore: session: %w", err)
	}
	f := make([]string, len(res))
	for i, v := range res {
		f[i], _ = v.(string)
	}
	f = append(f, "", "", "") // sessions from before the GitHub fields
	created, _ := strconv.ParseInt(f[4], 10, 64)
	expires, _ := strconv.ParseInt(f[5], 10, 64)
	checked, _ := strconv.ParseInt(f[7], 10, 64)
	return Session{ID: id, UserID: f[0], OrgID: f[1], CSRF: f[2], Via: f[3],
		CreatedAt: time.UnixMilli(created).UTC(), ExpiresAt: time.UnixMilli(expires).UTC(),
		GitHubToken: f[6], CheckedAt: time.UnixMilli(checked).UTC()}, nil
}

// setIfExistsScript sets hash fields of a key that still exists (a session that expired or
// was signed out meanwhile must not come back, without its TTL).
//
// KEYS[1] -> the hash; ARGV -> field, value, ...
// Returns 1, or 0 when the key is gone.
var setIfExistsScript = newScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`)

func (s *Store) setSessionFields(ctx context.Context, sessionID string, fields ...any) error {
	n, err := setIfExistsScript.Run(ctx, s.rdb, []string{s.keys.Session(sessionID)}, fields...).Int()
	if err != nil {
		return fmt.Errorf("redisstore: session: %w", err)
	}
	if n == 0 {
		return voluntree.Errorf(voluntree.ENOTFOUND, "unknown or expired session")
	}
	return nil
}

// SwitchSessionOrg makes a session act for another organization (the caller checked the
// membership). Its GitHub gate is due for a check at once.
func (s *Store) SwitchSessionOrg(ctx context.Context, sessionID, orgID string) error {
	return s.setSessionFields(ctx, sessionID, "org", orgID, "checked", 0)
}

// MarkSessionChecked records when a session's GitHub gate was last checked.
func (s *Store) MarkSessionChecked(ctx context.Context, sessionID string, at time.Time) error {
	return s.setSessionFields(ctx, sessionID, "checked", at.UnixMilli())
}

// DeleteSession signs a session out: the session, then the user's index entry.
func (s *Store) DeleteSession(ctx context.Context, sess Session) error {
	if err := s.rdb.Del(ctx, s.keys.Session(sess.ID)).Err(); err != nil {
		return fmt.Errorf("redisstore: delete session: %w", err)
	}
	if err := s.rdb.SRem(ctx, s.keys.UserSessions(sess.UserID), sess.ID).Err(); err != nil {
		return fmt.Errorf("redisstore: delete session: %w", err)
	}
	return nil
}

// revokeSessions signs out a user's sessions acting for org (every one when org is ""), and
// forgets the ids of sessions that expired.
func (s *Store) revokeSessions(ctx context.Context, userID, orgID string) error {
	ids, err := s.rdb.SMembers(ctx, s.keys.UserSessions(userID)).Result()
	if err != nil {
		return fmt.Errorf("redisstore: sessions of %s: %w", userID, err)
	}
	if len(ids) == 0 {
		return nil
	}
	orgs := make([]*redis.StringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			orgs[i] = p.HGet(ctx, s.keys.Session(id), "org")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redisstore: sessions of %s: %w", userID, err)
	}
	// Each session is deleted before its index entry (one pipeline; the keys are in several
	// slots on Redis Cluster, and each command is idempotent).
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			org, err := orgs[i].Result()
			switch {
			case errors.Is(err, redis.Nil): // expired
				p.SRem(ctx, s.keys.UserSessions(userID), id)
			case orgID == "" || org == orgID:
				p.Del(ctx, s.keys.Session(id))
				p.SRem(ctx, s.keys.UserSessions(userID), id)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: revoke sessions of %s: %w", userID, err)
	}
	return nil
}

// ---- One-time sign-in links ----

// CreateLoginLink issues a token that signs user in, acting for org, once within ttl.
func (s *Store) CreateLoginLink(ctx context.Context, l LoginLink, ttl time.Duration) (string, error) {
	return s.createSingleUse(ctx, LoginLinkPrefix, s.keys.LoginLink, l, ttl, "sign-in link")
}

// createSingleUse stores v under a new random token (its key: the token's hash) for ttl, and
// returns the token: getDelJSON spends it.
func (s *Store) createSingleUse(ctx context.Context, prefix string, key func(string) string, v any, ttl time.Duration, what string) (string, error) {
	token, err := newToken(prefix)
	if err != nil {
		return "", err
	}
	if err := s.rdb.Set(ctx, key(HashToken(token)), mustJSON(v), ttl).Err(); err != nil {
		return "", fmt.Errorf("redisstore: create %s: %w", what, err)
	}
	return token, nil
}

// UseLoginLink spends a sign-in link token; ENOTFOUND when it is unknown, used or expired.
func (s *Store) UseLoginLink(ctx context.Context, token string) (LoginLink, error) {
	return getDelJSON[LoginLink](ctx, s, token, LoginLinkPrefix, s.keys.LoginLink, "sign-in link")
}

// ---- OAuth state ----

// CreateOAuthState stores a sign-in in progress and returns its state parameter.
func (s *Store) CreateOAuthState(ctx context.Context, st OAuthState, ttl time.Duration) (string, error) {
	return s.createSingleUse(ctx, OAuthStatePrefix, s.keys.OAuthState, st, ttl, "sign-in state")
}

// UseOAuthState spends a state parameter (single use); ENOTFOUND when unknown, used or expired.
func (s *Store) UseOAuthState(ctx context.Context, state string) (OAuthState, error) {
	return getDelJSON[OAuthState](ctx, s, state, OAuthStatePrefix, s.keys.OAuthState, "sign-in state")
}

// getDelJSON reads and deletes the JSON record of a single-use token.
func getDelJSON[T any](ctx context.Context, s *Store, token, prefix string, key func(string) string, what string) (T, error) {
	var zero T
	if !tokenFormat(token, prefix, len(prefix)+43) {
		return zero, voluntree.Errorf(voluntree.ENOTFOUND, "unknown %s", what)
	}
	raw, err := s.rdb.GetDel(ctx, key(HashToken(token))).Result()
	if errors.Is(err, redis.Nil) {
		return zero, voluntree.Errorf(voluntree.ENOTFOUND, "unknown, used or expired %s", what)
	}
	if err != nil {
		return zero, fmt.Errorf("redisstore: %s: %w", what, err)
	}
	return decodeJSON[T](raw, what)
}

// ---- Invitations ----

// CreateInvitation stores an invitation valid for ttl and returns the token its email
// carries: the only time it is seen.
func (s *Store) CreateInvitation(ctx context.Context, inv voluntree.Invitation, ttl time.Duration) (string, voluntree.Invitation, error) {
	if !inv.Role.Valid() {
		return "", inv, voluntree.FieldErrorf("role", "role must be owner, admin or viewer")
	}
	token, err := newToken(InvitationPrefix)
	if err != nil {
		return "", inv, err
	}
	now := time.Now().UTC()
	inv.ID, inv.CreatedAt, inv.ExpiresAt = HashToken(token), now, now.Add(ttl)
	// The organization's index first (it drops entries by expiry, and a list skips one with no
	// record), then the invitation: two slots on Redis Cluster.
	if err := s.rdb.ZAdd(ctx, s.keys.OrgInvitations(inv.OrgID), redis.Z{Score: ms(inv.ExpiresAt), Member: inv.ID}).Err(); err != nil {
		return "", inv, fmt.Errorf("redisstore: create invitation: index: %w", err)
	}
	if err := s.rdb.Set(ctx, s.keys.Invitation(inv.ID), mustJSON(inv), ttl).Err(); err != nil {
		return "", inv, fmt.Errorf("redisstore: create invitation: %w", err)
	}
	return token, inv, nil
}

// Invitations returns an organization's open invitations, the soonest to expire first.
func (s *Store) Invitations(ctx context.Context, orgID string) ([]voluntree.Invitation, error) {
	key := s.keys.OrgInvitations(orgID)
	if err := s.rdb.ZRemRangeByScore(ctx, key, "-inf", strconv.FormatInt(time.Now().UnixMilli(), 10)).Err(); err != nil {
		return nil, fmt.Errorf("redisstore: invitations: %w", err)
	}
	ids, err := s.rdb.ZRange(ctx, key, 0, 499).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: invitations: %w", err)
	}
	return jsonRecords[voluntree.Invitation](s.keys.Invitation, "invitation")(ctx, s, ids)
}

// RevokeInvitation deletes an open invitation of org; ENOTFOUND when there is none.
func (s *Store) RevokeInvitation(ctx context.Context, orgID, id string) error {
	inv, err := getJSON[voluntree.Invitation](ctx, s.rdb, s.keys.Invitation(id), "invitation", id)
	if err != nil || inv.OrgID != orgID {
		return voluntree.Errorf(voluntree.ENOTFOUND, "no open invitation %.16s…", id)
	}
	// The invitation, then its index entry (a list skips an entry with no record).
	if err := s.rdb.Del(ctx, s.keys.Invitation(id)).Err(); err != nil {
		return fmt.Errorf("redisstore: revoke invitation: %w", err)
	}
	if err := s.rdb.ZRem(ctx, s.keys.OrgInvitations(orgID), id).Err(); err != nil {
		return fmt.Errorf("redisstore: revoke invitation: index: %w", err)
	}
	return nil
}

// Invitation returns the open invitation of a token without spending it; ENOTFOUND when it
// is unknown, used, revoked or expired.
func (s *Store) Invitation(ctx context.Context, token string) (voluntree.Invitation, error) {
	if !tokenFormat(token, InvitationPrefix, len(InvitationPrefix)+43) {
		return voluntree.Invitation{}, voluntree.Errorf(voluntree.ENOTFOUND, "unknown invitation")
	}
	return getJSON[voluntree.Invitation](ctx, s.rdb, s.keys.Invitation(HashToken(token)), "invitation", "")
}

// AcceptInvitation spends an invitation token: user becomes a member of its organization with
// its role (a member already keeps the higher of both roles).
func (s *Store) AcceptInvitation(ctx context.Context, token, userID string) (voluntree.Member, error) {
	inv, err := getDelJSON[voluntree.Invitation](ctx, s, token, InvitationPrefix, s.keys.Invitation, "invitation")
	if err != nil {
		return voluntree.Member{}, err
	}
	_ = s.rdb.ZRem(ctx, s.keys.OrgInvitations(inv.OrgID), inv.ID).Err()
	role := inv.Role
	if m, err := s.Member(ctx, inv.OrgID, userID); err == nil && m.Role.AtLeast(role) {
		return m, nil
	}
	return s.SetMember(ctx, inv.OrgID, userID, role)
}

func decodeJSON[T any](raw, what string) (T, error) {
	var v T
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return v, fmt.Errorf("redisstore: decode %s: %w", what, err)
	}
	return v, nil
}

// sortMembers orders owners first, then admins, then viewers; by name (then id) within.
func sortMembers(ms []voluntree.Member) {
	name := func(m voluntree.Member) string {
		if m.User != nil {
			return strings.ToLower(m.User.Name)
		}
		return ""
	}
	slices.SortFunc(ms, func(a, b voluntree.Member) int {
		if a.Role != b.Role {
			if a.Role.AtLeast(b.Role) {
				return -1
			}
			return 1
		}
		return cmp.Or(strings.Compare(name(a), name(b)), strings.Compare(a.UserID, b.UserID))
	})
}

// LoginLinkFor issues a one-time sign-in link for org, valid for ttl: as userID when given (a
// member), else as the organization's first owner, else as a new owner named name (how an
// organization's first person signs in, from the CLI).
func (s *Store) LoginLinkFor(ctx context.Context, orgID, userID, name string, ttl time.Duration) (string, LoginLink, error) {
	if _, err := s.Org(ctx, orgID); err != nil {
		return "", LoginLink{}, err
	}
	if userID != "" {
		if _, err := s.Member(ctx, orgID, userID); err != nil {
			return "", LoginLink{}, voluntree.Errorf(voluntree.ENOTFOUND, "user %q is not a member of %s", userID, orgID)
		}
	} else {
		ms, err := s.Members(ctx, orgID)
		if err != nil {
			return "", LoginLink{}, err
		}
		if len(ms) > 0 && ms[0].Role == voluntree.RoleOwner {
			userID = ms[0].UserID
		} else {
			u := voluntree.User{ID: voluntree.NewID("u"), Name: name, CreatedAt: time.Now().UTC()}
			if err := s.SaveUser(ctx, u); err != nil {
				return "", LoginLink{}, err
			}
			if _, err := s.SetMember(ctx, orgID, u.ID, voluntree.RoleOwner); err != nil {
				return "", LoginLink{}, err
			}
			userID = u.ID
		}
	}
	l := LoginLink{UserID: userID, OrgID: orgID}
	token, err := s.CreateLoginLink(ctx, l, ttl)
	return token, l, err
}
