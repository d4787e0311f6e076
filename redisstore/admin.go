package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
)

// Organizations, admin tokens, pages, signups and posts. Records are JSON strings indexed per
// organization by sorted sets (creation time), so lists page in a stable order. A record is
// changed under WATCH (optimistic transaction): concurrent changes of one post never
// interleave, and a status change is checked against the status it starts from.

// maxTxRetries bounds the optimistic transaction retries of one change.
const maxTxRetries = 20

func getJSON[T any](ctx context.Context, c redis.Cmdable, key, what, id string) (T, error) {
	var v T
	b, err := c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return v, voluntree.Errorf(voluntree.ENOTFOUND, "%s %q not found", what, id)
	}
	if err != nil {
		return v, fmt.Errorf("redisstore: get %s %s: %w", what, id, err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("redisstore: decode %s %s: %w", what, id, err)
	}
	return v, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("redisstore: encode %T: %v", v, err)) // plain structs always encode
	}
	return string(b)
}

func ms(t time.Time) float64 { return float64(t.UnixMilli()) }

// listIndex returns one page of an index (oldest first) and its total size; load fetches the
// page's records in one batch and skips those removed since the index was read.
func listIndex[T any](ctx context.Context, s *Store, index string, offset, limit int, load func(context.Context, []string) ([]T, error)) (Page[T], error) {
	pipe := s.rdb.Pipeline()
	total := pipe.ZCard(ctx, index)
	ids := pipe.ZRange(ctx, index, int64(offset), int64(offset+limit-1))
	if _, err := pipe.Exec(ctx); err != nil {
		return Page[T]{}, fmt.Errorf("redisstore: list %s: %w", index, err)
	}
	items, err := load(ctx, ids.Val())
	if err != nil {
		return Page[T]{}, err
	}
	return Page[T]{Total: int(total.Val()), Items: items}, nil
}

// owned keeps the records of organization org: an index is written apart from its records
// (Redis Cluster), so a list never trusts it alone with what it shows.
func owned[T any](items []T, org string, orgOf func(T) string) []T {
	return slices.DeleteFunc(items, func(v T) bool { return orgOf(v) != org })
}

// jsonRecords returns a loader of JSON records by id for listIndex: one pipelined round trip.
func jsonRecords[T any](key func(string) string, what string) func(context.Context, *Store, []string) ([]T, error) {
	return func(ctx context.Context, s *Store, ids []string) ([]T, error) {
		out := make([]T, 0, len(ids))
		if len(ids) == 0 {
			return out, nil
		}
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(ids))
		for i, id := range ids {
			cmds[i] = pipe.Get(ctx, key(id))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("redisstore: load %ss: %w", what, err)
		}
		for i, c := range cmds {
			b, err := c.Bytes()
			if errors.Is(err, redis.Nil) {
				continue // removed between the index read and the load
			}
			var v T
			if err == nil {
				err = json.Unmarshal(b, &v)
			}
			if err != nil {
				return nil, fmt.Errorf("redisstore: load %s %s: %w", what, ids[i], err)
			}
			out = append(out, v)
		}
		return out, nil
	}
}

// ---- Organizations ----

// CreateOrg stores a new organization; ECONFLICT when its id is taken.
func (s *Store) CreateOrg(ctx context.Context, o voluntree.Organization) error {
	if !voluntree.ValidID(o.ID) {
		return voluntree.FieldErrorf("org", "organization id: letters, digits and _.:- only, at most 64")
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = time.Now().UTC()
	}
	ok, err := s.rdb.SetNX(ctx, s.keys.Org(o.ID), mustJSON(o), 0).Result()
	if err != nil {
		return fmt.Errorf("redisstore: create org %s: %w", o.ID, err)
	}
	if !ok {
		return voluntree.Errorf(voluntree.ECONFLICT, "organization %q exists", o.ID)
	}
	if err := s.rdb.ZAdd(ctx, s.keys.Orgs(), redis.Z{Score: ms(o.CreatedAt), Member: o.ID}).Err(); err != nil {
		return fmt.Errorf("redisstore: index org %s: %w", o.ID, err)
	}
	return nil
}

// Org returns an organization; ENOTFOUND when there is none.
func (s *Store) Org(ctx context.Context, id string) (voluntree.Organization, error) {
	return getJSON[voluntree.Organization](ctx, s.rdb, s.keys.Org(id), "organization", id)
}

