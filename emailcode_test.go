package voluntree_test

import (
	"testing"
	"time"

	"github.com/voluntree/voluntree"
)

func TestNewEmailCode(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		c, err := voluntree.NewEmailCode()
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != voluntree.EmailCodeDigits || c < "000000" || c > "999999" {
			t.Fatalf("code %q", c)
		}
		seen[c] = true
	}
	if len(seen) < 190 {
		t.Fatalf("%d distinct codes of 200", len(seen))
	}
}

func TestNormalizeEmail(t *testing.T) {
	if got, err := voluntree.NormalizeEmail("  ada@example.org "); err != nil || got != "ada@example.org" {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, bad := range []string{"", "ada", "Ada <ada@example.org>", "ada@localhost", "a@b.org, c@d.org", "a@b.org\r\nBcc: x@y.org"} {
		if _, err := voluntree.NormalizeEmail(bad); voluntree.ErrorField(err) != "email" {
			t.Errorf("%q: %v, want an error about field email", bad, err)
		}
	}
}

func issue(t *testing.T, prev *voluntree.EmailChallenge, code string, now time.Time) voluntree.EmailChallenge {
	t.Helper()
	ch, err := voluntree.Reissue(prev, "ada@example.org", voluntree.HashEmailCode("org1", "ada@example.org", code), now)
	if err != nil {
		t.Fatalf("Reissue: %v", err)
	}
	return ch
}

func TestEmailChallengeCheck(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ch := issue(t, nil, "123456", t0)
	if ch.ExpiresAt != t0.Add(15*time.Minute) || ch.AttemptsLeft() != 3 {
		t.Fatalf("challenge %+v", ch)
	}
	if err := ch.Check("org1", "12345", t0); voluntree.ErrorField(err) != "code" || ch.Attempts != 0 {
		t.Fatalf("malformed code: %v, attempts %d (a malformed code is not a guess)", err, ch.Attempts)
	}
	if err := ch.Check("org2", "123456", t0); voluntree.ErrorField(err) != "code" || ch.Attempts != 1 {
		t.Fatalf("the right code of another organization: %v", err)
	}
	if err := ch.Check("org1", " 123456 ", t0.Add(time.Minute)); err != nil {
		t.Fatalf("right code: %v", err)
	}
	if err := ch.Check("org1", "123456", t0.Add(15*time.Minute)); voluntree.ErrorField(err) != "code" {
		t.Fatalf("right code at expiry: %v, want refused", err)
	}

	ch = issue(t, nil, "123456", t0)
	for i, want := range []string{voluntree.EINVALID, voluntree.EINVALID, voluntree.ERATELIMITED} {
		err := ch.Check("org1", "654321", t0)
		if voluntree.ErrorCode(err) != want {
			t.Fatalf("wrong code %d: %v, want %s", i+1, err, want)
		}
	}
	err := ch.Check("org1", "123456", t0.Add(time.Minute))
	if voluntree.ErrorCode(err) != voluntree.ERATELIMITED || voluntree.ErrorRetryAfter(err) != 14*time.Minute || ch.Attempts != 3 {
		t.Fatalf("right code after 3 wrong ones: %v (retry after %v), want locked for 14m", err, voluntree.ErrorRetryAfter(err))
	}
	if _, err := voluntree.Reissue(&ch, "ada@example.org", "h", t0.Add(10*time.Minute)); voluntree.ErrorCode(err) != voluntree.ERATELIMITED {
		t.Fatalf("new code while locked: %v", err)
	}
	next := issue(t, &ch, "111111", t0.Add(15*time.Minute))
	if next.Attempts != 0 || next.Check("org1", "111111", t0.Add(16*time.Minute)) != nil {
		t.Fatalf("new code after the lock ended: %+v", next)
	}
}

func TestReissueRateLimits(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ch := issue(t, nil, "000001", t0)
	_, err := voluntree.Reissue(&ch, "ada@example.org", "h", t0.Add(30*time.Second))
	if voluntree.ErrorCode(err) != voluntree.ERATELIMITED || voluntree.ErrorRetryAfter(err) != 30*time.Second {
		t.Fatalf("second code within a minute: %v", err)
	}
	for i := 1; i < voluntree.EmailCodesPerHour; i++ {
		ch = issue(t, &ch, "000001", t0.Add(time.Duration(i)*time.Minute))
	}
	_, err = voluntree.Reissue(&ch, "ada@example.org", "h", t0.Add(10*time.Minute))
	if voluntree.ErrorCode(err) != voluntree.ERATELIMITED || voluntree.ErrorRetryAfter(err) != 50*time.Minute {
		t.Fatalf("sixth code in an hour: %v (retry after %v)", err, voluntree.ErrorRetryAfter(err))
	}
	ch = issue(t, &ch, "000001", t0.Add(time.Hour))
	if len(ch.Sends) != voluntree.EmailCodesPerHour {
		t.Fatalf("sends kept: %d, want the last hour's %d", len(ch.Sends), voluntree.EmailCodesPerHour)
	}
}
