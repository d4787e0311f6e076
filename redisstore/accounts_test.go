package redisstore_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

func newUser(t *testing.T, st *redisstore.Store, name string) voluntree.User {
	t.Helper()
	u := voluntree.User{ID: voluntree.NewID("u"), Name: name, CreatedAt: time.Now().UTC()}
	if err := st.SaveUser(testCtx(t), u); err != nil {
		t.Fatal(err)
	}
	return u
}

func newOrg(t *testing.T, st *redisstore.Store, id string) {
	t.Helper()
	if err := st.CreateOrg(testCtx(t), voluntree.Organization{ID: id, Name: "Org " + id}); err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if voluntree.ErrorCode(err) != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
}

func TestMembersKeepAnOwner(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := newStore(t, redisstore.Config{})
	newOrg(t, st, "o1")
	ada, bob := newUser(t, st, "Ada"), newUser(t, st, "Bob")
	if _, err := st.SetMember(ctx, "o1", ada.ID, voluntree.RoleOwner); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetMember(ctx, "o1", bob.ID, voluntree.RoleViewer); err != nil {
		t.Fatal(err)
	}
	// The only owner can be neither demoted nor removed.
	_, err := st.SetMember(ctx, "o1", ada.ID, voluntree.RoleAdmin)
	wantCode(t, err, voluntree.ECONFLICT)
	wantCode(t, st.RemoveMember(ctx, "o1", ada.ID), voluntree.ECONFLICT)
	// With a second owner, the first can step down; joined time is kept.
	first, _ := st.Member(ctx, "o1", ada.ID)
	if _, err := st.SetMember(ctx, "o1", bob.ID, voluntree.RoleOwner); err != nil {
		t.Fatal(err)
	}
	m, err := st.SetMember(ctx, "o1", ada.ID, voluntree.RoleAdmin)
	if err != nil || m.Role != voluntree.RoleAdmin || !m.JoinedAt.Equal(first.JoinedAt) {
		t.Fatalf("step down: %+v, %v", m, err)
	}
	ms, err := st.Members(ctx, "o1")
	if err != nil || len(ms) != 2 || ms[0].UserID != bob.ID || ms[0].User == nil || ms[0].User.Name != "Bob" {
		t.Fatalf("members %+v, %v: want Bob (owner) first, with his user", ms, err)
	}
	if orgs, _ := st.UserOrgs(ctx, ada.ID); len(orgs) != 1 || orgs[0] != "o1" {
		t.Fatalf("Ada's orgs %v", orgs)
	}
	if err := st.RemoveMember(ctx, "o1", ada.ID); err != nil {
		t.Fatal(err)
	}
	_, err = st.Member(ctx, "o1", ada.ID)
	wantCode(t, err, voluntree.ENOTFOUND)
	if orgs, _ := st.UserOrgs(ctx, ada.ID); len(orgs) != 0 {
		t.Fatalf("Ada's orgs after removal %v", orgs)
	}
	wantCode(t, st.RemoveMember(ctx, "o1", ada.ID), voluntree.ENOTFOUND)
	_, err = st.SetMember(ctx, "o1", "u_nobody", voluntree.RoleAdmin)
	wantCode(t, err, voluntree.ENOTFOUND)
	_, err = st.SetMember(ctx, "o1", bob.ID, voluntree.Role("king"))
	wantCode(t, err, voluntree.EINVALID)
}

