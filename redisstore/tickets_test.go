package redisstore_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

func TestWSTicketIsSingleUse(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	ticket, rec, err := st.CreateWSTicket(ctx, "org_a", time.Minute)
	if err != nil || rec.OrgID != "org_a" || !redisstore.ValidTicketFormat(ticket) {
		t.Fatalf("CreateWSTicket = %q %+v, %v", ticket, rec, err)
	}
	// Only the hash is stored, with the ticket's lifetime.
	keys := keysMatching(t, ctx, rdb, st.Keys().Prefix()+":wsticket:*")
	if len(keys) != 1 || strings.Contains(keys[0], ticket) {
		t.Fatalf("ticket keys %q", keys)
	}
	if ttl := rdb.TTL(ctx, keys[0]).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("ticket TTL %s, want at most a minute", ttl)
	}
	// Many concurrent redemptions: exactly one wins.
	var wins, losses int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got, err := st.TakeWSTicket(ctx, ticket)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && got.OrgID == "org_a":
				wins++
			case voluntree.ErrorCode(err) == voluntree.EUNAUTHORIZED:
				losses++
			default:
				t.Errorf("TakeWSTicket = %+v, %v", got, err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || losses != 7 {
		t.Fatalf("%d redemptions won, %d refused; want 1 and 7", wins, losses)
	}
}

func TestWSTicketRefusals(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	if _, _, err := st.CreateWSTicket(ctx, "", time.Minute); err == nil {
		t.Fatal("a ticket without an organization was issued")
	}
	// A longer lifetime is cut to the maximum.
	_, rec, err := st.CreateWSTicket(ctx, "org_a", time.Hour)
	if err != nil || time.Until(rec.ExpiresAt) > redisstore.MaxTicketTTL {
		t.Fatalf("CreateWSTicket(1h) expires %v, %v; want within %s", rec.ExpiresAt, err, redisstore.MaxTicketTTL)
	}
	short, _, err := st.CreateWSTicket(ctx, "org_a", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	key := st.Keys().WSTicket(redisstore.HashToken(short))
	for deadline := time.Now().Add(5 * time.Second); rdb.Exists(ctx, key).Val() == 1; {
		if time.Now().After(deadline) {
			t.Fatal("a 50 ms ticket still exists after 5 s")
		}
		time.Sleep(10 * time.Millisecond) // polling Redis for the expiry, not a synchronisation
	}
	if _, err := st.TakeWSTicket(ctx, short); voluntree.ErrorCode(err) != voluntree.EUNAUTHORIZED {
		t.Fatalf("an expired ticket: %v, want unauthorized", err)
	}
	for _, bad := range []string{"", "wst_", "vt_" + strings.Repeat("a", 43), "wst_" + strings.Repeat("a", 42) + "!", strings.Repeat("x", 5000)} {
		if _, err := st.TakeWSTicket(ctx, bad); voluntree.ErrorCode(err) != voluntree.EUNAUTHORIZED {
			t.Errorf("TakeWSTicket(%.20q) = %v, want unauthorized", bad, err)
		}
	}
}
