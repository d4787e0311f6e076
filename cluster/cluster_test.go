package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/protobuf/proto"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/actors"
	"github.com/voluntree/voluntree/cluster/grainpb"
	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/internal/fakegraph"
	"github.com/voluntree/voluntree/internal/redistest"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/redisstore"
)

// One cluster member per test process: Proto.Actor's generated grain code and providers keep
// package-level state, and two members in one process break -race (FACTS). Tests share it
// and keep apart by using their own page, post and sender ids.
var (
	redisSrv *redistest.Server
	env      *testEnv
	seq      atomic.Int64
)

type testEnv struct {
	graph   *fakegraph.Server
	store   *redisstore.Store
	node    *Node
	metrics *metrics.Metrics
	router  *Router
	err     error
}

func TestMain(m *testing.M) {
	redisSrv = redistest.Start()
	env = startEnv()
	code := m.Run()
	if env.node != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		env.node.Stop(ctx)
		cancel()
	}
	if env.graph != nil {
		env.graph.Close()
	}
	redisSrv.Stop()
	os.Exit(code)
}

func startEnv() *testEnv {
	e := &testEnv{}
	rdb, err := redisSrv.Open()
	if err != nil {
		e.err = err
		return e
	}
	e.store, _ = redisstore.New(rdb, redisstore.Config{Prefix: "clustertest"})
	e.metrics = metrics.New(prometheus.NewRegistry())
	logger := slog.New(slog.DiscardHandler)
	system := actors.NewSystem(logger, sdkmetric.NewMeterProvider())
	e.graph = fakegraph.New(fakegraph.Config{AppSecret: "cluster-test-secret"})
	graph, err := facebook.NewGraph(facebook.GraphConfig{BaseURL: e.graph.URL, AppSecret: "cluster-test-secret",
		BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond})
	if err != nil {
		e.err = err
		return e
	}
	e.node, e.err = Start(context.Background(), system, Config{Store: e.store, Metrics: e.metrics, Logger: logger,
		Graph: graph, Publish: PublishConfig{BaseDelay: 50 * time.Millisecond, MaxDelay: time.Second}})
	if e.err == nil {
		e.router = NewRouter(e.node, prefixClassifier{}, logger)
	}
	return e
}

func requireEnv(t *testing.T) *testEnv {
	t.Helper()
	if env.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cluster test environment: %v", env.err)
		}
		t.Skipf("cluster test environment: %v", env.err)
	}
	return env
}

// prefixClassifier reads the intent off the text: "question: when?" is a question. It keeps
// these tests about routing and state, not the model (which has its own tests).
type prefixClassifier struct{}

func (prefixClassifier) Classify(_ context.Context, texts []string) ([]voluntree.Prediction, error) {
	out := make([]voluntree.Prediction, len(texts))
	for i, t := range texts {
		name, _, _ := strings.Cut(t, ":")
		in, err := voluntree.ParseIntent(name)
		if err != nil {
			in = voluntree.IntentOther
		}
		out[i] = voluntree.Prediction{Intent: in, Confidence: 0.9}
	}
	return out, nil
}

func uid(*testing.T) string { return fmt.Sprintf("t%d", seq.Add(1)) }

func comment(id, page, post, sender, text string) voluntree.Message {
	return voluntree.Message{ID: id, Kind: voluntree.KindComment, Source: voluntree.SourceWebhook,
		PageID: page, PostID: post, SenderID: sender, SenderName: "Name " + sender, Text: text,
		CreatedAt: time.Now(), ReceivedAt: time.Now()}
}

func messenger(id, page, sender, text string) voluntree.Message {
	return voluntree.Message{ID: id, Kind: voluntree.KindMessage, Source: voluntree.SourceWebhook,
		PageID: page, SenderID: sender, Text: text, CreatedAt: time.Now(), ReceivedAt: time.Now()}
}

// testOrg owns the pages connectedPage makes.
const testOrg = "org_cluster"

// connectedPage connects page to testOrg: its interests are stored and shown on that
// organization's feed (a page of no organization is only counted).
func connectedPage(t *testing.T, e *testEnv, page string) string {
	t.Helper()
	ctx := context.Background()
	err := e.store.CreateOrg(ctx, voluntree.Organization{ID: testOrg, Name: "Cluster tests"})
	if err != nil && voluntree.ErrorCode(err) != voluntree.ECONFLICT {
		t.Fatal(err)
	}
	if err := e.store.SavePage(ctx, voluntree.Page{ID: page, OrgID: testOrg, Name: "Page " + page}); err != nil {
		t.Fatal(err)
	}
	return page
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}