// UpdateOrg changes an organization with fn under an optimistic transaction.
func (s *Store) UpdateOrg(ctx context.Context, id string, fn func(*voluntree.Organization) error) (voluntree.Organization, error) {
	var out voluntree.Organization
	key := s.keys.Org(id)
	err := s.watch(ctx, func(tx *redis.Tx) error {
		o, err := getJSON[voluntree.Organization](ctx, tx, key, "organization", id)
		if err != nil {
			return err
		}
		if err := fn(&o); err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, mustJSON(o), 0)
			return nil
		})
		out = o
		return err
	}, key)
	return out, err
}

// watch runs fn in an optimistic transaction on keys, retrying when they change under it.
func (s *Store) watch(ctx context.Context, fn func(*redis.Tx) error, keys ...string) error {
	for range maxTxRetries {
		err := s.rdb.Watch(ctx, fn, keys...)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		return err
	}
	return voluntree.Errorf(voluntree.ECONFLICT, "too many concurrent changes, try again")
}

// ---- Admin API tokens ----

// TokenPrefix starts every admin API token.
const TokenPrefix = "vt_"

// tokenIDLen is the length of a token's id (hex characters of its hash).
const tokenIDLen = 12

// HashToken returns the SHA-256 (hex) of a token: its key.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CreateAdminToken makes a new token for an existing organization and returns it: this is the
// only time it is seen.
func (s *Store) CreateAdminToken(ctx context.Context, orgID string, opts TokenOptions) (string, AdminToken, error) {
	if opts.Role == "" {
		opts.Role = voluntree.RoleOwner
	}
	if !opts.Role.Valid() {
		return "", AdminToken{}, voluntree.FieldErrorf("role", "role must be owner, admin or viewer")
	}
	if opts.TTL < 0 {
		return "", AdminToken{}, voluntree.FieldErrorf("expires_in", "a token's lifetime must be positive")
	}
	if err := checkLabel(opts.Label); err != nil {
		return "", AdminToken{}, err
	}
	if _, err := s.Org(ctx, orgID); err != nil {
		return "", AdminToken{}, err
	}
	token, err := newToken(TokenPrefix)
	if err != nil {
		return "", AdminToken{}, err
	}
	h := HashToken(token)
	now := time.Now().UTC()
	rec := AdminToken{ID: h[:tokenIDLen], OrgID: orgID, Label: opts.Label, Hint: token[:len(TokenPrefix)+6],
		Role: opts.Role, CreatedBy: opts.CreatedBy, CreatedAt: now}
	if opts.TTL > 0 {
		rec.ExpiresAt = now.Add(opts.TTL)
	}
	// Two steps, each on its own slot (Redis Cluster): the organization's index first, then
	// the token. A token exists only once it is listed, so it can always be revoked; an index
	// entry whose token was never stored is skipped by the list and removed later.
	if err := s.rdb.ZAdd(ctx, s.keys.OrgTokens(orgID), redis.Z{Score: ms(rec.CreatedAt), Member: h}).Err(); err != nil {
		return "", AdminToken{}, fmt.Errorf("redisstore: index token: %w", err)
	}
	if err := s.rdb.Set(ctx, s.keys.AdminToken(h), mustJSON(rec), opts.TTL).Err(); err != nil {
		return "", AdminToken{}, fmt.Errorf("redisstore: store token: %w", err)
	}
	return token, rec, nil
}

func checkLabel(label string) error {
	if len(label) > 100 || strings.ContainsAny(label, "\r\n\x00") {
		return voluntree.FieldErrorf("label", "label: at most 100 characters on one line")
	}
	return nil
}

// LookupAdminToken returns the record of a token; ENOTFOUND for an unknown, revoked or
// expired one.
func (s *Store) LookupAdminToken(ctx context.Context, token string) (AdminToken, error) {
	if !strings.HasPrefix(token, TokenPrefix) || len(token) > 128 {
		return AdminToken{}, voluntree.Errorf(voluntree.ENOTFOUND, "unknown token")
	}
	h := HashToken(token)
	rec, err := getJSON[AdminToken](ctx, s.rdb, s.keys.AdminToken(h), "token", "")
	if err != nil {
		return rec, err
	}
	if rec.Expired(time.Now()) {
		return AdminToken{}, voluntree.Errorf(voluntree.ENOTFOUND, "expired token")
	}
	if rec.Role == "" {
		rec.Role = voluntree.RoleOwner
	}
	if rec.ID == "" {
		rec.ID = h[:tokenIDLen]
	}
	return rec, nil
}

