package redisstore_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/internal/redistest"
	"github.com/voluntree/voluntree/redisstore"
)

// TestStoreOnRedisCluster runs the store's scripts and transactions on a real Redis Cluster (3
// masters, 3 replicas): each must touch one hash slot, or Redis (scripts) and go-redis
// (MULTI, WATCH) refuse it with CROSSSLOT.
func TestStoreOnRedisCluster(t *testing.T) {
	cl := redistest.ClusterFor(t)
	ctx := testCtx(t)
	addrs := make([]string, len(cl.Nodes))
	for i, n := range cl.Nodes {
		addrs[i] = n.Addr()
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { rdb.Close() })
	st, err := redisstore.New(rdb, redisstore.Config{IngestShards: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s on Redis Cluster: %v", what, err)
		}
	}

	must("CheckLayout", st.CheckLayout(ctx))
	rep, err := st.Migrate(ctx, nil)
	must("Migrate", err)
	if rep.Moved != 0 || rep.To != redisstore.Layout {
		t.Fatalf("Migrate of a new cluster = %+v", rep)
	}

	// The organization and its page, tokens, signup and post.
	must("CreateOrg", st.CreateOrg(ctx, voluntree.Organization{ID: "acme", Name: "Acme"}))
	_, err = st.UpdateOrg(ctx, "acme", func(o *voluntree.Organization) error { o.Name = "Acme Inc"; return nil })
	must("UpdateOrg", err)
	token, _, err := st.CreateAdminToken(ctx, "acme", redisstore.TokenOptions{Label: "t"})
	must("CreateAdminToken", err)
	tok, err := st.LookupAdminToken(ctx, token)
	must("LookupAdminToken", err)
	toks, err := st.AdminTokens(ctx, "acme")
	must("AdminTokens", err)
	if len(toks) != 1 {
		t.Fatalf("AdminTokens = %v", toks)
	}
	must("SavePage", st.SavePage(ctx, voluntree.Page{ID: "111", OrgID: "acme", Name: "Acme page"}))
	if err := st.SavePage(ctx, voluntree.Page{ID: "111", OrgID: "other", Name: "Taken"}); voluntree.ErrorCode(err) != voluntree.ECONFLICT {
		t.Fatalf("SavePage of another organization's page = %v, want ECONFLICT", err)
	}
	if pages, err := st.Pages(ctx, "other", 0, 10); err != nil || len(pages.Items) != 0 {
		t.Fatalf("Pages of the organization refused = %+v, %v", pages, err)
	}
	su := voluntree.Signup{ID: "su1", OrgID: "acme", Title: "Beach", CreatedAt: time.Now(),
		Slots: []voluntree.Slot{{ID: "sl1", Required: 1}}}
	must("CreateSignup", st.CreateSignup(ctx, su))
	if sus, err := st.Signups(ctx, "acme", 0, 10); err != nil || len(sus.Items) != 1 {
		t.Fatalf("Signups = %+v, %v", sus, err)
	}
	at := time.Now().Add(time.Hour)
	must("CreatePost", st.CreatePost(ctx, voluntree.Post{ID: "po1", OrgID: "acme", SignupID: "su1", PageID: "111",
		Status: voluntree.PostScheduled, PublishAt: &at, CreatedAt: time.Now()}))
	if posts, err := st.Posts(ctx, "acme", 0, 10); err != nil || len(posts.Items) != 1 {
		t.Fatalf("Posts = %+v, %v", posts, err)
	}

	// The comment path: ingest shards, record, conversations, effects, chat, bookings, events.
	var msgs []voluntree.Message
	for p := range 8 {
		m := comment(fmt.Sprintf("c%d", p))
		m.PageID = fmt.Sprintf("page%d", p)
		msgs = append(msgs, m)
	}
	ids, err := idsOf(st.Enqueue(ctx, msgs))
	must("Enqueue", err)
	if strings.Contains(strings.Join(ids, ","), ",,") || ids[0] == "" {
		t.Fatalf("Enqueue ids %q", ids)
	}
	stats, err := st.Stats(ctx)
	must("Stats", err)
	if stats.Length != int64(len(msgs)) {
		t.Fatalf("Stats = %+v", stats)
	}
	_, err = st.DeadLetters(ctx, 10)
	must("DeadLetters", err)
	// Waiting for replicas: every master of an ingest shard is fenced and waited on apart (each
	// has one replica here: asking for two fails, after the wait, with ErrNotReplicated).
	// Only the master of the shard written is waited on.
	waits := func() map[string]int {
		out := map[string]int{}
		for _, n := range cl.Nodes {
			out[n.Addr()] = redistest.CommandCalls(t, n.Addr(), "wait")
		}
		return out
	}
	for _, want := range []int{1, 2} {
		ws, err := redisstore.New(rdb, redisstore.Config{IngestShards: 4, WaitReplicas: want, WaitTimeout: 300 * time.Millisecond})
		must("New", err)
		m := comment(fmt.Sprintf("w%d", want))
		master, err := rdb.MasterForKey(ctx, st.Keys().IngestShard(ws.ShardOf(m.PageID)))
		must("MasterForKey", err)
		before := waits()
		_, err = idsOf(ws.Enqueue(ctx, []voluntree.Message{m}))
		ws.Close()
		if replicated := !errors.Is(err, redisstore.ErrNotReplicated); replicated != (want == 1) || (want == 1 && err != nil) {
			t.Fatalf("Enqueue waiting for %d replicas = %v", want, err)
		}
		for addr, n := range waits() {
			if d := n - before[addr]; d != 0 && addr != master.Options().Addr || addr == master.Options().Addr && d < 1 {
				t.Errorf("WAITs on %s (the shard's master: %v): %d", addr, addr == master.Options().Addr, d)
			}
		}
	}
	in := interest("u1", 0)
	got, err := st.Record(ctx, "acme", in.PostID, []voluntree.Interest{in})
	must("Record", err)
	if got[0].Outcome != redisstore.NewInterest {
		t.Fatalf("Record = %+v", got)
	}
	if c, err := st.Counts(ctx, "acme", in.PostID); err != nil || c.Interests != 1 {
		t.Fatalf("Counts = %+v, %v", c, err)
	}
	_, err = st.AppendEvent(ctx, "acme", voluntree.Event{Type: voluntree.EventMessage})
	must("AppendEvent", err)
	_, err = st.EventsAfter(ctx, "acme", "0", 10)
	must("EventsAfter", err)
	for i, conv := range []string{"111:u1", "111:u2", "webchat:wc_1"} {
		v, err := st.SaveConversationEffects(ctx, conv, "su1", 0, []byte("state"), []byte("batch"), "", "email")
		must("SaveConversationEffects", err)
		if _, err := st.SaveConversationEffects(ctx, conv, "su1", v-1, []byte("stale"), nil, "email", "booked"); !errors.Is(err, redisstore.ErrStaleConversation) {
			t.Fatalf("stale save %d = %v", i, err)
		}
		must("SaveConversation", st.SaveConversation(ctx, conv, []byte("state2")))
	}
	if stages, err := st.ConversationStages(ctx); err != nil || stages["email"] != 3 {
		t.Fatalf("ConversationStages = %v, %v", stages, err)
	}
	if n, err := st.EffectsLength(ctx); err != nil || n != 3 {
		t.Fatalf("EffectsLength = %d, %v", n, err)
	}
	must("AppendEffects", st.AppendEffects(ctx, "111:u1", []byte("admin")))
	people, total, err := st.SignupPeople(ctx, "su1", 0, 10)
	must("SignupPeople", err)
	if total != 3 || string(people[0].State) != "state2" {
		t.Fatalf("SignupPeople = %d %+v", total, people)
	}
	for range 2 {
		_, err := st.AppendChat(ctx, "webchat:wc_1", redisstore.ChatMessage{From: "page", Text: "hi"}, "webchat:wc_1:1")
		must("AppendChat", err)
	}
	if h, err := st.ChatHistory(ctx, "webchat:wc_1", "", 10); err != nil || len(h) != 1 {
		t.Fatalf("ChatHistory = %+v, %v (want the deduplicated message once)", h, err)
	}
	res, err := st.Book(ctx, "su1", "sl1", 1, "111:u1", redisstore.BookingRecord{}, 0)
	must("Book", err)
	_ = res
	_, _, err = st.CancelBooking(ctx, "su1", "sl1", 1, "111:u1", 0)
	must("CancelBooking", err)
	_, _, err = st.CreateWSTicket(ctx, "acme", time.Minute)
	must("CreateWSTicket", err)

	// The model registry.
	_, err = st.PushModel(ctx, redisstore.ModelVersion{Tag: "v1"}, []byte("model bytes"), time.Hour)
	must("PushModel", err)
	v, _, err := st.ModelFile(ctx, "v1")
	must("ModelFile", err)
	_, err = st.PromoteModel(ctx, "v1", v.SHA256)
	must("PromoteModel", err)

	_, err = st.RevokeAdminToken(ctx, "acme", tok.ID)
	must("RevokeAdminToken", err)
	if _, err := st.LookupAdminToken(ctx, token); voluntree.ErrorCode(err) == "" {
		t.Fatal("a revoked token still works")
	}

	// Posts and signups: edits (the queue and indexes around the post's transaction, the
	// signup's outbox relayed to the effects outbox) and deletion.
	_, err = st.UpdatePost(ctx, "po1", func(p *voluntree.Post) (redisstore.QueueOp, error) {
		p.Status = voluntree.PostDraft
		return redisstore.QueueOp{Remove: true}, nil
	})
	must("UpdatePost (to draft)", err)
	if _, queued, err := st.QueuedAt(ctx, "po1"); err != nil || queued {
		t.Fatalf("a draft is still queued (%v)", err)
	}
	_, err = st.UpdatePost(ctx, "po1", func(p *voluntree.Post) (redisstore.QueueOp, error) {
		p.Status, p.FacebookPostID = voluntree.PostPublished, "111_9"
		return redisstore.QueueOp{}, nil
	})
	must("UpdatePost (published)", err)
	if id, err := st.PostIDByFacebookID(ctx, "111_9"); err != nil || id != "po1" {
		t.Fatalf("PostIDByFacebookID = %q, %v", id, err)
	}
	fx, err := st.EffectsLength(ctx)
	must("EffectsLength", err)
	_, err = st.UpdateSignupWithEffects(ctx, "su1", func(su *voluntree.Signup) error { su.Title = "Beach day"; return nil },
		func(_, _ *voluntree.Signup) ([][]byte, error) { return [][]byte{[]byte("b1"), []byte("b2")}, nil })
	must("UpdateSignupWithEffects", err)
	if n, err := st.EffectsLength(ctx); err != nil || n != fx+2 {
		t.Fatalf("effects after a signup change with 2 batches: %d (before %d), %v", n, fx, err)
	}
	if n, err := st.RelaySignupOutboxes(ctx); err != nil || n != 0 {
		t.Fatalf("RelaySignupOutboxes after the change's own relay = %d, %v", n, err)
	}
	if err := st.DeleteSignup(ctx, "su1", func(*voluntree.Signup) error { return nil }); voluntree.ErrorCode(err) != voluntree.ECONFLICT {
		t.Fatalf("DeleteSignup of a signup with a published post = %v, want ECONFLICT", err)
	}
	must("CreateSignup", st.CreateSignup(ctx, voluntree.Signup{ID: "su2", OrgID: "acme", Title: "Park", CreatedAt: time.Now()}))
	must("CreatePost", st.CreatePost(ctx, voluntree.Post{ID: "po2", OrgID: "acme", SignupID: "su2", PageID: "111",
		Status: voluntree.PostDraft, CreatedAt: time.Now()}))
	must("DeleteSignup", st.DeleteSignup(ctx, "su2", func(*voluntree.Signup) error { return nil }))
	if _, err := st.Post(ctx, "po2"); voluntree.ErrorCode(err) != voluntree.ENOTFOUND {
		t.Fatalf("the deleted signup's draft = %v", err)
	}
	if sus, err := st.Signups(ctx, "acme", 0, 10); err != nil || len(sus.Items) != 1 || sus.Total != 1 {
		t.Fatalf("Signups after DeleteSignup = %+v, %v", sus, err)
	}

	// Accounts: members, sessions, invitations; the email verification.
	for _, id := range []string{"u1", "u2"} {
		must("SaveUser", st.SaveUser(ctx, voluntree.User{ID: id, Name: id, CreatedAt: time.Now()}))
	}
	_, err = st.SetMember(ctx, "acme", "u1", voluntree.RoleOwner)
	must("SetMember", err)
	if _, err := st.SetMember(ctx, "acme", "u1", voluntree.RoleViewer); voluntree.ErrorCode(err) != voluntree.ECONFLICT {
		t.Fatalf("demoting the last owner = %v, want ECONFLICT", err)
	}
	if orgs, err := st.UserOrgs(ctx, "u1"); err != nil || len(orgs) != 1 || orgs[0] != "acme" {
		t.Fatalf("UserOrgs = %q, %v", orgs, err)
	}
	inv, _, err := st.CreateInvitation(ctx, voluntree.Invitation{OrgID: "acme", Email: "u2@example.org", Role: voluntree.RoleAdmin}, time.Hour)
	must("CreateInvitation", err)
	if invs, err := st.Invitations(ctx, "acme"); err != nil || len(invs) != 1 {
		t.Fatalf("Invitations = %+v, %v", invs, err)
	}
	_, err = st.AcceptInvitation(ctx, inv, "u2")
	must("AcceptInvitation", err)
	inv2, invRec, err := st.CreateInvitation(ctx, voluntree.Invitation{OrgID: "acme", Email: "u3@example.org", Role: voluntree.RoleViewer}, time.Hour)
	must("CreateInvitation", err)
	must("RevokeInvitation", st.RevokeInvitation(ctx, "acme", invRec.ID))
	if _, err := st.Invitation(ctx, inv2); voluntree.ErrorCode(err) != voluntree.ENOTFOUND {
		t.Fatalf("a revoked invitation = %v", err)
	}
	cookie, sess, err := st.CreateSession(ctx, "u2", "acme", "github", time.Hour, 24*time.Hour)
	must("CreateSession", err)
	_, err = st.UseSession(ctx, cookie, time.Hour)
	must("UseSession", err)
	must("SwitchSessionOrg", st.SwitchSessionOrg(ctx, sess.ID, "acme"))
	cookie2, sess2, err := st.CreateSession(ctx, "u2", "acme", "link", time.Hour, 24*time.Hour)
	must("CreateSession", err)
	must("DeleteSession", st.DeleteSession(ctx, sess2))
	if _, err := st.UseSession(ctx, cookie2, time.Hour); voluntree.ErrorCode(err) != voluntree.ENOTFOUND {
		t.Fatalf("a signed-out session = %v", err)
	}
	must("RemoveMember", st.RemoveMember(ctx, "acme", "u2"))
	if _, err := st.UseSession(ctx, cookie, time.Hour); voluntree.ErrorCode(err) != voluntree.ENOTFOUND {
		t.Fatalf("a removed member's session = %v", err)
	}
	if orgs, err := st.UserOrgs(ctx, "u2"); err != nil || len(orgs) != 0 {
		t.Fatalf("UserOrgs of a removed member = %q, %v", orgs, err)
	}
	_, err = st.UpdateEmailVerification(ctx, "acme", func(v *redisstore.EmailVerification) (bool, error) {
		v.Challenge = &voluntree.EmailChallenge{Email: "team@acme.example", CodeHash: "h"}
		return true, nil
	})
	must("UpdateEmailVerification", err)
	if v, err := st.EmailVerification(ctx, "acme"); err != nil || v.Challenge == nil || v.Org.Name != "Acme Inc" {
		t.Fatalf("EmailVerification = %+v, %v", v, err)
	}
}