func TestRedeliveryHasOneEffect(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	u := uid(t)
	page, post := connectedPage(t, e, "page"+u), "page"+u+"_1"
	msg := comment(post+"_c1", page, post, "s"+u, "interested: count me in")
	before := testutil.ToFloat64(e.metrics.Interests)
	for range 3 {
		noErrors(t, e.router.Process(ctx, []voluntree.Message{msg}))
	}
	counts, err := e.store.Counts(ctx, testOrg, post)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Interests != 1 || counts.Intents[voluntree.IntentInterested] != 1 {
		t.Fatalf("after 3 deliveries: %+v, want one interest", counts)
	}
	if got := testutil.ToFloat64(e.metrics.Interests) - before; got != 1 {
		t.Fatalf("signups counted %v times, want 1", got)
	}
	st := conversationState(t, e, voluntree.ConversationID(page, "s"+u))
	if st.Messages != 1 || st.Stage != StageInterested || st.LastPostId != post {
		t.Fatalf("conversation after 3 deliveries: messages %d stage %q last post %q", st.Messages, st.Stage, st.LastPostId)
	}
}

func TestMessengerFollowsTheConversationsPost(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	u := uid(t)
	page, post := connectedPage(t, e, "page"+u), "page"+u+"_7"
	batch := []voluntree.Message{
		comment(post+"_c1", page, post, "s1"+u, "question: how long is a shift?"),
		messenger("m.1"+u, page, "s1"+u, "interested: ok I'm in"),  // same person, later, in Messenger
		messenger("m.2"+u, page, "s2"+u, "interested: sign me up"), // never commented
	}
	noErrors(t, e.router.Process(ctx, batch))
	got, err := e.store.Interests(ctx, testOrg, post, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "m.1"+u || got[0].PostID != post || got[0].Kind != voluntree.KindMessage {
		t.Fatalf("post interests = %+v, want the Messenger message attributed to %s", got, post)
	}
	inbox, err := e.store.Interests(ctx, testOrg, redisstore.PageInbox(page), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(inbox) != 1 || inbox[0].ID != "m.2"+u || inbox[0].PostID != "" {
		t.Fatalf("page inbox = %+v, want the unattributed Messenger interest", inbox)
	}
	counts, _ := e.store.Counts(ctx, testOrg, post)
	if counts.Intents[voluntree.IntentQuestion] != 1 {
		t.Fatalf("post counts %+v, want the question counted", counts)
	}
}

// A consumer that read entries and died before XACK: another reclaims them, and each message
// takes effect exactly once through the real router and grains.
func TestAbandonedEntriesAreReclaimedExactlyOnce(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	u := uid(t)
	page := connectedPage(t, e, "page"+u)
	const n = 300
	var msgs []voluntree.Message
	for i := range n {
		post := fmt.Sprintf("%s_%d", page, i%5)
		text := "interested: yes"
		if i%3 == 0 {
			text = "thanks: great work"
		}
		msgs = append(msgs, comment(fmt.Sprintf("%s_c%d", post, i), page, post, fmt.Sprintf("s%d%s", i%40, u), text))
	}
	// The shared store's group is shared by the package's tests: use a store of our own.
	rdb, prefix := redisSrv.Client(t)
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: strings.TrimSuffix(prefix, ":")})
	if err != nil {
		t.Fatal(err)
	}
	k := st.Keys()
	if err := rdb.XGroupCreateMkStream(ctx, k.Ingest(), k.IngestGroup(), "0").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Enqueue(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: k.IngestGroup(), Consumer: "dead-node",
		Streams: []string{k.Ingest(), ">"}, Count: 120, Block: -1}).Result()
	if err != nil || len(res) != 1 || len(res[0].Messages) != 120 {
		t.Fatalf("dead consumer read %v (%v), want 120 entries", res, err)
	}
	// Half of what the dead node read had already taken effect before it died.
	var half []voluntree.Message
	for _, x := range res[0].Messages[:60] {
		m, err := redisstore.DecodeEntry(x.Values)
		if err != nil {
			t.Fatal(err)
		}
		half = append(half, m)
	}
	noErrors(t, e.router.Process(ctx, half))

	c, err := actors.NewIngestConsumer(st, e.router, actors.IngestConfig{
		Consumer: "alive-node", Block: 20 * time.Millisecond, ClaimIdle: 200 * time.Millisecond, ClaimEvery: 50 * time.Millisecond,
	}, e.metrics, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(func() { c.Stop(context.Background()) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := st.Stats(ctx)
		if err == nil && s.Pending == 0 && s.Lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("entries left: %+v (%v)", s, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var interests, thanks int64
	for i := range 5 {
		counts, err := e.store.Counts(ctx, testOrg, fmt.Sprintf("%s_%d", page, i))
		if err != nil {
			t.Fatal(err)
		}
		interests += counts.Interests
		thanks += counts.Intents[voluntree.IntentThanks]
		if counts.Interests != counts.Intents[voluntree.IntentInterested] {
			t.Fatalf("post %d: %d interests stored but %d counted", i, counts.Interests, counts.Intents[voluntree.IntentInterested])
		}
	}
	if interests != 200 || thanks != 100 {
		t.Fatalf("interests %d thanks %d, want 200 and 100: every message exactly once", interests, thanks)
	}
}

func TestConversationStateSurvivesActivation(t *testing.T) {
	e := requireEnv(t)
	u := uid(t)
	deps := e.grainDeps()
	id := voluntree.ConversationID("page"+u, "s"+u)
	req := func(ids ...string) *grainpb.ConversationRequest {
		r := &grainpb.ConversationRequest{}
		for _, mid := range ids {
			r.Messages = append(r.Messages, &grainpb.Classified{Id: mid, Kind: "comment", PageId: "page" + u,
				PostId: "page" + u + "_1", SenderId: "s" + u, Intent: "interested"})
		}
		return r
	}
	g1 := &conversationGrain{deps: deps, id: id}
	if _, err := g1.Handle(req("a", "b"), nil); err != nil {
		t.Fatal(err)
	}
	// A new activation (another node, or after passivation) starts from Redis.
	g2 := &conversationGrain{deps: deps, id: id}
	resp, err := g2.Handle(req("b", "c"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.PostIds[0] != "page"+u+"_1" {
		t.Fatalf("post ids %v", resp.PostIds)
	}
	st := conversationState(t, e, id)
	if st.Messages != 3 || st.Intents["interested"] != 3 || len(st.RecentIds) != 3 {
		t.Fatalf("state %+v, want 3 messages (b counted once)", st)
	}
}

// grainDeps are the dependencies of grains made by hand (activations outside the cluster).
func (e *testEnv) grainDeps() *grainDeps {
	cfg := Config{Store: e.store, Metrics: e.metrics, StoreTimeout: time.Second}
	cfg.setDefaults()
	return newGrainDeps(cfg)
}

func conversationState(t *testing.T, e *testEnv, id string) *grainpb.ConversationState {
	t.Helper()
	b, err := e.store.LoadConversation(context.Background(), id)
	if err != nil || b == nil {
		t.Fatalf("conversation %s: %v (found %v)", id, err, b != nil)
	}
	st := &grainpb.ConversationState{}
	if err := proto.Unmarshal(b, st); err != nil {
		t.Fatal(err)
	}
	return st
}

// A Messenger message redelivered after its person commented on another post keeps the post
// it was first given: one signup, not one per post.
func TestRedeliveredMessengerKeepsItsPost(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	u := uid(t)
	page, p1, p2, s := connectedPage(t, e, "page"+u), "page"+u+"_1", "page"+u+"_2", "s"+u
	noErrors(t, e.router.Process(ctx, []voluntree.Message{comment(p1+"_c1", page, p1, s, "question: when?")}))
	m := messenger("m.1"+u, page, s, "interested: I'm in")
	noErrors(t, e.router.Process(ctx, []voluntree.Message{m}))
	noErrors(t, e.router.Process(ctx, []voluntree.Message{comment(p2+"_c1", page, p2, s, "thanks: lovely")}))
	noErrors(t, e.router.Process(ctx, []voluntree.Message{m})) // redelivered (its XACK was lost)
	c1, _ := e.store.Counts(ctx, testOrg, p1)
	c2, _ := e.store.Counts(ctx, testOrg, p2)
	if c1.Interests != 1 || c2.Interests != 0 {
		t.Fatalf("interests on %s: %d, on %s: %d; want the one message stored once, on %s", p1, c1.Interests, p2, c2.Interests, p1)
	}
}

// A page no organization connected: its messages are classified and counted (and the unowned
// metric says so), but nothing is stored for anyone and no feed gets an event. Once the page
// is connected, its interests reach its organization's feed.
func TestMessagesOfAnUnownedPage(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	u := uid(t)
	page, post := "lone"+u, "lone"+u+"_1"
	before := testutil.ToFloat64(e.metrics.Unowned)
	noErrors(t, e.router.Process(ctx, []voluntree.Message{
		comment(post+"_c1", page, post, "s1"+u, "interested: me!"),
		comment(post+"_c2", page, post, "s2"+u, "question: when?"),
	}))
	counts, err := e.store.Counts(ctx, "", post)
	if err != nil || counts.Interests != 0 || counts.Intents[voluntree.IntentInterested] != 1 || counts.Intents[voluntree.IntentQuestion] != 1 {
		t.Fatalf("counts %+v (%v): want both messages counted, no interest stored", counts, err)
	}
	if got := testutil.ToFloat64(e.metrics.Unowned) - before; got != 2 {
		t.Fatalf("unowned messages counted %v, want 2", got)
	}

	connectedPage(t, e, page)
	last, err := e.store.LastEventID(ctx, testOrg)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * orgMissTTL)
	for i := 3; ; i++ { // the node remembers "no organization" for up to orgMissTTL
		noErrors(t, e.router.Process(ctx, []voluntree.Message{comment(fmt.Sprintf("%s_c%d", post, i), page, post, "s"+u, "interested: me too")}))
		if c, _ := e.store.Counts(ctx, testOrg, post); c.Interests == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page's interests are still not stored %s after it was connected", 2*orgMissTTL)
		}
		time.Sleep(100 * time.Millisecond) // the cache expiry is time itself
	}
	r, err := e.store.EventsAfter(ctx, testOrg, last, 100)
	if err != nil {
		t.Fatal(err)
	}
	var mine int
	for _, ev := range r.Events {
		if ev.Interest != nil && ev.Interest.PageID == page {
			mine++
		}
	}
	if mine != 1 {
		t.Fatalf("%d events of the page on %s's feed, want 1", mine, testOrg)
	}
}