func TestSessions(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	newOrg(t, st, "o1")
	newOrg(t, st, "o2")
	ada := newUser(t, st, "Ada")
	for _, o := range []string{"o1", "o2"} {
		if _, err := st.SetMember(ctx, o, ada.ID, voluntree.RoleOwner); err != nil {
			t.Fatal(err)
		}
	}
	token, sess, err := st.CreateSession(ctx, ada.ID, "o1", "link", time.Hour, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.UseSession(ctx, token, time.Hour)
	if err != nil || got.ID != sess.ID || got.UserID != ada.ID || got.OrgID != "o1" || !got.CheckCSRF(sess.CSRF) ||
		got.CheckCSRF("") || got.CheckCSRF(sess.CSRF+"x") || !got.ExpiresAt.Equal(sess.ExpiresAt.Truncate(time.Millisecond)) {
		t.Fatalf("UseSession = %+v, %v; want %+v", got, err, sess)
	}
	key := st.Keys().Session(sess.ID)
	// Each use moves the idle expiry to idle from now, never past the absolute one.
	if ttl := rdb.PTTL(ctx, key).Val(); ttl < 59*time.Minute || ttl > time.Hour {
		t.Fatalf("idle TTL %s, want about 1h", ttl)
	}
	if _, err := st.UseSession(ctx, token, 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl > 24*time.Hour || ttl < 23*time.Hour {
		t.Fatalf("TTL %s with a 48h idle time, want the absolute expiry (24h)", ttl)
	}
	// Past its absolute expiry it is gone, whatever its idle time.
	if err := rdb.HSet(ctx, key, "expires", time.Now().Add(-time.Second).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = st.UseSession(ctx, token, time.Hour)
	wantCode(t, err, voluntree.ENOTFOUND)
	if n := rdb.Exists(ctx, key).Val(); n != 0 {
		t.Fatal("an expired session is kept")
	}
	// Malformed and unknown tokens.
	for _, bad := range []string{"", "vs_short", token + "x", "vt_" + token[3:]} {
		_, err := st.UseSession(ctx, bad, time.Hour)
		wantCode(t, err, voluntree.ENOTFOUND)
	}

	// Removing a member signs out their sessions in that organization only.
	t1, _, _ := st.CreateSession(ctx, ada.ID, "o1", "link", time.Hour, time.Hour)
	t2, s2, _ := st.CreateSession(ctx, ada.ID, "o2", "link", time.Hour, time.Hour)
	bob := newUser(t, st, "Bob")
	if _, err := st.SetMember(ctx, "o1", bob.ID, voluntree.RoleOwner); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveMember(ctx, "o1", ada.ID); err != nil {
		t.Fatal(err)
	}
	_, err = st.UseSession(ctx, t1, time.Hour)
	wantCode(t, err, voluntree.ENOTFOUND)
	if _, err := st.UseSession(ctx, t2, time.Hour); err != nil {
		t.Fatalf("the session in the other organization ended: %v", err)
	}
	// Logout.
	if err := st.DeleteSession(ctx, s2); err != nil {
		t.Fatal(err)
	}
	_, err = st.UseSession(ctx, t2, time.Hour)
	wantCode(t, err, voluntree.ENOTFOUND)
	if n := rdb.SCard(ctx, st.Keys().UserSessions(ada.ID)).Val(); n != 0 {
		t.Fatalf("%d session ids left in Ada's set", n)
	}
}

func TestLoginLinksAndStatesAreSingleUse(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	newOrg(t, st, "o1")
	// The first link of an organization without members makes its owner.
	token, link, err := st.LoginLinkFor(ctx, "o1", "", "First owner", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.Member(ctx, "o1", link.UserID)
	if err != nil || m.Role != voluntree.RoleOwner {
		t.Fatalf("the link's user: %+v, %v", m, err)
	}
	if ttl := rdb.TTL(ctx, st.Keys().LoginLink(redisstore.HashToken(token))).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("link TTL %s", ttl)
	}
	// Later links sign in as the same owner.
	_, again, err := st.LoginLinkFor(ctx, "o1", "", "Another", time.Minute)
	if err != nil || again.UserID != link.UserID {
		t.Fatalf("second link %+v, %v; want user %s", again, err, link.UserID)
	}
	// Used once, concurrently: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Go(func() {
			if l, err := st.UseLoginLink(context.Background(), token); err == nil && l == link {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("the link worked %d times", wins)
	}
	_, _, err = st.LoginLinkFor(ctx, "o1", "u_stranger", "", time.Minute)
	wantCode(t, err, voluntree.ENOTFOUND)
	_, _, err = st.LoginLinkFor(ctx, "o_missing", "", "", time.Minute)
	wantCode(t, err, voluntree.ENOTFOUND)

	state, err := st.CreateOAuthState(ctx, redisstore.OAuthState{Provider: "github", Browser: "b"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.UseOAuthState(ctx, state); err != nil || got.Browser != "b" {
		t.Fatalf("state %+v, %v", got, err)
	}
	_, err = st.UseOAuthState(ctx, state)
	wantCode(t, err, voluntree.ENOTFOUND)
}

func TestInvitations(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := newStore(t, redisstore.Config{})
	newOrg(t, st, "o1")
	newOrg(t, st, "o2")
	owner := newUser(t, st, "Owner")
	token, inv, err := st.CreateInvitation(ctx, voluntree.Invitation{OrgID: "o1", Email: "cy@example.org",
		Role: voluntree.RoleAdmin, InvitedBy: owner.ID}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	list, err := st.Invitations(ctx, "o1")
	if err != nil || len(list) != 1 || list[0].ID != inv.ID || list[0].Email != "cy@example.org" {
		t.Fatalf("invitations %+v, %v", list, err)
	}
	if got, err := st.Invitation(ctx, token); err != nil || got.ID != inv.ID {
		t.Fatalf("Invitation = %+v, %v", got, err)
	}
	// Another organization cannot revoke it.
	wantCode(t, st.RevokeInvitation(ctx, "o2", inv.ID), voluntree.ENOTFOUND)
	cy := newUser(t, st, "Cy")
	m, err := st.AcceptInvitation(ctx, token, cy.ID)
	if err != nil || m.Role != voluntree.RoleAdmin || m.OrgID != "o1" {
		t.Fatalf("accept: %+v, %v", m, err)
	}
	_, err = st.AcceptInvitation(ctx, token, cy.ID)
	wantCode(t, err, voluntree.ENOTFOUND)
	if list, _ := st.Invitations(ctx, "o1"); len(list) != 0 {
		t.Fatalf("accepted invitation still listed: %+v", list)
	}
	// An invitation with a lower role does not demote a member.
	t2, _, _ := st.CreateInvitation(ctx, voluntree.Invitation{OrgID: "o1", Email: "cy@example.org", Role: voluntree.RoleViewer}, time.Hour)
	if m, err := st.AcceptInvitation(ctx, t2, cy.ID); err != nil || m.Role != voluntree.RoleAdmin {
		t.Fatalf("lower invitation: %+v, %v", m, err)
	}
	// Revoked.
	t3, inv3, _ := st.CreateInvitation(ctx, voluntree.Invitation{OrgID: "o1", Email: "d@example.org", Role: voluntree.RoleViewer}, time.Hour)
	if err := st.RevokeInvitation(ctx, "o1", inv3.ID); err != nil {
		t.Fatal(err)
	}
	_, err = st.AcceptInvitation(ctx, t3, cy.ID)
	wantCode(t, err, voluntree.ENOTFOUND)
}

func TestAdminTokens(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	newOrg(t, st, "o1")
	newOrg(t, st, "o2")
	tok, rec, err := st.CreateAdminToken(ctx, "o1", redisstore.TokenOptions{Label: "ci", Role: voluntree.RoleViewer, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.LookupAdminToken(ctx, tok)
	if err != nil || got.Role != voluntree.RoleViewer || got.ID != rec.ID || got.ExpiresAt.IsZero() {
		t.Fatalf("lookup %+v, %v", got, err)
	}
	if ttl := rdb.TTL(ctx, st.Keys().AdminToken(redisstore.HashToken(tok))).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("token key TTL %s, want the token's lifetime", ttl)
	}
	// A token from before roles acts as an owner.
	legacy := `{"org_id":"o1","label":"old","hint":"vt_abcdef","created_at":"2025-01-01T00:00:00Z"}`
	legacyToken := "vt_legacy-token-of-an-earlier-version"
	lh := redisstore.HashToken(legacyToken)
	rdb.Set(ctx, st.Keys().AdminToken(lh), legacy, 0)
	rdb.ZAdd(ctx, st.Keys().OrgTokens("o1"), redis.Z{Score: 1, Member: lh})
	if got, err := st.LookupAdminToken(ctx, legacyToken); err != nil || got.Role != voluntree.RoleOwner || got.ID != lh[:12] {
		t.Fatalf("legacy token %+v, %v", got, err)
	}
	list, err := st.AdminTokens(ctx, "o1")
	if err != nil || len(list) != 2 || list[0].ID != lh[:12] || list[1].ID != rec.ID {
		t.Fatalf("tokens %+v, %v", list, err)
	}
	// Another organization cannot revoke it; its own can, and it is refused at once.
	_, err = st.RevokeAdminToken(ctx, "o2", rec.ID)
	wantCode(t, err, voluntree.ENOTFOUND)
	if _, err := st.RevokeAdminToken(ctx, "o1", rec.ID); err != nil {
		t.Fatal(err)
	}
	_, err = st.LookupAdminToken(ctx, tok)
	wantCode(t, err, voluntree.ENOTFOUND)
	// An expired record is refused even before Redis drops its key.
	tok2, rec2, _ := st.CreateAdminToken(ctx, "o1", redisstore.TokenOptions{})
	rec2.ExpiresAt = time.Now().Add(-time.Minute)
	rec2.ID = ""
	rdb.Set(ctx, st.Keys().AdminToken(redisstore.HashToken(tok2)), mustJSONString(t, rec2), 0)
	_, err = st.LookupAdminToken(ctx, tok2)
	wantCode(t, err, voluntree.ENOTFOUND)
	_, _, err = st.CreateAdminToken(ctx, "o1", redisstore.TokenOptions{Role: "root"})
	wantCode(t, err, voluntree.EINVALID)
	_, _, err = st.CreateAdminToken(ctx, "o1", redisstore.TokenOptions{Label: "two\nlines"})
	wantCode(t, err, voluntree.EINVALID)
}

func mustJSONString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
