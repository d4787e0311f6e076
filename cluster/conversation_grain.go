package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
	"github.com/voluntree/voluntree/metrics"
)

// recentIDs is how many handled message ids a conversation remembers, so that a redelivered
// message does not count twice. Redelivery comes from a crashed consumer (seconds later), so
// a few dozen is plenty; the post grain's record is the authoritative dedupe for signups.
const recentIDs = 64

// grainDeps is what every grain of this node shares.
type grainDeps struct {
	store     Store
	metrics   *metrics.Metrics
	timeout   time.Duration
	log       *slog.Logger
	publisher *publisher // nil: this node does not publish posts
	orgs      *pageOrgs  // the organization of each page
	signups   *signupCache
	featurize Featurizer // matches questions to facts (nil: questions go to the team)
	now       func() time.Time
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
	// version is the stored state's version when it was read: a save at another version was
	// preceded by another activation's, and is refused (fencing).
	version int64
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
	b, version, err := g.deps.store.LoadConversationVersion(ctx, g.id)
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
	g.state, g.version = st, version
	return nil
}

// Handle applies a conversation's messages in order, saves the new state with the effects
// the transitions emitted (one transaction: the outbox), and answers the post each message
// belongs to.
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
	resp := &grainpb.ConversationResponse{PostIds: make([]string, len(req.Messages)),
		Turns: make([]bool, len(req.Messages)), Names: make([]string, len(req.Messages))}
	changed := false
	var effects []*grainpb.Effect
	ctx, cancel := g.deps.ctx()
	defer cancel()
	for i, m := range req.Messages {
		if j := slices.Index(next.RecentIds, m.Id); j >= 0 {
			// Redelivered: counted before, and it keeps the post it was given then (the
			// conversation may have moved to another post since; the record of a message is
			// deduplicated per post, so another answer would store it twice).
			resp.PostIds[i] = attributed(m, next.RecentPostIds, j)
			resp.Turns[i] = j < len(next.RecentTurns) && next.RecentTurns[j] // the same answer as the first time
			resp.Names[i] = next.SenderName
			continue
		}
		resp.Turns[i] = m.Kind != string(voluntree.KindComment) && inFlow(next.Stage)
		if m.Kind == string(voluntree.KindComment) {
			resp.PostIds[i] = m.PostId
		} else {
			resp.PostIds[i] = next.LastPostId
		}
		env, err := g.env(ctx, next, m)
		if err != nil {
			return nil, err // g.state unchanged: the redelivery applies the messages again
		}
		apply(next, m, resp.PostIds[i], resp.Turns[i])
		resp.Names[i] = next.SenderName
		if env.orgID != "" {
			next.OrgId = env.orgID
		}
		var loadErr error
		env.loadErr = &loadErr
		effects = append(effects, step(next, m, env)...)
		if loadErr != nil {
			return nil, loadErr // g.state unchanged: the redelivery applies the messages again
		}
		changed = true
	}
	if changed {
		next.UpdatedAtUnixNano = g.deps.now().UnixNano()
		ve, err := volunteerEffect(g.id, g.state, next, time.Unix(0, next.UpdatedAtUnixNano))
		if err != nil {
			return nil, err
		}
		if ve != nil {
			effects = append(effects, ve)
		}
		b, err := proto.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("encode conversation %s: %w", g.id, err)
		}
		var batch []byte
		if len(effects) > 0 {
			if batch, err = proto.Marshal(&grainpb.EffectBatch{Effects: effects}); err != nil {
				return nil, fmt.Errorf("encode effects of %s: %w", g.id, err)
			}
		}
		from, to := countedStage(g.state.Stage), countedStage(next.Stage)
		if g.state.UpdatedAtUnixNano == 0 {
			from = "" // a conversation saved for the first time
		}
		version, err := g.deps.store.SaveConversationEffects(ctx, g.id, next.SignupId, g.version, b, batch, from, to)
		if errors.Is(err, voluntree.ErrStaleConversation) {
			// Another activation (this grain on another node, during a topology change) wrote
			// since this one read: drop what this one holds; the messages are redelivered and
			// applied to the stored state.
			g.deps.metrics.StaleWrites.WithLabelValues("conversation").Inc()
			g.deps.log.Warn("stale conversation state", "action", "save", "conversation", g.id, "error", err)
			g.state = nil
			return nil, err
		}
		if err != nil {
			return nil, err // g.state unchanged: the redelivery applies the messages again
		}
		g.version = version
		if next.Stage != g.state.Stage {
			g.deps.metrics.StageEntered.WithLabelValues(next.Stage).Inc()
		}
		if next.Stage == StageBooked && g.state.Stage != StageBooked && next.FirstInterestUnixNano != 0 {
			g.deps.metrics.TimeToBooking.Observe(time.Duration(g.deps.now().UnixNano() - next.FirstInterestUnixNano).Seconds())
		}
		g.state = next
	}
	return resp, nil
}

