package cluster

import (
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
)

// postGrain is one post (or a page's inbox, for Messenger interests with no post). It records
// each classified message once — counted by intent, and, when interested, stored as an
// interest of the page's organization with its event on that organization's feed. It keeps
// nothing in memory: the counts are in Redis (redisstore.Store.Counts), where the API reads
// them.
type postGrain struct {
	deps *grainDeps
	key  string
}

var _ grainpb.Post = (*postGrain)(nil)

func (g *postGrain) Init(ctx protocluster.GrainContext) {
	g.key = ctx.Identity()
	g.deps.metrics.GrainsActive.WithLabelValues("post").Inc()
}

func (g *postGrain) Terminate(protocluster.GrainContext) {
	g.deps.metrics.GrainsActive.WithLabelValues("post").Dec()
}
func (g *postGrain) ReceiveDefault(protocluster.GrainContext) {}

// Record stores the messages' effects in one Redis round trip; it is idempotent per message.
func (g *postGrain) Record(req *grainpb.RecordRequest, _ protocluster.GrainContext) (*grainpb.RecordResponse, error) {
	ctx, cancel := g.deps.ctx()
	defer cancel()
	now := time.Now()
	interests := make([]voluntree.Interest, len(req.Messages))
	for i, m := range req.Messages {
		interests[i] = interestOf(m, now)
	}
	// A post's messages are all on its page, a page inbox's too: one organization, one call.
	// Should a request mix pages, each page's messages go to their own organization.
	orgs := make([]string, len(interests))
	for i, in := range interests {
		if i > 0 && in.PageID == interests[i-1].PageID {
			orgs[i] = orgs[i-1]
			continue
		}
		org, err := g.deps.orgs.orgOf(ctx, in.PageID)
		if err != nil {
			return nil, err
		}
		orgs[i] = org
	}
	res := make([]voluntree.Recorded, len(interests))
	for _, grp := range groupBy(len(interests), func(i int) string { return "o" + orgs[i] }) {
		org := orgs[grp.idx[0]]
		part, err := g.deps.store.Record(ctx, org, g.key, pick(interests, grp.idx))
		if err != nil {
			return nil, err
		}
		for j, i := range grp.idx {
			res[i] = part[j]
		}
	}
	published := time.Now()
	resp := &grainpb.RecordResponse{}
	for i, r := range res {
		in := interests[i]
		switch r.Outcome {
		case voluntree.RecordDuplicate:
			resp.Duplicates++
			continue
		case voluntree.RecordNewInterest:
			resp.Interests++
			g.deps.metrics.Interests.Inc()
			if !in.ReceivedAt.IsZero() {
				g.deps.metrics.EndToEnd.Observe(published.Sub(in.ReceivedAt).Seconds())
			}
		case voluntree.RecordCounted:
			resp.Counted++
		}
		if orgs[i] == "" {
			g.deps.metrics.Unowned.Inc()
		}
		g.deps.metrics.Classified.WithLabelValues(string(in.Intent)).Inc()
	}
	return resp, nil
}

func interestOf(m *grainpb.Classified, recorded time.Time) voluntree.Interest {
	in := voluntree.Interest{
		ID: m.Id, PostID: m.PostId, PageID: m.PageId, SenderID: m.SenderId, SenderName: m.SenderName,
		Kind: voluntree.MessageKind(m.Kind), Text: m.Text, Intent: voluntree.Intent(m.Intent),
		Confidence: m.Confidence, RecordedAt: recorded, Turn: m.Turn,
	}
	if m.CreatedAtUnixNano != 0 {
		in.CreatedAt = time.Unix(0, m.CreatedAtUnixNano).UTC()
	}
	if m.ReceivedAtUnixNano != 0 {
		in.ReceivedAt = time.Unix(0, m.ReceivedAtUnixNano).UTC()
	}
	return in
}
