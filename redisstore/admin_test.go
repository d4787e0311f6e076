package redisstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// TestSignupChangeEffects: a signup change's effect batches are stored with it in the
// signup's outbox and relayed to the effects outbox; batches a dying node left there are
// relayed by RelaySignupOutboxes, once.
func TestSignupChangeEffects(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	k := st.Keys()
	if err := st.CreateSignup(ctx, voluntree.Signup{ID: "su1", OrgID: "acme", Title: "Beach", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	su, err := st.UpdateSignupWithEffects(ctx, "su1", func(su *voluntree.Signup) error { su.Title = "Beach day"; return nil },
		func(old, updated *voluntree.Signup) ([][]byte, error) {
			if old.Title != "Beach" || updated.Title != "Beach day" {
				t.Errorf("effects saw %q → %q", old.Title, updated.Title)
			}
			return [][]byte{[]byte("b1"), []byte("b2")}, nil
		})
	if err != nil || su.Title != "Beach day" {
		t.Fatalf("UpdateSignupWithEffects = %+v, %v", su, err)
	}
	fx := rdb.XRange(ctx, k.Effects(), "-", "+").Val()
	if len(fx) != 2 || fx[0].Values["b"] != "b1" || fx[1].Values["b"] != "b2" || fx[0].Values["c"] != "signup:su1" {
		t.Fatalf("effects outbox after the change: %+v", fx)
	}
	if n := rdb.XLen(ctx, k.SignupOutbox("su1")).Val(); n != 0 {
		t.Fatalf("%d batches left in the signup's outbox", n)
	}
	if n := rdb.SCard(ctx, k.SignupOutboxes()).Val(); n != 0 {
		t.Fatalf("%d signups still listed to relay", n)
	}

	// A change with no batches writes no outbox.
	if _, err := st.UpdateSignup(ctx, "su1", func(su *voluntree.Signup) error { su.Title = "Beach"; return nil }); err != nil {
		t.Fatal(err)
	}
	if n := rdb.XLen(ctx, k.Effects()).Val(); n != 2 {
		t.Fatalf("effects outbox after a change without effects: %d", n)
	}

	// A node died between another signup's transaction and its relay, a minute ago: the sweep
	// hands the batch over. A batch younger than the grace is its change's own: the sweep
	// leaves it, and the signup stays listed.
	old := time.Now().Add(-time.Minute).UnixMilli()
	rdb.SAdd(ctx, k.SignupOutboxes(), "su2")
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: k.SignupOutbox("su2"), ID: fmt.Sprintf("%d-0", old), Values: []any{"b", "b3", "c", "signup:su2"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: k.SignupOutbox("su2"), Values: []any{"b", "young", "c", "signup:su2"}}).Err(); err != nil {
		t.Fatal(err)
	}
	n, err := st.RelaySignupOutboxes(ctx)
	if err != nil || n != 1 {
		t.Fatalf("RelaySignupOutboxes = %d, %v; want 1", n, err)
	}
	if fx := rdb.XRange(ctx, k.Effects(), "-", "+").Val(); len(fx) != 3 || fx[2].Values["b"] != "b3" {
		t.Fatalf("effects outbox after the relay: %+v", fx)
	}
	if n := rdb.SCard(ctx, k.SignupOutboxes()).Val(); n != 1 {
		t.Fatal("the signup left the list with a batch still in its outbox")
	}
	rdb.Del(ctx, k.SignupOutbox("su2"))
	if n, err := st.RelaySignupOutboxes(ctx); err != nil || n != 0 {
		t.Fatalf("RelaySignupOutboxes again = %d, %v; want 0", n, err)
	}
	if n := rdb.SCard(ctx, k.SignupOutboxes()).Val(); n != 0 {
		t.Fatalf("%d signups still listed to relay", n)
	}

	// A refused change stores nothing and relays nothing.
	_, err = st.UpdateSignupWithEffects(ctx, "su1", func(*voluntree.Signup) error {
		return voluntree.FieldErrorf("title", "no")
	}, func(_, _ *voluntree.Signup) ([][]byte, error) { return [][]byte{[]byte("never")}, nil })
	if voluntree.ErrorCode(err) != voluntree.EINVALID {
		t.Fatalf("a refused change = %v", err)
	}
	if n := rdb.XLen(ctx, k.Effects()).Val(); n != 3 {
		t.Fatalf("effects outbox after a refused change: %d", n)
	}
}

// TestUpdatePostQueue: the publish queue follows a post's changes (queued, moved, left), and a
// refused change leaves it as it was.
func TestUpdatePostQueue(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := newStore(t, redisstore.Config{})
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := st.CreatePost(ctx, voluntree.Post{ID: "po1", OrgID: "acme", SignupID: "su1", PageID: "111",
		Status: voluntree.PostScheduled, PublishAt: &at, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	queued := func() (time.Time, bool) {
		t.Helper()
		when, ok, err := st.QueuedAt(ctx, "po1")
		if err != nil {
			t.Fatal(err)
		}
		return when, ok
	}
	if when, ok := queued(); !ok || !when.Equal(at) {
		t.Fatalf("a scheduled post queued at %v (%v), want %v", when, ok, at)
	}
	later := at.Add(time.Hour)
	if _, err := st.UpdatePost(ctx, "po1", func(p *voluntree.Post) (redisstore.QueueOp, error) {
		p.PublishAt = &later
		return redisstore.QueueOp{Add: true, At: later}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if when, ok := queued(); !ok || !when.Equal(later) {
		t.Fatalf("a rescheduled post queued at %v (%v), want %v", when, ok, later)
	}
	if _, err := st.UpdatePost(ctx, "po1", func(p *voluntree.Post) (redisstore.QueueOp, error) {
		p.Status = voluntree.PostPublished
		return redisstore.QueueOp{Add: true, At: at}, voluntree.Errorf(voluntree.ECONFLICT, "no")
	}); voluntree.ErrorCode(err) != voluntree.ECONFLICT {
		t.Fatalf("a refused change = %v", err)
	}
	if when, ok := queued(); !ok || !when.Equal(later) {
		t.Fatalf("after a refused change, queued at %v (%v), want %v", when, ok, later)
	}
	p, err := st.UpdatePost(ctx, "po1", func(p *voluntree.Post) (redisstore.QueueOp, error) {
		p.Status = voluntree.PostDraft
		return redisstore.QueueOp{Remove: true}, nil
	})
	if err != nil || p.Status != voluntree.PostDraft {
		t.Fatalf("UpdatePost to draft = %+v, %v", p, err)
	}
	if _, ok := queued(); ok {
		t.Fatal("a draft is still queued")
	}
}
