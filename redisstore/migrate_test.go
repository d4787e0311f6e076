package redisstore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// TestCheckLayoutStampsAnEmptyRedis: a Redis with no Voluntree keys is stamped with the
// current layout; a newer stamp is refused.
func TestCheckLayoutStampsAnEmptyRedis(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	if err := st.CheckLayout(ctx); err != nil {
		t.Fatalf("CheckLayout on an empty Redis: %v", err)
	}
	if v, _ := rdb.Get(ctx, st.Keys().Layout()).Int(); v != redisstore.Layout {
		t.Fatalf("layout stamp %d, want %d", v, redisstore.Layout)
	}
	if err := st.CheckLayout(ctx); err != nil {
		t.Fatalf("CheckLayout again: %v", err)
	}
	rdb.Set(ctx, st.Keys().Layout(), redisstore.Layout+1, 0)
	if err := st.CheckLayout(ctx); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("CheckLayout of a newer layout = %v", err)
	}
	if _, err := st.Migrate(ctx, nil); err == nil {
		t.Fatal("Migrate went back from a newer layout")
	}
}

// moveTo renames a key, on any deployment (RENAME is refused across Redis Cluster slots).
func moveTo(t *testing.T, ctx context.Context, rdb redis.UniversalClient, from, to string) {
	t.Helper()
	dump, err := rdb.Dump(ctx, from).Result()
	if err == nil {
		err = rdb.Restore(ctx, to, 0, dump).Err()
	}
	if err == nil {
		err = rdb.Del(ctx, from).Err()
	}
	if err != nil {
		t.Fatalf("move %s to %s: %v", from, to, err)
	}
}

// existing counts the keys that exist (one at a time: they are in several slots).
func existing(ctx context.Context, rdb redis.UniversalClient, keys ...string) int {
	n := 0
	for _, k := range keys {
		n += int(rdb.Exists(ctx, k).Val())
	}
	return n
}

// keysMatching returns the keys matching pattern, on every master of a cluster.
func keysMatching(t *testing.T, ctx context.Context, rdb redis.UniversalClient, pattern string) []string {
	t.Helper()
	var mu sync.Mutex
	var out []string
	scan := func(ctx context.Context, c *redis.Client) error {
		ks, err := c.Keys(ctx, pattern).Result()
		mu.Lock()
		out = append(out, ks...)
		mu.Unlock()
		return err
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, scan)
	} else {
		err = scan(ctx, rdb.(*redis.Client))
	}
	if err != nil {
		t.Fatalf("keys %s: %v", pattern, err)
	}
	return out
}

