package redisstore_test

import (
	"sync"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// TestConcurrentWrongCodesCountEach: ten wrong guesses at once are ten attempts, so exactly
// two come back "wrong", the rest "locked", and the right code no longer verifies.
func TestConcurrentWrongCodesCountEach(t *testing.T) {
	st, rdb := newStore(t, redisstore.Config{})
	ctx := t.Context()
	if err := st.CreateOrg(ctx, voluntree.Organization{ID: "o1", Name: "O"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	_, err := st.UpdateEmailVerification(ctx, "o1", func(v *redisstore.EmailVerification) (bool, error) {
		ch, err := voluntree.Reissue(v.Challenge, "a@example.org", voluntree.HashEmailCode("o1", "a@example.org", "123456"), now)
		v.Challenge = &ch
		return err == nil, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.TTL(ctx, st.Keys().EmailCode("o1")).Val(); ttl <= time.Hour || ttl > redisstore.EmailChallengeRetention {
		t.Fatalf("challenge TTL %v", ttl)
	}
	check := func(code string) error {
		_, err := st.UpdateEmailVerification(ctx, "o1", func(v *redisstore.EmailVerification) (bool, error) {
			if v.Challenge == nil {
				return false, voluntree.Errorf(voluntree.ENOTFOUND, "none")
			}
			err := v.Challenge.Check("o1", code, now)
			if err == nil {
				v.Org.Email, v.Challenge = v.Challenge.Email, nil
			}
			return true, err
		})
		return err
	}
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			err := check("000000")
			mu.Lock()
			codes[voluntree.ErrorCode(err)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[voluntree.EINVALID] != 2 || codes[voluntree.ERATELIMITED] != 8 {
		t.Fatalf("outcomes %v, want 2 wrong and 8 locked", codes)
	}
	if err := check("123456"); voluntree.ErrorCode(err) != voluntree.ERATELIMITED {
		t.Fatalf("right code after the lock: %v", err)
	}
	v, err := st.EmailVerification(ctx, "o1")
	if err != nil || v.Challenge == nil || v.Challenge.Attempts != 3 || v.Org.Email != "" {
		t.Fatalf("after: %+v, %v", v, err)
	}
	if _, err := st.EmailVerification(ctx, "nope"); voluntree.ErrorCode(err) != voluntree.ENOTFOUND {
		t.Fatalf("unknown org: %v", err)
	}
}

func TestLoginStateTakenOnce(t *testing.T) {
	st, rdb := newStore(t, redisstore.Config{})
	ctx := t.Context()
	ls := redisstore.LoginState{OrgID: "o1", NonceHash: "n", RedirectURI: "https://x.example/cb", CreatedAt: time.Now().UTC()}
	if err := st.SaveLoginState(ctx, "s1", ls, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveLoginState(ctx, "s1", ls, 10*time.Minute); voluntree.ErrorCode(err) != voluntree.ECONFLICT {
		t.Fatalf("second save: %v", err)
	}
	if ttl := rdb.TTL(ctx, st.Keys().LoginState("s1")).Val(); ttl <= 9*time.Minute {
		t.Fatalf("TTL %v", ttl)
	}
	got, err := st.TakeLoginState(ctx, "s1")
	if err != nil || got.OrgID != "o1" || got.RedirectURI != ls.RedirectURI {
		t.Fatalf("take: %+v, %v", got, err)
	}
	if _, err := st.TakeLoginState(ctx, "s1"); voluntree.ErrorCode(err) != voluntree.ENOTFOUND {
		t.Fatalf("second take: %v", err)
	}
}