// AdminTokens returns an organization's live tokens, oldest first; expired ones are
// forgotten.
func (s *Store) AdminTokens(ctx context.Context, orgID string) ([]AdminToken, error) {
	index := s.keys.OrgTokens(orgID)
	zs, err := s.rdb.ZRangeWithScores(ctx, index, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: tokens of %s: %w", orgID, err)
	}
	hashes := make([]string, len(zs))
	for i, z := range zs {
		hashes[i], _ = z.Member.(string)
	}
	cmds := make([]*redis.StringCmd, len(hashes))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range hashes {
			cmds[i] = p.Get(ctx, s.keys.AdminToken(h))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: tokens of %s: %w", orgID, err)
	}
	out := make([]AdminToken, 0, len(hashes))
	now := time.Now()
	for i, c := range cmds {
		raw, err := c.Result()
		if errors.Is(err, redis.Nil) {
			// Expired (its key is gone), or never stored: forgotten. A token being created
			// right now is indexed a moment before it is stored: left alone for a minute.
			if now.Sub(time.UnixMilli(int64(zs[i].Score))) > time.Minute {
				_ = s.rdb.ZRem(ctx, index, hashes[i]).Err()
			}
			continue
		}
		rec, err := decodeJSON[AdminToken](raw, "token")
		if err != nil {
			return nil, err
		}
		if rec.OrgID != orgID {
			continue
		}
		if rec.Expired(now) {
			continue
		}
		rec.ID = hashes[i][:tokenIDLen]
		if rec.Role == "" {
			rec.Role = voluntree.RoleOwner
		}
		out = append(out, rec)
	}
	return out, nil
}

// RevokeAdminToken deletes an organization's token by its id; it is refused at once after.
// ENOTFOUND when org has no such token.
func (s *Store) RevokeAdminToken(ctx context.Context, orgID, id string) (AdminToken, error) {
	if len(id) != tokenIDLen {
		return AdminToken{}, voluntree.Errorf(voluntree.ENOTFOUND, "no token %.16q in this organization", id)
	}
	hashes, err := s.rdb.ZRange(ctx, s.keys.OrgTokens(orgID), 0, -1).Result()
	if err != nil {
		return AdminToken{}, fmt.Errorf("redisstore: tokens of %s: %w", orgID, err)
	}
	for _, h := range hashes {
		if h[:tokenIDLen] != id {
			continue
		}
		rec, err := getJSON[AdminToken](ctx, s.rdb, s.keys.AdminToken(h), "token", "")
		if err != nil && voluntree.ErrorCode(err) != voluntree.ENOTFOUND {
			return AdminToken{}, err
		}
		if err == nil && rec.OrgID != orgID {
			continue
		}
		// The token first (refused from now on), then its index entry (another slot on
		// Redis Cluster; a list skips an entry whose token is gone).
		if err := s.rdb.Del(ctx, s.keys.AdminToken(h)).Err(); err != nil {
			return AdminToken{}, fmt.Errorf("redisstore: revoke token: %w", err)
		}
		if err := s.rdb.ZRem(ctx, s.keys.OrgTokens(orgID), h).Err(); err != nil {
			return AdminToken{}, fmt.Errorf("redisstore: revoke token: index: %w", err)
		}
		rec.ID = id
		return rec, nil
	}
	return AdminToken{}, voluntree.Errorf(voluntree.ENOTFOUND, "no token %.16q in this organization", id)
}

// ---- Pages ----

// SavePage stores a connected page for its organization (a reconnection updates the token).
// ECONFLICT when another organization has connected this page.
func (s *Store) SavePage(ctx context.Context, pg voluntree.Page) error {
	key := s.keys.Page(pg.ID)
	err := s.watch(ctx, func(tx *redis.Tx) error {
		old, err := getJSON[voluntree.Page](ctx, tx, key, "page", pg.ID)
		switch {
		case err == nil && old.OrgID != pg.OrgID:
			return voluntree.Errorf(voluntree.ECONFLICT, "page %s is connected to another organization", pg.ID)
		case err != nil && voluntree.ErrorCode(err) != voluntree.ENOTFOUND:
			return err
		}
		if pg.ConnectedAt.IsZero() {
			pg.ConnectedAt = time.Now().UTC()
		}
		// The organization's index is in another slot (Redis Cluster): written first, apart
		// (idempotent), so a stored page is always listed; lists check each page's owner.
		if err := s.rdb.ZAddNX(ctx, s.keys.OrgPages(pg.OrgID), redis.Z{Score: ms(pg.ConnectedAt), Member: pg.ID}).Err(); err != nil {
			return fmt.Errorf("redisstore: index page: %w", err)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, mustJSON(pg), 0)
			return nil
		})
		return err
	}, key)
	if voluntree.ErrorCode(err) == voluntree.ECONFLICT {
		// Another organization connected it first (this one's index may have it: removed).
		if zerr := s.rdb.ZRem(ctx, s.keys.OrgPages(pg.OrgID), pg.ID).Err(); zerr != nil {
			return fmt.Errorf("%w (and its index entry was not removed: %v)", err, zerr)
		}
		return err
	}
	if err != nil || pg.DisconnectedAt != nil {
		return err
	}
	// Connected (again): the messages parked while its token was refused go out now. Saving
	// the page again resumes them if this fails.
	if _, err := s.UnparkEffects(ctx, pg.ID); err != nil {
		return fmt.Errorf("page %s saved, its parked messages not resumed (save it again): %w", pg.ID, err)
	}
	return nil
}

