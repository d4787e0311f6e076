package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/actors"
	"github.com/voluntree/voluntree/cluster/grainpb"
	"github.com/voluntree/voluntree/redisstore"
)

// Router takes a batch of ingest messages through the pipeline: one classify call for the
// whole batch (the batching actor merges it with other callers'), then each conversation's
// messages to its conversation grain, then each post's messages to its post grain. Grains
// of different keys run concurrently; one key's messages go in one request, in stream order.
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

// Stages are classify, conversations, posts (see actors.StagedProcessor).
func (r *Router) Stages() []actors.Stage {
	return []actors.Stage{r.classifyStage, r.conversationStage, r.postStage}
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
	b.Data = items
}

// conversationStage sends each conversation's messages to its grain, which answers the post
// each belongs to (Messenger messages inherit the conversation's post).
func (r *Router) conversationStage(_ context.Context, b *actors.Batch) {
	items := b.Data.([]*grainpb.Classified)
	byConv := groupBy(len(b.Msgs), func(i int) string {
		if b.Failed(i) {
			return ""
		}
		return b.Msgs[i].ConversationID()
	})
	delete(byConv, "")
	var mu sync.Mutex
	r.each(byConv, func(id string, idx []int) {
		req := &grainpb.ConversationRequest{Messages: pick(items, idx)}
		resp, err := timed(r, "conversation", func() (*grainpb.ConversationResponse, error) {
			return r.node.Conversation(id).Handle(req)
		})
		if err == nil && len(resp.PostIds) != len(idx) {
			err = fmt.Errorf("conversation %s answered %d posts for %d messages", id, len(resp.PostIds), len(idx))
		}
		mu.Lock()
		defer mu.Unlock()
		for j, i := range idx {
			if err != nil {
				b.Errs[i] = fmt.Errorf("conversation grain %s: %w", id, err)
				continue
			}
			items[i].PostId = resp.PostIds[j]
		}
	})
}

// postStage sends each post's messages to its grain, which records them once each.
func (r *Router) postStage(_ context.Context, b *actors.Batch) {
	items := b.Data.([]*grainpb.Classified)
	byPost := groupBy(len(b.Msgs), func(i int) string {
		switch {
		case b.Failed(i):
			return ""
		case items[i].PostId == "":
			return redisstore.PageInbox(items[i].PageId)
		}
		return items[i].PostId
	})
	delete(byPost, "")
	var mu sync.Mutex
	r.each(byPost, func(key string, idx []int) {
		req := &grainpb.RecordRequest{PostKey: key, Messages: pick(items, idx)}
		_, err := timed(r, "post", func() (*grainpb.RecordResponse, error) {
			return r.node.Post(key).Record(req)
		})
		if err == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, i := range idx {
			b.Errs[i] = fmt.Errorf("post grain %s: %w", key, err)
		}
	})
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

func timed[T any](r *Router, kind string, call func() (T, error)) (T, error) {
	start := time.Now()
	resp, err := call()
	outcome := "ok"
	if err != nil {
		outcome = "error"
		r.log.Warn("grain request failed", "action", "route", "kind", kind, "error", err)
	}
	r.node.cfg.Metrics.GrainRequest.WithLabelValues(kind, outcome).Observe(time.Since(start).Seconds())
	return resp, err
}

// each runs fn for every group concurrently and waits for all.
func (r *Router) each(groups map[string][]int, fn func(key string, idx []int)) {
	var wg sync.WaitGroup
	for key, idx := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(key, idx)
		}()
	}
	wg.Wait()
}

// groupBy groups indexes 0..n-1 by key, keeping their order within a group.
func groupBy(n int, key func(i int) string) map[string][]int {
	g := make(map[string][]int)
	for i := range n {
		k := key(i)
		g[k] = append(g[k], i)
	}
	return g
}

func pick(items []*grainpb.Classified, idx []int) []*grainpb.Classified {
	out := make([]*grainpb.Classified, len(idx))
	for j, i := range idx {
		out[j] = items[i]
	}
	return out
}

func classified(m voluntree.Message, p voluntree.Prediction) *grainpb.Classified {
	c := &grainpb.Classified{
		Id: m.ID, Kind: string(m.Kind), Source: m.Source, PageId: m.PageID, PostId: m.PostID,
		ParentId: m.ParentID, SenderId: m.SenderID, SenderName: m.SenderName, Text: m.Text,
		Payload: m.Payload, Intent: string(p.Intent), Confidence: p.Confidence,
	}
	if !m.CreatedAt.IsZero() {
		c.CreatedAtUnixNano = m.CreatedAt.UnixNano()
	}
	if !m.ReceivedAt.IsZero() {
		c.ReceivedAtUnixNano = m.ReceivedAt.UnixNano()
	}
	return c
}
