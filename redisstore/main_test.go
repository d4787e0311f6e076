package redisstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/internal/redistest"
	"github.com/voluntree/voluntree/redisstore"
)

// redisSrv is this package's private Redis: one server, or the Redis Cluster or Sentinel
// deployment $VOLUNTREE_TEST_REDIS names (`make test` runs the suite on each).
var redisSrv *redistest.Deployment

func TestMain(m *testing.M) { redistest.MainDeployment(m, &redisSrv) }

// newStore returns a Store isolated under the test's own key prefix, and its client.
func newStore(t *testing.T, cfg redisstore.Config) (*redisstore.Store, redis.UniversalClient) {
	t.Helper()
	rdb, prefix := redisSrv.Client(t)
	cfg.Prefix = strings.TrimSuffix(prefix, ":")
	st, err := redisstore.New(rdb, cfg)
	if err != nil {
		t.Fatalf("redisstore.New: %v", err)
	}
	return st, rdb
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testOrg owns the page of the tests' interests (its events go to its own log and channel).
const testOrg = "org_t"

var baseTime = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// comment returns a valid comment Message with id.
func comment(id string) voluntree.Message {
	return voluntree.Message{
		ID: id, Kind: voluntree.KindComment, Source: voluntree.SourceWebhook,
		PageID: "111", PostID: "111_222", ParentID: "111_222",
		SenderID: "u-" + id, SenderName: "Sender " + id, Text: "I'm in (" + id + ")",
		CreatedAt:  baseTime,
		ReceivedAt: baseTime.Add(1500 * time.Millisecond),
	}
}

func sameMessage(a, b voluntree.Message) bool {
	return a.ID == b.ID && a.Kind == b.Kind && a.Source == b.Source && a.PageID == b.PageID &&
		a.PostID == b.PostID && a.ParentID == b.ParentID && a.SenderID == b.SenderID &&
		a.SenderName == b.SenderName && a.Text == b.Text && a.Payload == b.Payload &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ReceivedAt.Equal(b.ReceivedAt)
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	rdb, _ := redisSrv.Client(t)
	for _, cfg := range []redisstore.Config{
		{IngestMaxLen: 999},
		{EventsMaxLen: 99},
		{DedupeTTL: 500 * time.Millisecond},
	} {
		if _, err := redisstore.New(rdb, cfg); err == nil {
			t.Errorf("New(%+v) = nil error, want one", cfg)
		}
	}
	st, err := redisstore.New(rdb, redisstore.Config{})
	if err != nil {
		t.Fatalf("New with defaults: %v", err)
	}
	if st.IngestMaxLen() != redisstore.DefaultIngestMaxLen || st.Keys().Prefix() != redisstore.DefaultPrefix {
		t.Errorf("defaults: max len %d, prefix %q", st.IngestMaxLen(), st.Keys().Prefix())
	}
}

func TestConversationState(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := newStore(t, redisstore.Config{})
	got, err := st.LoadConversation(ctx, "111:u1")
	if err != nil || got != nil {
		t.Fatalf("LoadConversation of a new conversation = %q, %v; want nil, nil", got, err)
	}
	state := []byte{0x0a, 0x00, 0xff, 'x'}
	if err := st.SaveConversation(ctx, "111:u1", state); err != nil {
		t.Fatal(err)
	}
	if got, err := st.LoadConversation(ctx, "111:u1"); err != nil || string(got) != string(state) {
		t.Fatalf("LoadConversation = %x, %v; want %x", got, err, state)
	}
	if got, _ := st.LoadConversation(ctx, "111:u2"); got != nil {
		t.Fatalf("another conversation has state %x", got)
	}
}

func TestCompareIDs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b string
		want int
	}{
		{"1-0", "1-1", -1},
		{"1-1", "1-0", 1},
		{"2-0", "10-0", -1}, // numeric, not lexical
		{"10-0", "2-0", 1},
		{"1-2", "1-10", -1},
		{"5-5", "5-5", 0},
		{"0-0", "0-0", 0},
		{"1700000000000-0", "1700000000000-0", 0},
		{"1699999999999-99", "1700000000000-0", -1},
		{"18446744073709551615-0", "18446744073709551614-18446744073709551615", 1},
	}
	for _, c := range cases {
		if got := redisstore.CompareIDs(c.a, c.b); got != c.want {
			t.Errorf("CompareIDs(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// idsOf turns Enqueue's outcomes into entry ids ("" for a duplicate); a message refused for
// its own content is an error here (the tests enqueue valid messages).
func idsOf(res []redisstore.Enqueued, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(res))
	for i, r := range res {
		if r.Err != nil {
			return nil, r.Err
		}
		ids[i] = r.ID
	}
	return ids, nil
}