// Page returns a connected page; ENOTFOUND when there is none.
func (s *Store) Page(ctx context.Context, id string) (voluntree.Page, error) {
	return getJSON[voluntree.Page](ctx, s.rdb, s.keys.Page(id), "page", id)
}

// Pages lists an organization's pages.
func (s *Store) Pages(ctx context.Context, orgID string, offset, limit int) (Page[voluntree.Page], error) {
	load := jsonRecords[voluntree.Page](s.keys.Page, "page")
	return listIndex(ctx, s, s.keys.OrgPages(orgID), offset, limit, func(ctx context.Context, ids []string) ([]voluntree.Page, error) {
		pages, err := load(ctx, s, ids)
		return owned(pages, orgID, func(p voluntree.Page) string { return p.OrgID }), err
	})
}

// ---- Signups ----

// CreateSignup stores a new, validated signup: the organization's index first, then the
// record (two slots on Redis Cluster; a list skips an index entry with no record).
func (s *Store) CreateSignup(ctx context.Context, su voluntree.Signup) error {
	if err := s.rdb.ZAdd(ctx, s.keys.OrgSignups(su.OrgID), redis.Z{Score: ms(su.CreatedAt), Member: su.ID}).Err(); err != nil {
		return fmt.Errorf("redisstore: create signup: index: %w", err)
	}
	if err := s.rdb.Set(ctx, s.keys.Signup(su.ID), mustJSON(su), 0).Err(); err != nil {
		return fmt.Errorf("redisstore: create signup: %w", err)
	}
	return nil
}

// Signup returns a signup; ENOTFOUND when there is none.
func (s *Store) Signup(ctx context.Context, id string) (voluntree.Signup, error) {
	return getJSON[voluntree.Signup](ctx, s.rdb, s.keys.Signup(id), "signup", id)
}

// Signups lists an organization's signups, oldest first.
func (s *Store) Signups(ctx context.Context, orgID string, offset, limit int) (Page[voluntree.Signup], error) {
	load := jsonRecords[voluntree.Signup](s.keys.Signup, "signup")
	return listIndex(ctx, s, s.keys.OrgSignups(orgID), offset, limit, func(ctx context.Context, ids []string) ([]voluntree.Signup, error) {
		sus, err := load(ctx, s, ids)
		return owned(sus, orgID, func(su voluntree.Signup) string { return su.OrgID }), err
	})
}

// UpdateSignup changes a signup with fn under an optimistic transaction. fn sees the stored
// signup and may refuse with an error.
func (s *Store) UpdateSignup(ctx context.Context, id string, fn func(*voluntree.Signup) error) (voluntree.Signup, error) {
	return s.UpdateSignupWithEffects(ctx, id, fn, nil)
}

