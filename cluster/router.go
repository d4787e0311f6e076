package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/actors"
	"github.com/voluntree/voluntree/cluster/grainpb"
	"github.com/voluntree/voluntree/redisstore"
)

// Router takes a batch of ingest messages through the pipeline: one classify call for the
// whole batch, then each conversation's messages to its conversation grain, then each post's
// messages to its post grain. Grains of different keys run concurrently; one key's messages
// go in one request, in stream order.
type Router struct {
	node       *Node
	classifier voluntree.Classifier
	log        *slog.Logger
}

// NewRouter returns a Router; it implements actors.StagedProcessor.
func NewRouter(node *Node, classifier voluntree.Classifier, logger *slog.Logger) *Router {
	return &Router{node: node, classifier: classifier, log: logger.With("component", "router")}
}

// Process applies msgs' effects durably and returns one error per message: nil means its
// effects are stored and the entry may be acknowledged. It runs the stages one after the
// other; the ingest consumer pipelines them instead.
func (r *Router) Process(ctx context.Context, msgs []voluntree.Message) []error {
	return actors.RunStages(ctx, r.Stages(), msgs)
}

// Stages are classify; send to conversations; wait for them and send to posts; wait for the
// posts (see actors.StagedProcessor). A stage sends all of a batch's grain requests, in
// stream order, and the next stage waits for the answers: each grain's mailbox keeps one key's
// messages in order while the round trips of consecutive batches overlap.
func (r *Router) Stages() []actors.Stage {
	return []actors.Stage{r.classifyStage, r.sendConversations, r.sendPosts, r.awaitPosts}
}

// routeData is what the stages hand each other through actors.Batch.Data.
type routeData struct {
	items []*grainpb.Classified
	calls []*grainCall // the requests in flight
}

// grainCall is one grain request of a batch: the messages idx of one key.
type grainCall struct {
	kind, key string
	idx       []int
	start     time.Time
	future    *actor.Future
	err       error
	send      func() (*actor.Future, error) // the first, asynchronous request
	retry     func() (any, error)           // the blocking call, which re-resolves the grain
}

// grainKind is the Proto.Actor kind of the call's grain (the PID cache's key).
func (c *grainCall) grainKind() string {
	if c.kind == "conversation" {
		return "Conversation"
	}
	return "Post"
}

// classifyStage classifies the whole batch in one call.
func (r *Router) classifyStage(ctx context.Context, b *actors.Batch) {
	preds, err := r.classify(ctx, b.Msgs)
	items := make([]*grainpb.Classified, len(b.Msgs))
	for i, m := range b.Msgs {
		if err != nil {
			b.Errs[i] = err
			continue
		}
		items[i] = classified(m, preds[i])
	}
	b.Data = &routeData{items: items}
}

// sendConversations sends each conversation's messages to its grain.
func (r *Router) sendConversations(ctx context.Context, b *actors.Batch) {
	d := b.Data.(*routeData)
	d.calls = nil
	keys := r.conversationKeys(ctx, b)
	for _, g := range groupBy(len(b.Msgs), func(i int) string {
		if b.Failed(i) {
			return ""
		}
		return keys[i]
	}) {
		client := r.node.Conversation(g.key)
		req := &grainpb.ConversationRequest{Messages: pick(d.items, g.idx)}
		d.calls = append(d.calls, &grainCall{kind: "conversation", key: g.key, idx: g.idx, start: time.Now(),
			send:  func() (*actor.Future, error) { return client.HandleFuture(req) },
			retry: func() (any, error) { return client.Handle(req) }})
	}
	r.send(d.calls)
}

// sendConcurrency bounds the first sends of one batch that wait for a grain's placement.
const sendConcurrency = 32

