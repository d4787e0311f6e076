package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/voluntree/voluntree"
)

// How long a page's organization is remembered. A page connected a moment ago is found within
// orgMissTTL; a known page is looked up again after orgHitTTL (pages are rarely reconnected).
const (
	orgHitTTL  = 30 * time.Second
	orgMissTTL = 5 * time.Second
)

// pageOrgs tells which organization a Facebook page belongs to: every message's events go to
// that organization's feed, and a page of none has no feed. One cache per node, shared by its
// post grains, so a busy page costs one Redis read per orgHitTTL.
type pageOrgs struct {
	store voluntree.PageReader
	now   func() time.Time

	mu    sync.Mutex
	cache map[string]pageOrg
}

type pageOrg struct {
	org     string // "" when no organization has the page
	expires time.Time
}

func newPageOrgs(store voluntree.PageReader) *pageOrgs {
	return &pageOrgs{store: store, now: time.Now, cache: make(map[string]pageOrg)}
}

// orgOf returns the organization of page ("" when none). An error means it could not be told
// (Redis failed): the caller fails the message, which is redelivered.
func (p *pageOrgs) orgOf(ctx context.Context, page string) (string, error) {
	now := p.now()
	p.mu.Lock()
	c, ok := p.cache[page]
	p.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.org, nil
	}
	pg, err := p.store.Page(ctx, page)
	switch {
	case voluntree.ErrorCode(err) == voluntree.ENOTFOUND:
		c = pageOrg{expires: now.Add(orgMissTTL)}
	case err != nil:
		return "", err
	default:
		c = pageOrg{org: pg.OrgID, expires: now.Add(orgHitTTL)}
	}
	p.mu.Lock()
	if len(p.cache) > maxCachedPages { // pages come and go: never grow without bound
		clear(p.cache)
	}
	p.cache[page] = c
	p.mu.Unlock()
	return c.org, nil
}

// maxCachedPages bounds the cache; past it, it starts over.
const maxCachedPages = 100_000
