package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/voluntree/voluntree"
)

// How long the node remembers which signup a Facebook post is for, and a signup itself (with
// its facts' features). Admins' edits of a signup reach conversations within signupTTL.
const (
	postSignupTTL = 30 * time.Second
	signupTTL     = 5 * time.Second
	maxCached     = 10_000
)

// signupCache finds the signup a conversation is about, for the node's conversation grains.
type signupCache struct {
	store     Store
	featurize Featurizer
	now       func() time.Time

	mu      sync.Mutex
	posts   map[string]cachedPost   // Facebook post id → signup id ("" none)
	signups map[string]cachedSignup // by signup id
}

type cachedPost struct {
	signupID string
	expires  time.Time
}

type cachedSignup struct {
	su      *voluntree.Signup // nil: not found
	facts   *factIndex
	expires time.Time
}

func newSignupCache(store Store, fz Featurizer) *signupCache {
	return &signupCache{store: store, featurize: fz, now: time.Now,
		posts: map[string]cachedPost{}, signups: map[string]cachedSignup{}}
}

// forConversation returns the signup of a conversation: the one its latest post advertises,
// else the one it was about, provided it belongs to org and is not disabled (nil when none).
func (c *signupCache) forConversation(ctx context.Context, fbPostID, current, org string) (*voluntree.Signup, *factIndex, error) {
	id := current
	if fbPostID != "" {
		sid, err := c.signupOfPost(ctx, fbPostID)
		if err != nil {
			return nil, nil, err
		}
		if sid != "" {
			id = sid
		}
	}
	if id == "" {
		return nil, nil, nil
	}
	cs, err := c.signup(ctx, id)
	if err != nil || cs.su == nil || cs.su.OrgID != org || cs.su.Disabled {
		return nil, nil, err
	}
	return cs.su, cs.facts, nil
}

func (c *signupCache) signupOfPost(ctx context.Context, fbPostID string) (string, error) {
	now := c.now()
	c.mu.Lock()
	p, ok := c.posts[fbPostID]
	c.mu.Unlock()
	if ok && now.Before(p.expires) {
		return p.signupID, nil
	}
	p = cachedPost{expires: now.Add(postSignupTTL)}
	postID, err := c.store.PostIDByFacebookID(ctx, fbPostID)
	switch {
	case voluntree.ErrorCode(err) == voluntree.ENOTFOUND:
	case err != nil:
		return "", err
	case postID != "":
		post, err := c.store.Post(ctx, postID)
		switch {
		case voluntree.ErrorCode(err) == voluntree.ENOTFOUND:
		case err != nil:
			return "", err
		default:
			p.signupID = post.SignupID
		}
	}
	c.mu.Lock()
	if len(c.posts) > maxCached {
		clear(c.posts)
	}
	c.posts[fbPostID] = p
	c.mu.Unlock()
	return p.signupID, nil
}

func (c *signupCache) signup(ctx context.Context, id string) (cachedSignup, error) {
	now := c.now()
	c.mu.Lock()
	old, ok := c.signups[id]
	c.mu.Unlock()
	if ok && now.Before(old.expires) {
		return old, nil
	}
	var s cachedSignup
	su, err := c.store.Signup(ctx, id)
	switch {
	case voluntree.ErrorCode(err) == voluntree.ENOTFOUND:
		s = cachedSignup{expires: now.Add(signupTTL)}
	case err != nil:
		return cachedSignup{}, err
	default:
		s = cachedSignup{su: &su, expires: now.Add(signupTTL)}
		if old.su != nil && old.su.Facts == su.Facts {
			s.facts = old.facts // unchanged facts: keep their features
		} else {
			s.facts = newFactIndex(su.Facts, c.featurize)
		}
	}
	c.mu.Lock()
	if len(c.signups) > maxCached {
		clear(c.signups)
	}
	c.signups[id] = s
	c.mu.Unlock()
	return s, nil
}

// forget drops a signup from the cache: the next read gets it from Redis (an admin changed it).
func (c *signupCache) forget(id string) {
	c.mu.Lock()
	delete(c.signups, id)
	c.mu.Unlock()
}