// UpdateSignupWithEffects is UpdateSignup that also appends, in the same transaction, the
// effect batches effects returns for the change (telling booked volunteers their slot moved).
//
// The batches go to the signup's own outbox, in its slot (Redis Cluster), and are relayed to
// the effects outbox right after (RelaySignupOutbox): a change is stored with its batches or
// not at all, and its batches reach the effects workers at least once (each effect is
// performed once: the workers mark what they did). The signup is listed among the outboxes to
// relay before the transaction, so that a node dying between the two leaves it to
// RelaySignupOutboxes.
func (s *Store) UpdateSignupWithEffects(ctx context.Context, id string, fn func(*voluntree.Signup) error,
	effects func(old, updated *voluntree.Signup) ([][]byte, error)) (voluntree.Signup, error) {
	var out voluntree.Signup
	var added []*redis.StringCmd // the outbox entries of the committed change
	key, outbox := s.keys.Signup(id), s.keys.SignupOutbox(id)
	err := s.watch(ctx, func(tx *redis.Tx) error {
		su, err := getJSON[voluntree.Signup](ctx, tx, key, "signup", id)
		if err != nil {
			return err
		}
		old := su
		old.Slots = append([]voluntree.Slot(nil), su.Slots...)
		if err := fn(&su); err != nil {
			return err
		}
		var batches [][]byte
		if effects != nil {
			if batches, err = effects(&old, &su); err != nil {
				return err
			}
		}
		if len(batches) > 0 {
			if err := s.rdb.SAdd(ctx, s.keys.SignupOutboxes(), id).Err(); err != nil {
				return fmt.Errorf("redisstore: signup outboxes: %w", err)
			}
		}
		cmds := make([]*redis.StringCmd, len(batches))
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, mustJSON(su), 0)
			for i, b := range batches {
				cmds[i] = p.XAdd(ctx, &redis.XAddArgs{Stream: outbox, Values: []any{"b", b, "c", "signup:" + id}})
			}
			return nil
		})
		out, added = su, cmds
		return err
	}, key)
	if err != nil || len(added) == 0 {
		return out, err
	}
	// The change is stored. Listed again (a sweep may have found the outbox empty and taken it
	// off the list just before the transaction), then its own batches relayed; a failure is
	// left to RelaySignupOutboxes (which logs what it moves), not reported as a failed change.
	if err := s.rdb.SAdd(ctx, s.keys.SignupOutboxes(), id).Err(); err != nil {
		return out, nil
	}
	ids := make([]string, 0, len(added))
	for _, c := range added {
		ids = append(ids, c.Val())
	}
	if err := s.relaySignupEntries(ctx, id, ids); err == nil {
		_ = s.unlistIfEmpty(ctx, id)
	}
	return out, nil
}

// relaySignupEntries moves the entries one transaction appended to a signup's outbox (ids, in
// order: contiguous, since a MULTI runs alone) to the effects outbox, then deletes them from
// the signup's outbox.
func (s *Store) relaySignupEntries(ctx context.Context, signupID string, ids []string) error {
	msgs, err := s.rdb.XRange(ctx, s.keys.SignupOutbox(signupID), ids[0], ids[len(ids)-1]).Result()
	if err != nil {
		return fmt.Errorf("redisstore: relay signup outbox %s: %w", signupID, err)
	}
	return s.relayMessages(ctx, signupID, msgs)
}

func (s *Store) relayMessages(ctx context.Context, signupID string, msgs []redis.XMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	ids := make([]string, len(msgs))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range msgs {
			p.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.Effects(), Values: []any{"b", m.Values["b"], "c", m.Values["c"]}})
			ids[i] = m.ID
		}
		return nil
	}); err != nil {
		return fmt.Errorf("redisstore: relay signup outbox %s: %w", signupID, err)
	}
	if err := s.rdb.XDel(ctx, s.keys.SignupOutbox(signupID), ids...).Err(); err != nil {
		return fmt.Errorf("redisstore: relay signup outbox %s: %w", signupID, err)
	}
	return nil
}

// SignupOutboxGrace is how old an entry of a signup's outbox must be before a sweep relays it:
// until then it is its change's own to relay, and two relays of one entry would hand a
// volunteer's message to two workers at once.
const SignupOutboxGrace = 30 * time.Second

// RelaySignupOutbox moves the batches of a signup's outbox older than olderThan to the
// effects outbox (partition 0), oldest first, and returns how many it moved. Each batch is
// appended there before it leaves the signup's outbox: a relay cut in between appends it
// again, and the effects workers perform each effect once. The signup leaves the set of
// outboxes to relay when its outbox is found empty after that.
func (s *Store) RelaySignupOutbox(ctx context.Context, signupID string, olderThan time.Duration) (int, error) {
	outbox := s.keys.SignupOutbox(signupID)
	end := "+"
	if olderThan > 0 {
		end = strconv.FormatInt(time.Now().Add(-olderThan).UnixMilli(), 10)
	}
	moved := 0
	for {
		msgs, err := s.rdb.XRangeN(ctx, outbox, "-", end, 100).Result()
		if err != nil {
			return moved, fmt.Errorf("redisstore: relay signup outbox %s: %w", signupID, err)
		}
		if len(msgs) == 0 {
			break
		}
		if err := s.relayMessages(ctx, signupID, msgs); err != nil {
			return moved, err
		}
		moved += len(msgs)
	}
	return moved, s.unlistIfEmpty(ctx, signupID)
}

