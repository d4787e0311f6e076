package cluster

import (
	"context"
	"strings"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
	"github.com/voluntree/voluntree/redisstore"
)

// postGrain is one post (or a page's inbox, for Messenger interests with no post). It records
// each classified message once — counted by intent, and stored as an interest with its event
// when interested — and keeps the post's counts in memory, loaded on activation.
type postGrain struct {
	deps   *grainDeps
	key    string
	counts *redisstore.PostCounts // nil until loaded

	// The organization whose post (or page inbox) this is, for its stats; "" for posts not
	// published through Voluntree. Looked up again now and then while unknown.
	org        string
	orgChecked time.Time
}

var _ grainpb.Post = (*postGrain)(nil)

func (g *postGrain) Init(ctx protocluster.GrainContext) {
	g.key = ctx.Identity()
	if err := g.load(); err != nil {
		g.deps.log.Warn("load post", "action", "activate", "post", g.key, "error", err)
	}
}

func (g *postGrain) Terminate(protocluster.GrainContext)      {}
func (g *postGrain) ReceiveDefault(protocluster.GrainContext) {}

func (g *postGrain) load() error {
	ctx, cancel := g.deps.ctx()
	defer cancel()
	c, err := g.deps.store.Counts(ctx, g.key)
	if err != nil {
		return err
	}
	g.counts = &c
	return nil
}

// Record stores the messages' effects in one Redis round trip; it is idempotent per message.
func (g *postGrain) Record(req *grainpb.RecordRequest, _ protocluster.GrainContext) (*grainpb.RecordResponse, error) {
	if g.counts == nil {
		if err := g.load(); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	interests := make([]voluntree.Interest, len(req.Messages))
	for i, m := range req.Messages {
		interests[i] = interestOf(m, now)
	}
	ctx, cancel := g.deps.ctx()
	defer cancel()
	res, err := g.deps.store.Record(ctx, g.key, interests)
	if err != nil {
		return nil, err
	}
	if err := g.indexForOrg(ctx, interests); err != nil {
		return nil, err // redelivered: recording is idempotent, and so is indexing
	}
	published := time.Now()
	resp := &grainpb.RecordResponse{}
	for i, r := range res {
		in := interests[i]
		switch r.Outcome {
		case redisstore.Duplicate:
			resp.Duplicates++
			continue
		case redisstore.NewInterest:
			resp.Interests++
			g.counts.Interests++
			g.deps.metrics.Interests.Inc()
			if !in.ReceivedAt.IsZero() {
				g.deps.metrics.EndToEnd.Observe(published.Sub(in.ReceivedAt).Seconds())
			}
		case redisstore.Counted:
			resp.Counted++
		}
		g.counts.Intents[in.Intent]++
		g.deps.metrics.Classified.WithLabelValues(string(in.Intent)).Inc()
	}
	return resp, nil
}

func interestOf(m *grainpb.Classified, recorded time.Time) voluntree.Interest {
	in := voluntree.Interest{
		ID: m.Id, PostID: m.PostId, PageID: m.PageId, SenderID: m.SenderId, SenderName: m.SenderName,
		Kind: voluntree.MessageKind(m.Kind), Text: m.Text, Intent: voluntree.Intent(m.Intent),
		Confidence: m.Confidence, RecordedAt: recorded,
	}
	if m.CreatedAtUnixNano != 0 {
		in.CreatedAt = time.Unix(0, m.CreatedAtUnixNano).UTC()
	}
	if m.ReceivedAtUnixNano != 0 {
		in.ReceivedAt = time.Unix(0, m.ReceivedAtUnixNano).UTC()
	}
	return in
}

// orgRecheck is how long an unknown organization is remembered before it is looked up again.
const orgRecheck = time.Minute

// indexForOrg adds the interests among msgs to their organization's stats indexes. It indexes
// duplicates too: after a crash between recording and indexing, the redelivery completes it.
func (g *postGrain) indexForOrg(ctx context.Context, ins []voluntree.Interest) error {
	var interested []voluntree.Interest
	for _, in := range ins {
		if in.Intent == voluntree.IntentInterested {
			interested = append(interested, in)
		}
	}
	if len(interested) == 0 {
		return nil
	}
	if g.org == "" && time.Since(g.orgChecked) > orgRecheck {
		org, err := g.lookupOrg(ctx)
		if err != nil {
			return err
		}
		g.org, g.orgChecked = org, time.Now()
	}
	return g.deps.store.IndexOrgInterests(ctx, g.org, g.key, interested)
}

// lookupOrg finds the organization of the grain's post: through the admin post published as
// it, or for a page inbox through the page.
func (g *postGrain) lookupOrg(ctx context.Context) (string, error) {
	if pageID, ok := strings.CutPrefix(g.key, "page:"); ok {
		pg, err := g.deps.store.Page(ctx, pageID)
		if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
			return "", nil
		}
		return pg.OrgID, err
	}
	id, err := g.deps.store.PostIDByFacebookID(ctx, g.key)
	if err != nil || id == "" {
		return "", err
	}
	p, err := g.deps.store.Post(ctx, id)
	if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
		return "", nil
	}
	return p.OrgID, err
}
