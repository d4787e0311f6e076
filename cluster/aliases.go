package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/voluntree/voluntree"
)

// A commenter's Messenger id (PSID) can differ from their id on comments. The private reply's
// answer names the PSID, and the effects worker records it as an alias of the conversation the
// comment started: the router sends that person's Messenger messages to that conversation.

// How long the node remembers an alias, and that a conversation has none. A miss is short:
// the alias is written the moment the private reply is sent, and the answer may come soon.
const (
	aliasHitTTL  = 10 * time.Minute
	aliasMissTTL = 2 * time.Second
)

type aliasCache struct {
	store voluntree.AliasStore
	now   func() time.Time

	mu    sync.Mutex
	cache map[string]cachedAlias
}

type cachedAlias struct {
	target  string
	expires time.Time
}

func newAliasCache(store voluntree.AliasStore) *aliasCache {
	return &aliasCache{store: store, now: time.Now, cache: map[string]cachedAlias{}}
}

// resolve returns the conversation each of ids continues (itself when none), in order.
func (a *aliasCache) resolve(ctx context.Context, ids []string) ([]string, error) {
	now := a.now()
	out := make([]string, len(ids))
	var missing []int
	a.mu.Lock()
	for i, id := range ids {
		if c, ok := a.cache[id]; ok && now.Before(c.expires) {
			out[i] = c.target
		} else {
			missing = append(missing, i)
		}
	}
	a.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	ask := make([]string, len(missing))
	for j, i := range missing {
		ask[j] = ids[i]
	}
	got, err := a.store.ConversationAliases(ctx, ask)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if len(a.cache) > maxCached {
		clear(a.cache)
	}
	for j, i := range missing {
		out[i] = got[j]
		ttl := aliasMissTTL
		if got[j] != ids[i] {
			ttl = aliasHitTTL
		}
		a.cache[ids[i]] = cachedAlias{target: got[j], expires: now.Add(ttl)}
	}
	a.mu.Unlock()
	return out, nil
}