// unlistIfEmpty takes a signup off the outboxes to relay, then looks at its outbox again and
// lists it back if it holds a batch: a change stored meanwhile lists it itself after its
// transaction, so a listed outbox is never left unlisted.
func (s *Store) unlistIfEmpty(ctx context.Context, signupID string) error {
	if err := s.rdb.SRem(ctx, s.keys.SignupOutboxes(), signupID).Err(); err != nil {
		return fmt.Errorf("redisstore: signup outboxes: %w", err)
	}
	if n, err := s.rdb.XLen(ctx, s.keys.SignupOutbox(signupID)).Result(); err != nil || n > 0 {
		if err := s.rdb.SAdd(ctx, s.keys.SignupOutboxes(), signupID).Err(); err != nil {
			return fmt.Errorf("redisstore: signup outboxes: %w", err)
		}
	}
	return nil
}

// RelaySignupOutboxes relays the batches older than SignupOutboxGrace of every listed signup
// outbox (what a node dying between a signup change and its relay left) and returns how many
// it moved. Every node runs it now and then (serve); it is cheap when the set is empty.
func (s *Store) RelaySignupOutboxes(ctx context.Context) (int, error) {
	ids, err := s.rdb.SMembers(ctx, s.keys.SignupOutboxes()).Result()
	if err != nil {
		return 0, fmt.Errorf("redisstore: signup outboxes: %w", err)
	}
	moved := 0
	for _, id := range ids {
		n, err := s.RelaySignupOutbox(ctx, id, SignupOutboxGrace)
		moved += n
		if err != nil {
			return moved, err
		}
	}
	return moved, nil
}

// DeleteSignup removes a signup that has no post beyond draft; ECONFLICT otherwise (its posts
// are on Facebook and its interests refer to it). check sees the signup first (ownership).
//
// The signup and its posts' index (one slot) go in one optimistic transaction, which a post
// created meanwhile aborts (CreatePost indexes a post before storing it; the posts are read
// again on the retry); a draft published in the moment between the read and the transaction
// is not seen (as before the layout change: the posts were never watched). Its draft posts
// and the organization's index entries, in other slots on Redis Cluster, go after: a crash in
// between leaves the drafts listed without their signup.
func (s *Store) DeleteSignup(ctx context.Context, id string, check func(*voluntree.Signup) error) error {
	key, postsKey := s.keys.Signup(id), s.keys.SignupPosts(id)
	var su voluntree.Signup
	var postIDs []string
	err := s.watch(ctx, func(tx *redis.Tx) error {
		var err error
		su, err = getJSON[voluntree.Signup](ctx, tx, key, "signup", id)
		if err != nil {
			return err
		}
		if err := check(&su); err != nil {
			return err
		}
		postIDs, err = tx.ZRange(ctx, postsKey, 0, -1).Result()
		if err != nil {
			return fmt.Errorf("redisstore: signup posts: %w", err)
		}
		posts := make([]*redis.StringCmd, len(postIDs))
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, pid := range postIDs {
				posts[i] = p.Get(ctx, s.keys.Post(pid))
			}
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("redisstore: signup posts: %w", err)
		}
		for i, pid := range postIDs {
			var p voluntree.Post
			if b, err := posts[i].Bytes(); err == nil && json.Unmarshal(b, &p) == nil && p.Status != voluntree.PostDraft {
				return voluntree.Errorf(voluntree.ECONFLICT, "signup %s has a %s post (%s): disable it instead", id, p.Status, pid)
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, key, postsKey)
			return nil
		})
		return err
	}, key, postsKey)
	if err != nil {
		return err
	}
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, pid := range postIDs {
			p.Del(ctx, s.keys.Post(pid))
		}
		return nil
	}); err != nil {
		return fmt.Errorf("redisstore: delete signup %s: its posts: %w", id, err)
	}
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, s.keys.OrgSignups(su.OrgID), id)
		for _, pid := range postIDs {
			p.ZRem(ctx, s.keys.OrgPosts(su.OrgID), pid)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("redisstore: delete signup %s: indexes: %w", id, err)
	}
	return nil
}

// ---- Posts ----