// oldLayout writes what a layout-1 Voluntree left: an organization with a page, a post's
// recorded messages under {post:P}, a page inbox, a post of a page of no organization, and the
// organization's interest and volunteer indexes under org:O.
func oldLayout(t *testing.T, ctx context.Context, st *redisstore.Store, rdb redis.UniversalClient) (pre string) {
	t.Helper()
	if err := st.CreateOrg(ctx, voluntree.Organization{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SavePage(ctx, voluntree.Page{ID: "111", OrgID: "acme", Name: "Acme page"}); err != nil {
		t.Fatal(err)
	}
	pre = st.Keys().Prefix() + ":"
	moveTo(t, ctx, rdb, st.Keys().Org("acme"), pre+"org:acme") // layout 1's name
	p := rdb.Pipeline()
	p.Set(ctx, pre+"org:acme:emailcode", `{"email":"team@acme.example","code_hash":"h","attempts":1}`, time.Hour)
	p.Set(ctx, pre+"signup:su_1", `{"id":"su_1","org_id":"acme","title":"Beach cleanup"}`, 0)
	p.ZAdd(ctx, pre+"signup:su_1:posts", redis.Z{Score: 1, Member: "po_1"})
	p.HSet(ctx, pre+"{post:111_222}:classified", "c1", "interested", "c2", "question")
	p.HSet(ctx, pre+"{post:111_222}:intents", "interested", 1, "question", 1)
	p.ZAdd(ctx, pre+"{post:111_222}:interests", redis.Z{Score: 1, Member: "c1"})
	p.HSet(ctx, pre+"{post:111_222}:interest:c1", "page_id", "111", "sender_id", "u1", "sender_name", "Ada",
		"kind", "comment", "text", "count me in", "confidence", "0.9",
		"created_at", baseTime.Format(time.RFC3339Nano), "received_at", baseTime.Format(time.RFC3339Nano),
		"recorded_at", baseTime.Format(time.RFC3339Nano))
	p.HSet(ctx, pre+"{post:page:111}:intents", "thanks", 2)
	p.HSet(ctx, pre+"{post:999_1}:intents", "interested", 5) // a page nobody connected
	p.Expire(ctx, pre+"{post:999_1}:intents", time.Hour)
	p.Set(ctx, pre+"{conv:111:u1}", "state-bytes", 0)
	p.Set(ctx, pre+"{conv:111:u1}:v", 3, 0)
	p.HSet(ctx, pre+"{conv:111:u1}:delivery", "error", "outside_window") // unchanged name
	p.HSet(ctx, pre+"conversations:stages", "booked", 4, "email", 1)
	p.Set(ctx, pre+"chat:dedupe:webchat:wc_1:7", 1, time.Hour)
	p.ZAdd(ctx, pre+"org:acme:interests", redis.Z{Score: 1, Member: "111:u1|c1"})
	p.ZAdd(ctx, pre+"org:acme:volunteers", redis.Z{Score: 1, Member: "111:u1"})
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	return pre
}

func TestMigrateFromLayout1(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	pre := oldLayout(t, ctx, st, rdb)
	rdb.Del(ctx, st.Keys().Layout()) // SavePage's store was new: what layout 1 had, no stamp
	if err := st.CheckLayout(ctx); !errors.Is(err, redisstore.ErrOldLayout) {
		t.Fatalf("CheckLayout of layout-1 keys = %v, want ErrOldLayout", err)
	}

	// An interrupted run had copied one key and not deleted the old one.
	dump := rdb.Dump(ctx, pre+"{post:111_222}:intents").Val()
	if err := rdb.Restore(ctx, st.Keys().PostIntents("acme", "111_222"), 0, dump).Err(); err != nil {
		t.Fatal(err)
	}
	rep, err := st.Migrate(ctx, nil)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if rep.From != 1 || rep.To != redisstore.Layout || rep.Moved != 15 || rep.Resumed != 1 {
		t.Fatalf("Migrate = %+v, want 1 → %d, 15 moved, 1 resumed", rep, redisstore.Layout)
	}
	if err := st.CheckLayout(ctx); err != nil {
		t.Fatalf("CheckLayout after Migrate: %v", err)
	}
	if left := keysMatching(t, ctx, rdb, pre+"{post:*"); len(left) != 0 {
		t.Fatalf("old keys left: %q", left)
	}
	if n := existing(ctx, rdb, pre+"org:acme:interests", pre+"org:acme:volunteers"); n != 0 {
		t.Fatalf("%d old organization indexes left", n)
	}
	// The data reads back through the store, in the organization's slot.
	c, err := st.Counts(ctx, "acme", "111_222")
	if err != nil || c.Intents[voluntree.IntentInterested] != 1 || c.Intents[voluntree.IntentQuestion] != 1 || c.Interests != 1 {
		t.Fatalf("Counts after Migrate = %+v, %v", c, err)
	}
	ins, err := st.Interests(ctx, "acme", "111_222", 0, 10)
	if err != nil || len(ins) != 1 || ins[0].SenderName != "Ada" || ins[0].PostID != "111_222" {
		t.Fatalf("Interests after Migrate = %+v, %v", ins, err)
	}
	if c, _ := st.Counts(ctx, "acme", redisstore.PageInbox("111")); c.Intents[voluntree.IntentThanks] != 2 {
		t.Fatalf("page inbox counts after Migrate = %+v", c)
	}
	unowned := st.Keys().PostIntents("", "999_1")
	if c, _ := st.Counts(ctx, "", "999_1"); c.Intents[voluntree.IntentInterested] != 5 {
		t.Fatalf("unowned post's counts after Migrate = %+v", c)
	}
	if ttl := rdb.TTL(ctx, unowned).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("expiry of %s after Migrate: %v, want its hour kept", unowned, ttl)
	}
	if n := rdb.ZCard(ctx, st.Keys().OrgInterests("acme")).Val(); n != 1 {
		t.Fatalf("organization interests after Migrate: %d", n)
	}
	if n := rdb.ZCard(ctx, st.Keys().OrgVolunteers("acme")).Val(); n != 1 {
		t.Fatalf("organization volunteers after Migrate: %d", n)
	}

	// The conversation: its state and version in its partition, its stage counts summed.
	if b, v, err := st.LoadConversationVersion(ctx, "111:u1"); err != nil || string(b) != "state-bytes" || v != 3 {
		t.Fatalf("conversation after Migrate = %q v%d, %v", b, v, err)
	}
	if d, err := st.ConversationDelivery(ctx, "111:u1"); err != nil || d.Error != "outside_window" {
		t.Fatalf("delivery after Migrate = %+v, %v", d, err)
	}
	if stages, err := st.ConversationStages(ctx); err != nil || stages["booked"] != 4 || stages["email"] != 1 {
		t.Fatalf("stages after Migrate = %v, %v", stages, err)
	}
	dk := st.Keys().ChatDedupe("webchat:wc_1", "webchat:wc_1:7")
	if ttl := rdb.TTL(ctx, dk).Val(); ttl <= 0 {
		t.Fatalf("chat dedupe mark %s after Migrate: TTL %v", dk, ttl)
	}
	if id, err := st.AppendChat(ctx, "webchat:wc_1", redisstore.ChatMessage{From: "page", Text: "hi"}, "webchat:wc_1:7"); err != nil || id != "" {
		t.Fatalf("AppendChat of an effect appended before the migration = %q, %v; want a no-op", id, err)
	}

	// The organization with its pending email verification, the signup with its posts.
	v, err := st.EmailVerification(ctx, "acme")
	if err != nil || v.Org.Name != "Acme" || v.Challenge == nil || v.Challenge.Email != "team@acme.example" {
		t.Fatalf("email verification after Migrate = %+v, %v", v, err)
	}
	if ttl := rdb.TTL(ctx, st.Keys().EmailCode("acme")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("expiry of the email code after Migrate: %v", ttl)
	}
	if su, err := st.Signup(ctx, "su_1"); err != nil || su.Title != "Beach cleanup" {
		t.Fatalf("signup after Migrate = %+v, %v", su, err)
	}
	if ids, err := st.SignupPostIDs(ctx, "su_1"); err != nil || len(ids) != 1 || ids[0] != "po_1" {
		t.Fatalf("signup posts after Migrate = %q, %v", ids, err)
	}
	if n := existing(ctx, rdb, pre+"org:acme", pre+"org:acme:emailcode", pre+"signup:su_1", pre+"signup:su_1:posts"); n != 0 {
		t.Fatalf("%d old organization or signup keys left", n)
	}
	if n := existing(ctx, rdb, pre+"org:acme:pages"); n != 1 {
		t.Fatal("the organization's page index (unchanged name) was moved")
	}

	// Again: nothing to do.
	if rep, err := st.Migrate(ctx, nil); err != nil || rep.Moved != 0 || rep.From != redisstore.Layout {
		t.Fatalf("Migrate again = %+v, %v", rep, err)
	}
}

// TestMigrateStopsOnDifferingCopies: when a key exists under both names with different
// contents (a new node wrote before the migration), Migrate stops and names both.
func TestMigrateStopsOnDifferingCopies(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	pre := oldLayout(t, ctx, st, rdb)
	rdb.Del(ctx, st.Keys().Layout())
	rdb.HSet(ctx, st.Keys().PostIntents("acme", "111_222"), "interested", 9)
	_, err := st.Migrate(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), pre+"{post:111_222}:intents") || !strings.Contains(err.Error(), "differ") {
		t.Fatalf("Migrate with differing copies = %v", err)
	}
	if err := st.CheckLayout(ctx); !errors.Is(err, redisstore.ErrOldLayout) {
		t.Fatalf("CheckLayout after a failed Migrate = %v, want ErrOldLayout", err)
	}
}