// send sends a stage's requests. A grain whose address this node has cached is sent to at
// once; the first request to any other grain blocks on its placement — a round trip to the
// member disthash names, which activates it — so those are sent concurrently: one after the
// other, a batch of 64 new conversations on a three-node cluster spent most of a second
// there, and the cluster took in new volunteers at a third of one node's rate. Each request
// goes to a different grain, so the order of one grain's messages holds. A node alone places
// every grain locally, fast: there the goroutines only cost (the comment path's A/B read
// +30–50 % with them), so it sends in order as before.
func (r *Router) send(calls []*grainCall) {
	if r.node.c.MemberList.Length() <= 1 {
		for _, c := range calls {
			c.future, c.err = c.send()
			r.track(c)
		}
		return
	}
	var wait sync.WaitGroup
	sem := make(chan struct{}, sendConcurrency)
	for _, c := range calls {
		if pid, _ := r.node.c.PidCache.Get(c.key, c.grainKind()); pid != nil {
			c.future, c.err = c.send()
			r.track(c)
			continue
		}
		wait.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wait.Done() }()
			c.future, c.err = c.send()
			r.track(c)
		}()
	}
	wait.Wait()
}

// conversationKeys is each message's conversation: a Messenger message of a commenter whose
// PSID is an alias goes to the conversation their comment started (see aliases.go).
func (r *Router) conversationKeys(ctx context.Context, b *actors.Batch) []string {
	keys := make([]string, len(b.Msgs))
	var messenger []int
	for i, m := range b.Msgs {
		keys[i] = m.ConversationID()
		if m.Kind != voluntree.KindComment && !b.Failed(i) {
			messenger = append(messenger, i)
		}
	}
	if len(messenger) == 0 {
		return keys // the comment path: no lookup
	}
	ids := make([]string, len(messenger))
	for j, i := range messenger {
		ids[j] = keys[i]
	}
	resolved, err := r.node.aliases.resolve(ctx, ids)
	for j, i := range messenger {
		switch {
		case err != nil:
			b.Errs[i] = fmt.Errorf("conversation alias: %w", err)
		default:
			keys[i] = resolved[j]
		}
	}
	return keys
}

// sendPosts takes the conversations' answers (the post each message belongs to: Messenger
// messages inherit the conversation's) and sends each post's messages to its grain.
func (r *Router) sendPosts(_ context.Context, b *actors.Batch) {
	d := b.Data.(*routeData)
	for _, c := range d.calls {
		res, err := r.await(c)
		resp, ok := res.(*grainpb.ConversationResponse)
		switch {
		case err != nil:
		case !ok:
			err = fmt.Errorf("unexpected answer %T", res)
		case len(resp.PostIds) != len(c.idx):
			err = fmt.Errorf("answered %d posts for %d messages", len(resp.PostIds), len(c.idx))
		}
		for j, i := range c.idx {
			if err != nil {
				b.Errs[i] = fmt.Errorf("conversation grain %s: %w", c.key, err)
				continue
			}
			d.items[i].PostId = resp.PostIds[j]
			if len(resp.Turns) == len(c.idx) { // an older node's answer has none
				d.items[i].Turn = resp.Turns[j]
			}
			if d.items[i].SenderName == "" && len(resp.Names) == len(c.idx) {
				d.items[i].SenderName = resp.Names[j]
			}
		}
	}
	d.calls = nil
	for _, g := range groupBy(len(b.Msgs), func(i int) string {
		switch {
		case b.Failed(i), b.Msgs[i].Source == voluntree.SourceWebChat: // web chat: no post to count for
			return ""
		case d.items[i].PostId == "":
			return redisstore.PageInbox(d.items[i].PageId)
		}
		return d.items[i].PostId
	}) {
		client := r.node.Post(g.key)
		req := &grainpb.RecordRequest{PostKey: g.key, Messages: pick(d.items, g.idx)}
		d.calls = append(d.calls, &grainCall{kind: "post", key: g.key, idx: g.idx, start: time.Now(),
			send:  func() (*actor.Future, error) { return client.RecordFuture(req) },
			retry: func() (any, error) { return client.Record(req) }})
	}
	r.send(d.calls)
}

