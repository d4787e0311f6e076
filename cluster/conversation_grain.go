package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/redisstore"
)

// recentIDs is how many handled message ids a conversation remembers, so that a redelivered
// message does not count twice. Redelivery comes from a crashed consumer (seconds later), so
// a few dozen is plenty; the post grain's record is the authoritative dedupe for signups.
const recentIDs = 64

// grainDeps is what every grain of this node shares.
type grainDeps struct {
	store     *redisstore.Store
	metrics   *metrics.Metrics
	timeout   time.Duration
	log       *slog.Logger
	publisher *publisher // nil: this node does not publish posts
	orgs      *pageOrgs  // the organization of each page
}

func (d *grainDeps) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d.timeout)
}

// conversationGrain is one person's private conversation with a page. Its state is loaded
// from Redis on activation (grains move between nodes and restart empty) and written back
// before a request that changed it is answered.
type conversationGrain struct {
	deps  *grainDeps
	id    string
	state *grainpb.ConversationState // nil until loaded
}

var _ grainpb.Conversation = (*conversationGrain)(nil)

func (g *conversationGrain) Init(ctx protocluster.GrainContext) {
	g.id = ctx.Identity()
	g.deps.metrics.GrainsActive.WithLabelValues("conversation").Inc()
	if err := g.load(); err != nil {
		// Not fatal: the next request retries, and fails (to be redelivered) if Redis is down.
		g.deps.log.Warn("load conversation", "action", "activate", "conversation", g.id, "error", err)
	}
}

func (g *conversationGrain) Terminate(protocluster.GrainContext) {
	g.deps.metrics.GrainsActive.WithLabelValues("conversation").Dec()
}
func (g *conversationGrain) ReceiveDefault(protocluster.GrainContext) {}

func (g *conversationGrain) load() error {
	ctx, cancel := g.deps.ctx()
	defer cancel()
	b, err := g.deps.store.LoadConversation(ctx, g.id)
	if err != nil {
		return err
	}
	st := &grainpb.ConversationState{}
	if b != nil {
		if err := proto.Unmarshal(b, st); err != nil {
			return fmt.Errorf("decode conversation %s: %w", g.id, err)
		}
	}
	if st.Stage == "" {
		st.Stage = StageNew
	}
	if st.Intents == nil {
		st.Intents = make(map[string]int64)
	}
	g.state = st
	return nil
}

// Handle applies a conversation's messages in order and answers the post each belongs to.
func (g *conversationGrain) Handle(req *grainpb.ConversationRequest, _ protocluster.GrainContext) (*grainpb.ConversationResponse, error) {
	if g.state == nil {
		if err := g.load(); err != nil {
			return nil, err
		}
	}
	next := proto.Clone(g.state).(*grainpb.ConversationState)
	if next.Intents == nil { // Clone drops an empty map
		next.Intents = make(map[string]int64)
	}
	resp := &grainpb.ConversationResponse{PostIds: make([]string, len(req.Messages))}
	changed := false
	for i, m := range req.Messages {
		if j := slices.Index(next.RecentIds, m.Id); j >= 0 {
			// Redelivered: counted before, and it keeps the post it was given then (the
			// conversation may have moved to another post since; the record of a message is
			// deduplicated per post, so another answer would store it twice).
			resp.PostIds[i] = attributed(m, next.RecentPostIds, j)
			continue
		}
		if m.Kind == string(voluntree.KindComment) {
			resp.PostIds[i] = m.PostId
		} else {
			resp.PostIds[i] = next.LastPostId
		}
		apply(next, m, resp.PostIds[i])
		changed = true
	}
	if changed {
		next.UpdatedAtUnixNano = time.Now().UnixNano()
		b, err := proto.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("encode conversation %s: %w", g.id, err)
		}
		ctx, cancel := g.deps.ctx()
		defer cancel()
		if err := g.deps.store.SaveConversation(ctx, g.id, b); err != nil {
			return nil, err // g.state unchanged: the redelivery applies the messages again
		}
		g.state = next
	}
	return resp, nil
}

// attributed is the post a redelivered message was given the first time.
func attributed(m *grainpb.Classified, posts []string, j int) string {
	if m.Kind == string(voluntree.KindComment) {
		return m.PostId
	}
	if j < len(posts) {
		return posts[j]
	}
	return ""
}

// apply advances the conversation by one new message, attributed to post.
func apply(st *grainpb.ConversationState, m *grainpb.Classified, post string) {
	st.PageId, st.SenderId = m.PageId, m.SenderId
	if m.SenderName != "" {
		st.SenderName = m.SenderName
	}
	if m.Kind == string(voluntree.KindComment) && m.PostId != "" {
		st.LastPostId = m.PostId
	}
	st.Messages++
	st.Intents[m.Intent]++
	switch voluntree.Intent(m.Intent) {
	case voluntree.IntentInterested:
		st.Stage = StageInterested
	case voluntree.IntentDecline:
		st.Stage = StageDeclined
	}
	// Older states have no recent_post_ids: pad so both lists stay parallel.
	for len(st.RecentPostIds) < len(st.RecentIds) {
		st.RecentPostIds = append(st.RecentPostIds, "")
	}
	st.RecentIds = append(st.RecentIds, m.Id)
	st.RecentPostIds = append(st.RecentPostIds, post)
	if n := len(st.RecentIds); n > recentIDs {
		st.RecentIds = slices.Delete(st.RecentIds, 0, n-recentIDs)
		st.RecentPostIds = slices.Delete(st.RecentPostIds, 0, n-recentIDs)
	}
}