// CreatePost stores a new post; a scheduled one joins the publish queue at its PublishAt. The
// keys are in several slots (Redis Cluster): the indexes first, then the record, then the
// queue, so a stored post is always listed and a queued one always stored (a list skips an
// index entry with no record).
func (s *Store) CreatePost(ctx context.Context, p voluntree.Post) error {
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.ZAdd(ctx, s.keys.OrgPosts(p.OrgID), redis.Z{Score: ms(p.CreatedAt), Member: p.ID})
		pipe.ZAdd(ctx, s.keys.SignupPosts(p.SignupID), redis.Z{Score: ms(p.CreatedAt), Member: p.ID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: create post: index: %w", err)
	}
	if err := s.rdb.Set(ctx, s.keys.Post(p.ID), mustJSON(p), 0).Err(); err != nil {
		return fmt.Errorf("redisstore: create post: %w", err)
	}
	if p.Status == voluntree.PostScheduled && p.PublishAt != nil {
		if err := s.rdb.ZAdd(ctx, s.keys.PublishQueue(), redis.Z{Score: ms(*p.PublishAt), Member: p.ID}).Err(); err != nil {
			return fmt.Errorf("redisstore: create post: queue: %w", err)
		}
	}
	return nil
}

// Post returns a post; ENOTFOUND when there is none.
func (s *Store) Post(ctx context.Context, id string) (voluntree.Post, error) {
	return getJSON[voluntree.Post](ctx, s.rdb, s.keys.Post(id), "post", id)
}

// Posts lists an organization's posts, oldest first.
func (s *Store) Posts(ctx context.Context, orgID string, offset, limit int) (Page[voluntree.Post], error) {
	load := jsonRecords[voluntree.Post](s.keys.Post, "post")
	return listIndex(ctx, s, s.keys.OrgPosts(orgID), offset, limit, func(ctx context.Context, ids []string) ([]voluntree.Post, error) {
		posts, err := load(ctx, s, ids)
		return owned(posts, orgID, func(p voluntree.Post) string { return p.OrgID }), err
	})
}

// SignupPostIDs returns the ids of a signup's posts.
func (s *Store) SignupPostIDs(ctx context.Context, signupID string) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, s.keys.SignupPosts(signupID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: signup posts: %w", err)
	}
	return ids, nil
}

// UpdatePost changes a post with fn under an optimistic transaction on the post, and applies
// the queue operation fn returns. A published post also gets indexed by its Facebook id and
// joins the polled posts.
//
// The queue and the indexes are in other slots (Redis Cluster), so they are written around
// the post's transaction in the order that never loses a post: what adds (queueing, the
// Facebook id, the polled posts) before the post is stored, what removes (leaving the queue)
// after. A crash or a retried transaction can only leave a post queued that is not scheduled
// any more, which the publisher drops when it claims it, or indexed a moment before its record
// says published. A post queued is queued again once stored: the publisher may have claimed
// the early entry, read the record not scheduled yet, and dropped it.
func (s *Store) UpdatePost(ctx context.Context, id string, fn func(*voluntree.Post) (QueueOp, error)) (voluntree.Post, error) {
	var out voluntree.Post
	var remove bool
	var add *QueueOp
	key := s.keys.Post(id)
	err := s.watch(ctx, func(tx *redis.Tx) error {
		p, err := getJSON[voluntree.Post](ctx, tx, key, "post", id)
		if err != nil {
			return err
		}
		before := p.Status
		op, err := fn(&p)
		if err != nil {
			return err
		}
		p.UpdatedAt = time.Now().UTC()
		if _, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			if op.Add {
				pipe.ZAdd(ctx, s.keys.PublishQueue(), redis.Z{Score: ms(op.At), Member: id})
			}
			if p.Status == voluntree.PostPublished && before != voluntree.PostPublished && p.FacebookPostID != "" {
				pipe.HSet(ctx, s.keys.PostsByFacebookID(), p.FacebookPostID, id)
				at := p.UpdatedAt
				if p.PublishedAt != nil {
					at = *p.PublishedAt
				}
				pipe.ZAdd(ctx, s.keys.PublishedPosts(), redis.Z{Score: ms(at), Member: id})
			}
			return nil
		}); err != nil {
			return fmt.Errorf("redisstore: update post %s: queue and indexes: %w", id, err)
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, key, mustJSON(p), 0)
			return nil
		})
		out, remove, add = p, op.Remove && !op.Add, nil
		if op.Add {
			add = &op
		}
		return err
	}, key)
	switch {
	case err != nil:
		return out, err
	case add != nil:
		if err := s.rdb.ZAdd(ctx, s.keys.PublishQueue(), redis.Z{Score: ms(add.At), Member: id}).Err(); err != nil {
			return out, fmt.Errorf("redisstore: update post %s: queue: %w", id, err)
		}
	case remove:
		if err := s.rdb.ZRem(ctx, s.keys.PublishQueue(), id).Err(); err != nil {
			return out, fmt.Errorf("redisstore: update post %s: leave the queue: %w", id, err)
		}
	}
	return out, nil
}