// inFlow reports a stage in which the person's private messages answer the conversation's
// flow (the bot asked, or they are booked): those messages are turns, not new interests.
func inFlow(stage string) bool {
	switch stage {
	case StageInvited, StageConfirm, StageEmail, StageCode, StageSlot, StageBooking, StageBooked, StageWaitlisted:
		return true
	}
	return false
}

// countedStage is the stage a conversation counts in (voluntree_conversations_by_stage): the
// ones of the conversation flow. A person who only commented (new, interested without a
// signup) is not counted, so that the comment path writes nothing more than the state.
func countedStage(stage string) string {
	if stage == StageNew || stage == StageInterested {
		return ""
	}
	return stage
}

// env loads what the transition of m needs: the organization, the signup the conversation is
// about, the slots' free places. A comment other than an interest needs none of it (the comment
// path stays one write).
func (g *conversationGrain) env(ctx context.Context, st *grainpb.ConversationState, m *grainpb.Classified) (flowEnv, error) {
	env := flowEnv{conversationID: g.id, now: g.deps.now(), newCode: newCode, nonce: newNonce}
	if m.Kind == string(voluntree.KindComment) && voluntree.Intent(m.Intent) != voluntree.IntentInterested {
		return env, nil
	}
	if m.Kind == KindSystem && (strings.HasPrefix(m.Payload, sysChanged) || strings.HasPrefix(m.Payload, sysSlotCancelled)) {
		g.deps.signups.forget(st.SignupId) // the admin's change must be seen, not the cached signup
	}
	var su *voluntree.Signup
	var ix *factIndex
	if m.PageId == voluntree.WebChatPage {
		// Web chat: the session names the signup, and the signup its organization.
		id := m.SignupId
		if id == "" {
			id = st.SignupId
		}
		cs, err := g.deps.signups.signup(ctx, id)
		if err != nil || cs.su == nil || cs.su.Disabled {
			return env, err
		}
		su, ix, env.orgID = cs.su, cs.facts, cs.su.OrgID
	} else {
		org, err := g.deps.orgs.orgOf(ctx, m.PageId)
		if err != nil || org == "" {
			return env, err // a page of no organization: nobody to sign up with
		}
		env.orgID = org
		post := st.LastPostId
		if m.Kind == string(voluntree.KindComment) {
			post = m.PostId
		}
		if su, ix, err = g.deps.signups.forConversation(ctx, post, st.SignupId, org); err != nil || su == nil {
			return env, err
		}
	}
	env.signup = su
	env.answer = func(q string) (string, bool) { return ix.answer(q, g.deps.featurize) }
	// The slots' free places are read only when the transition offers slots (a read of every
	// slot's sets: not for every message).
	env.loadFree = func() (map[string]int, error) {
		counts, err := g.deps.store.SlotBookingCounts(ctx, su)
		if err != nil {
			return nil, err
		}
		free := make(map[string]int, len(su.Slots))
		for _, sl := range su.Slots {
			c := counts[sl.ID]
			free[sl.ID] = sl.Required - c.Booked - c.Held
		}
		return free, nil
	}
	return env, nil
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

// apply records a new message, attributed to post (and a turn of the flow or not): sender,
// counts, and its id among the recent ones (the transition itself is step's).
func apply(st *grainpb.ConversationState, m *grainpb.Classified, post string, turn bool) {
	// Older states have no recent_post_ids or recent_turns: pad so the lists stay parallel.
	for len(st.RecentPostIds) < len(st.RecentIds) {
		st.RecentPostIds = append(st.RecentPostIds, "")
	}
	for len(st.RecentTurns) < len(st.RecentIds) {
		st.RecentTurns = append(st.RecentTurns, false)
	}
	st.RecentIds = append(st.RecentIds, m.Id)
	st.RecentPostIds = append(st.RecentPostIds, post)
	st.RecentTurns = append(st.RecentTurns, turn)
	trimRecent(st)
	if m.Kind == KindSystem {
		return
	}
	// SenderId is whom messages go to: the Messenger PSID once the person wrote there (it may
	// differ from their id on comments, which reach this conversation through an alias).
	st.PageId = m.PageId
	if st.SenderId == "" || m.Kind != string(voluntree.KindComment) {
		st.SenderId = m.SenderId
	}
	if m.SenderName != "" {
		st.SenderName = m.SenderName
	}
	if m.Kind == string(voluntree.KindComment) && m.PostId != "" {
		st.LastPostId = m.PostId
	}
	st.Messages++
	st.Intents[m.Intent]++
}

func trimRecent(st *grainpb.ConversationState) {
	if n := len(st.RecentIds); n > recentIDs {
		st.RecentIds = slices.Delete(st.RecentIds, 0, n-recentIDs)
		st.RecentPostIds = slices.Delete(st.RecentPostIds, 0, n-recentIDs)
		st.RecentTurns = slices.Delete(st.RecentTurns, 0, n-recentIDs)
	}
}

// newCode is a fresh 6-digit email code (crypto/rand).
func newCode() string {
	c, err := voluntree.NewEmailCode()
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return c
}

// newNonce tags the options offered in one message.
func newNonce() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