// awaitPosts waits for the post grains: their records are the batch's durable effects.
func (r *Router) awaitPosts(_ context.Context, b *actors.Batch) {
	d := b.Data.(*routeData)
	for _, c := range d.calls {
		res, err := r.await(c)
		if _, ok := res.(*grainpb.RecordResponse); err == nil && !ok {
			err = fmt.Errorf("unexpected answer %T", res)
		}
		if err != nil {
			for _, i := range c.idx {
				b.Errs[i] = fmt.Errorf("post grain %s: %w", c.key, err)
			}
		}
	}
	d.calls = nil
}

// track lets the node release the call if a member leaves while it is in flight.
func (r *Router) track(c *grainCall) {
	if c.err == nil {
		r.node.inflight.add(c.future)
	}
}

// await returns a grain call's answer. A request that timed out, found its grain gone (it
// was passivated or moved as the request left) or was released because a member left (an
// empty answer, see inflight.go) is sent again with the blocking call, which resolves the
// grain anew and retries; a grain's own error is final (the entry is redelivered).
func (r *Router) await(c *grainCall) (any, error) {
	var res any
	err := c.err
	if err == nil {
		res, err = c.future.Result()
		r.node.inflight.remove(c.future)
	}
	if ge, ok := res.(*protocluster.GrainErrorResponse); ok {
		res, err = nil, ge
	} else if err != nil || res == nil {
		res, err = c.retry()
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
		r.log.Warn("grain request failed", "action", "route", "kind", c.kind, "key", c.key, "error", err)
	}
	r.node.cfg.Metrics.GrainRequest.WithLabelValues(c.kind, outcome).Observe(time.Since(c.start).Seconds())
	return res, err
}

// classify classifies the batch, waiting and retrying briefly while the classifier is
// overloaded (the entries are already safe in the stream; a short wait beats a redelivery).
func (r *Router) classify(ctx context.Context, msgs []voluntree.Message) ([]voluntree.Prediction, error) {
	texts := make([]string, len(msgs))
	for i, m := range msgs {
		texts[i] = m.Text
		if texts[i] == "" {
			texts[i] = m.Payload
		}
	}
	classify := r.classifier.Classify
	if now, ok := r.classifier.(interface {
		ClassifyNow(context.Context, []string) ([]voluntree.Prediction, error)
	}); ok {
		classify = now.ClassifyNow // the batch is made: nothing to wait for
	}
	backoff := 5 * time.Millisecond
	for {
		preds, err := classify(ctx, texts)
		if voluntree.ErrorCode(err) != voluntree.EOVERLOADED {
			if err != nil {
				return nil, fmt.Errorf("classify: %w", err)
			}
			return preds, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("classify: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

type group struct {
	key string
	idx []int
}

// groupBy groups indexes 0..n-1 by key (skipping ""), groups in order of first appearance
// and indexes in order within a group.
func groupBy(n int, key func(i int) string) []group {
	var out []group
	at := make(map[string]int)
	for i := range n {
		k := key(i)
		if k == "" {
			continue
		}
		g, ok := at[k]
		if !ok {
			g = len(out)
			at[k] = g
			out = append(out, group{key: k})
		}
		out[g].idx = append(out[g].idx, i)
	}
	return out
}

func pick[T any](items []T, idx []int) []T {
	out := make([]T, len(idx))
	for j, i := range idx {
		out[j] = items[i]
	}
	return out
}

func classified(m voluntree.Message, p voluntree.Prediction) *grainpb.Classified {
	c := &grainpb.Classified{
		Id: m.ID, Kind: string(m.Kind), Source: m.Source, PageId: m.PageID, PostId: m.PostID,
		ParentId: m.ParentID, SenderId: m.SenderID, SenderName: m.SenderName, Text: m.Text,
		Payload: m.Payload, Intent: string(p.Intent), Confidence: p.Confidence, SignupId: m.SignupID,
	}
	if !m.CreatedAt.IsZero() {
		c.CreatedAtUnixNano = m.CreatedAt.UnixNano()
	}
	if !m.ReceivedAt.IsZero() {
		c.ReceivedAtUnixNano = m.ReceivedAt.UnixNano()
	}
	return c
}