// claimDueScript moves up to ARGV[3] posts due by ARGV[1] (unix ms) to ARGV[2] (the end of
// their lease) and returns them: a claimed post comes due again if its publisher dies.
var claimDueScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
end
return due
`)

// ClaimDuePosts leases the posts due by now for lease and returns their ids.
func (s *Store) ClaimDuePosts(ctx context.Context, now time.Time, lease time.Duration, max int) ([]string, error) {
	res, err := claimDueScript.Run(ctx, s.rdb, []string{s.keys.PublishQueue()},
		now.UnixMilli(), now.Add(lease).UnixMilli(), max).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: claim due posts: %w", err)
	}
	return res, nil
}

// Dequeue removes a post from the publish queue.
func (s *Store) Dequeue(ctx context.Context, postID string) error {
	if err := s.rdb.ZRem(ctx, s.keys.PublishQueue(), postID).Err(); err != nil {
		return fmt.Errorf("redisstore: dequeue post: %w", err)
	}
	return nil
}

// Requeue moves a queued post's due time to at (a post no longer queued stays out).
func (s *Store) Requeue(ctx context.Context, postID string, at time.Time) error {
	err := s.rdb.ZAddXX(ctx, s.keys.PublishQueue(), redis.Z{Score: ms(at), Member: postID}).Err()
	if err != nil {
		return fmt.Errorf("redisstore: requeue post: %w", err)
	}
	return nil
}

// QueueLength returns how many posts wait in the publish queue.
func (s *Store) QueueLength(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.keys.PublishQueue()).Result()
	if err != nil {
		return 0, fmt.Errorf("redisstore: publish queue length: %w", err)
	}
	return n, nil
}

// NextDue returns when the earliest queued post is due (ok false when the queue is empty).
func (s *Store) NextDue(ctx context.Context) (time.Time, bool, error) {
	res, err := s.rdb.ZRangeWithScores(ctx, s.keys.PublishQueue(), 0, 0).Result()
	if err != nil {
		return time.Time{}, false, fmt.Errorf("redisstore: next due post: %w", err)
	}
	if len(res) == 0 {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(int64(res[0].Score)), true, nil
}

// QueuedAt returns when a post is due in the publish queue (ok false when it is not queued).
func (s *Store) QueuedAt(ctx context.Context, postID string) (time.Time, bool, error) {
	sc, err := s.rdb.ZScore(ctx, s.keys.PublishQueue(), postID).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("redisstore: queued post: %w", err)
	}
	return time.UnixMilli(int64(sc)), true, nil
}

// PostIDByFacebookID returns the admin post published as a Facebook post ("" when none).
func (s *Store) PostIDByFacebookID(ctx context.Context, fbPostID string) (string, error) {
	id, err := s.rdb.HGet(ctx, s.keys.PostsByFacebookID(), fbPostID).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("redisstore: post by facebook id: %w", err)
	}
	return id, nil
}

// PublishedSince returns the ids of posts published at or after since, oldest first.
func (s *Store) PublishedSince(ctx context.Context, since time.Time) ([]string, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.keys.PublishedPosts(), &redis.ZRangeBy{
		Min: strconv.FormatInt(since.UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: published posts: %w", err)
	}
	return ids, nil
}

// PollCursor returns where the comment poller stopped reading a post ("" at the start).
func (s *Store) PollCursor(ctx context.Context, postID string) (string, error) {
	c, err := s.rdb.HGet(ctx, s.keys.PollCursor(), postID).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("redisstore: poll cursor: %w", err)
	}
	return c, nil
}

// SetPollCursor remembers where the comment poller stopped reading a post.
func (s *Store) SetPollCursor(ctx context.Context, postID, cursor string) error {
	if err := s.rdb.HSet(ctx, s.keys.PollCursor(), postID, cursor).Err(); err != nil {
		return fmt.Errorf("redisstore: set poll cursor: %w", err)
	}
	return nil
}

// LockPoll takes a post's poll lock for ttl; false when another node holds it.
func (s *Store) LockPoll(ctx context.Context, postID, owner string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.keys.PollLock(postID), owner, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redisstore: poll lock: %w", err)
	}
	return ok, nil
}

// unlockScript deletes a lock only when its owner asks.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// UnlockPoll releases a post's poll lock held by owner; false when owner did not hold it.
func (s *Store) UnlockPoll(ctx context.Context, postID, owner string) (bool, error) {
	n, err := unlockScript.Run(ctx, s.rdb, []string{s.keys.PollLock(postID)}, owner).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: poll unlock: %w", err)
	}
	return n == 1, nil
}