// TestMigrateFromLayout2: a Redis stamped 2 (organizations and signups under their untagged
// names) is refused until migrated; Migrate moves only what layout 3 changed.
func TestMigrateFromLayout2(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	if err := st.CreateOrg(ctx, voluntree.Organization{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateSignup(ctx, voluntree.Signup{ID: "su_1", OrgID: "acme", Title: "Beach", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	pre := st.Keys().Prefix() + ":"
	moveTo(t, ctx, rdb, st.Keys().Org("acme"), pre+"org:acme")
	moveTo(t, ctx, rdb, st.Keys().Signup("su_1"), pre+"signup:su_1")
	rdb.Set(ctx, st.Keys().Layout(), 2, 0)
	if err := st.CheckLayout(ctx); !errors.Is(err, redisstore.ErrOldLayout) {
		t.Fatalf("CheckLayout of layout 2 = %v, want ErrOldLayout", err)
	}
	rep, err := st.Migrate(ctx, nil)
	if err != nil || rep.From != 2 || rep.To != redisstore.Layout || rep.Moved != 2 {
		t.Fatalf("Migrate from 2 = %+v, %v; want 2 keys moved", rep, err)
	}
	if o, err := st.Org(ctx, "acme"); err != nil || o.Name != "Acme" {
		t.Fatalf("organization after Migrate = %+v, %v", o, err)
	}
	if su, err := st.Signup(ctx, "su_1"); err != nil || su.Title != "Beach" {
		t.Fatalf("signup after Migrate = %+v, %v", su, err)
	}
	if err := st.CheckLayout(ctx); err != nil {
		t.Fatalf("CheckLayout after Migrate: %v", err)
	}
}
