package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
)

// The key layout's version. Every command that opens the store checks it (CheckLayout): a
// Redis holding keys of an older layout must be migrated (`voluntree migrate`, Migrate) before
// a node writes to it, so that no key is ever written under both its old and its new name.
//
//	1: before the layout was versioned (no Keys.Layout key).
//	2: a post's recorded messages and the organization's interest and volunteer indexes in the
//	   organization's slot ({org:O}), so the record script touches one Redis Cluster slot; a
//	   conversation's state, version and stage count in its partition's slot, with the
//	   effects outbox ({effects:N}); the web chat's dedupe marks in the conversation's slot.
//	3: an organization's record with its pending email verification ({org:O}); a signup's
//	   record with its posts' index and its outbox ({signup:S}).
const Layout = 3

// ErrOldLayout: the Redis holds keys of an older layout; `voluntree migrate` moves them.
var ErrOldLayout = errors.New("this Redis holds keys of an older Voluntree version: run `voluntree migrate` (with the same Redis settings) before starting this version")

// CheckLayout makes sure the store's keys are of this version's layout. A Redis with no
// Voluntree keys is stamped with Layout; one with keys of an older layout and no stamp is
// ErrOldLayout; one stamped by a newer version is refused too.
func (s *Store) CheckLayout(ctx context.Context) error {
	v, err := s.layout(ctx)
	switch {
	case err != nil:
		return err
	case v == Layout:
		return nil
	case v > Layout:
		return fmt.Errorf("redisstore: this Redis's keys are of layout %d, written by a newer Voluntree version (this one knows %d)", v, Layout)
	case v > 0:
		return fmt.Errorf("redisstore: key layout %d: %w", v, ErrOldLayout)
	}
	old, err := s.hasUnversionedData(ctx)
	if err != nil {
		return err
	}
	if old {
		return fmt.Errorf("redisstore: keys without a layout version: %w", ErrOldLayout)
	}
	if err := s.rdb.SetNX(ctx, s.keys.Layout(), Layout, 0).Err(); err != nil {
		return fmt.Errorf("redisstore: stamp the key layout: %w", err)
	}
	return s.CheckLayout(ctx) // another process may have stamped it first
}

// layout reads the layout stamp (0: none).
func (s *Store) layout(ctx context.Context) (int, error) {
	v, err := s.rdb.Get(ctx, s.keys.Layout()).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redisstore: read the key layout: %w", err)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("redisstore: key layout stamp %q is not a version", v)
	}
	return n, nil
}

// hasUnversionedData reports keys every Voluntree of layout 1 wrote as soon as it was used:
// the organizations' index, the ingest stream, the conversation stage counts.
func (s *Store) hasUnversionedData(ctx context.Context) (bool, error) {
	pipe := s.rdb.Pipeline()
	cmds := []*redis.IntCmd{pipe.Exists(ctx, s.keys.Orgs()), pipe.Exists(ctx, s.keys.Ingest()),
		pipe.Exists(ctx, s.keys.prefix+":conversations:stages")}
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("redisstore: look for old keys: %w", err)
	}
	for _, c := range cmds {
		if c.Val() > 0 {
			return true, nil
		}
	}
	return false, nil
}

// MigrateReport is what Migrate did.
type MigrateReport struct {
	From, To int // the layout found (1: none stamped) and the one left
	Moved    int // keys moved to their new names
	Resumed  int // keys an interrupted run had copied: the old copy was removed
}

// Migrate moves the keys of an older layout to this version's names and stamps the layout.
// Run it with no node writing (the nodes refuse to start until it is done). It is idempotent
// and resumable: each key is copied (DUMP, RESTORE with its expiry) and only then deleted, so
// an interrupted run leaves keys that the next run moves or, when both copies exist and are
// equal, finishes; a key whose old and new copies differ stops it with an error naming both.
// It works on standalone, Sentinel and Cluster (it scans every master). progress, when not
// nil, is told about every thousand keys.
func (s *Store) Migrate(ctx context.Context, progress func(moved int)) (MigrateReport, error) {
	v, err := s.layout(ctx)
	if err != nil {
		return MigrateReport{}, err
	}
	rep := MigrateReport{From: max(v, 1), To: max(v, 1)}
	if v > Layout {
		return rep, fmt.Errorf("redisstore: this Redis's keys are of layout %d, newer than this version's %d", v, Layout)
	}
	if v == Layout {
		return rep, nil
	}
	if v < 2 {
		if err := s.migrateRecordKeys(ctx, &rep, progress); err != nil {
			return rep, err
		}
		if err := s.migrateConversationKeys(ctx, &rep, progress); err != nil {
			return rep, err
		}
	}
	if v < 3 {
		if err := s.migrateAdminKeys(ctx, &rep, progress); err != nil {
			return rep, err
		}
	}
	if err := s.rdb.Set(ctx, s.keys.Layout(), Layout, 0).Err(); err != nil {
		return rep, fmt.Errorf("redisstore: stamp the key layout: %w", err)
	}
	rep.To = Layout
	return rep, nil
}

// migrateRecordKeys is layout 1 → 2: {post:P}:… → {org:O}:post:P:… (O: the organization of
// P's page, "" for none), org:O:interests and org:O:volunteers → {org:O}:….
func (s *Store) migrateRecordKeys(ctx context.Context, rep *MigrateReport, progress func(int)) error {
	pre := s.keys.prefix + ":"
	orgOf := map[string]string{} // page → organization
	pageOrg := func(page string) (string, error) {
		if org, ok := orgOf[page]; ok {
			return org, nil
		}
		pg, err := s.Page(ctx, page)
		switch {
		case voluntree.ErrorCode(err) == voluntree.ENOTFOUND:
		case err != nil:
			return "", err
		}
		orgOf[page] = pg.OrgID
		return pg.OrgID, nil
	}
	postKey := func(old string) (string, error) {
		rest := strings.TrimPrefix(old, pre+"{post:")
		post, field, ok := strings.Cut(rest, "}:")
		if !ok {
			return "", nil // not a key of ours
		}
		page, isInbox := strings.CutPrefix(post, PageInbox(""))
		if !isInbox {
			page, _, _ = strings.Cut(post, "_")
		}
		org, err := pageOrg(page)
		if err != nil {
			return "", err
		}
		return s.keys.post(org, post) + ":" + field, nil
	}
	orgIndex := func(old string) (string, error) {
		rest := strings.TrimPrefix(old, pre+"org:")
		if org, ok := strings.CutSuffix(rest, ":interests"); ok && org != "" {
			return s.keys.OrgInterests(org), nil
		}
		if org, ok := strings.CutSuffix(rest, ":volunteers"); ok && org != "" {
			return s.keys.OrgVolunteers(org), nil
		}
		return "", nil
	}
	if err := s.moveMatching(ctx, globEscape(pre)+"{post:*", postKey, rep, progress); err != nil {
		return err
	}
	if err := s.moveMatching(ctx, globEscape(pre)+"org:*:interests", orgIndex, rep, progress); err != nil {
		return err
	}
	return s.moveMatching(ctx, globEscape(pre)+"org:*:volunteers", orgIndex, rep, progress)
}

// migrateConversationKeys is the rest of layout 1 → 2: {conv:C} and {conv:C}:v →
// {effects:N}:conv:C[:v]; conversations:stages → partition 0's stages (the counts are the sum
// over the partitions); chat:dedupe:<effect id> → {conv:C}:chat:dedupe:<effect id> (a
// conversation's effect ids are "<C>:<n>").
func (s *Store) migrateConversationKeys(ctx context.Context, rep *MigrateReport, progress func(int)) error {
	pre := s.keys.prefix + ":"
	conv := func(old string) (string, error) {
		rest := strings.TrimPrefix(old, pre+"{conv:")
		switch {
		case strings.HasSuffix(rest, "}"):
			return s.keys.Conversation(strings.TrimSuffix(rest, "}")), nil
		case strings.HasSuffix(rest, "}:v"):
			return s.keys.ConversationVersion(strings.TrimSuffix(rest, "}:v")), nil
		}
		return "", nil // delivery, alias, chat history: their names are unchanged
	}
	if err := s.moveMatching(ctx, globEscape(pre)+"{conv:*", conv, rep, progress); err != nil {
		return err
	}
	dedupe := func(old string) (string, error) {
		id := strings.TrimPrefix(old, pre+"chat:dedupe:")
		i := strings.LastIndexByte(id, ':')
		if i <= 0 {
			return "", nil
		}
		return s.keys.ChatDedupe(id[:i], id), nil
	}
	if err := s.moveMatching(ctx, globEscape(pre)+"chat:dedupe:*", dedupe, rep, progress); err != nil {
		return err
	}
	stages := func(string) (string, error) { return s.keys.ConversationStages(0), nil }
	return s.moveMatching(ctx, globEscape(pre)+"conversations:stages", stages, rep, progress)
}

// migrateAdminKeys is layout 2 → 3: org:O and org:O:emailcode → {org:O} and
// {org:O}:emailcode, for every organization of the index (an organization id may hold a
// colon, so the names are not parsed); signup:S and signup:S:posts → {signup:S} and
// {signup:S}:posts (signup ids hold none).
func (s *Store) migrateAdminKeys(ctx context.Context, rep *MigrateReport, progress func(int)) error {
	pre := s.keys.prefix + ":"
	orgs, err := s.rdb.ZRange(ctx, s.keys.Orgs(), 0, -1).Result()
	if err != nil {
		return fmt.Errorf("redisstore: migrate: organizations: %w", err)
	}
	for _, org := range orgs {
		if err := s.moveKey(ctx, pre+"org:"+org, s.keys.Org(org), rep); err != nil {
			return err
		}
		if err := s.moveKey(ctx, pre+"org:"+org+":emailcode", s.keys.EmailCode(org), rep); err != nil {
			return err
		}
		if progress != nil && (rep.Moved+rep.Resumed)%1000 == 0 {
			progress(rep.Moved + rep.Resumed)
		}
	}
	signup := func(old string) (string, error) {
		rest := strings.TrimPrefix(old, pre+"signup:")
		if id, ok := strings.CutSuffix(rest, ":posts"); ok && !strings.Contains(id, ":") {
			return s.keys.SignupPosts(id), nil
		}
		if rest != "" && !strings.Contains(rest, ":") {
			return s.keys.Signup(rest), nil
		}
		return "", nil
	}
	return s.moveMatching(ctx, globEscape(pre)+"signup:*", signup, rep, progress)
}

// moveMatching moves every key matching pattern (on every master) to the name newName gives
// ("": leave it).
func (s *Store) moveMatching(ctx context.Context, pattern string, newName func(string) (string, error),
	rep *MigrateReport, progress func(int)) error {
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			old := iter.Val()
			to, err := newName(old)
			if err != nil {
				return err
			}
			if to == "" || to == old {
				continue
			}
			if err := s.moveKey(ctx, old, to, rep); err != nil {
				return err
			}
			if progress != nil && (rep.Moved+rep.Resumed)%1000 == 0 {
				progress(rep.Moved + rep.Resumed)
			}
		}
		return iter.Err()
	}
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, scan)
	case *redis.Client:
		return scan(ctx, c)
	default:
		return fmt.Errorf("redisstore: migrate: unsupported client %T", s.rdb)
	}
}

// moveKey copies old to to with its expiry, then deletes old.
func (s *Store) moveKey(ctx context.Context, old, to string, rep *MigrateReport) error {
	dump, err := s.rdb.Dump(ctx, old).Result()
	if errors.Is(err, redis.Nil) {
		return nil // expired or moved meanwhile
	}
	if err != nil {
		return fmt.Errorf("redisstore: migrate %s: %w", old, err)
	}
	ttl, err := s.rdb.PTTL(ctx, old).Result()
	if err != nil {
		return fmt.Errorf("redisstore: migrate %s: %w", old, err)
	}
	if ttl < 0 {
		ttl = 0 // no expiry
	}
	err = s.rdb.Restore(ctx, to, ttl, dump).Err()
	switch {
	case err == nil:
		rep.Moved++
	case strings.HasPrefix(err.Error(), "BUSYKEY"):
		// An interrupted run copied it already: finish, if the copies are the same.
		have, derr := s.rdb.Dump(ctx, to).Result()
		if derr != nil {
			return fmt.Errorf("redisstore: migrate %s: %w", old, derr)
		}
		if have != dump {
			return fmt.Errorf("redisstore: migrate: both %s and %s exist and differ (was a node of this version started before the migration?): merge or delete one, then run it again", old, to)
		}
		rep.Resumed++
	default:
		return fmt.Errorf("redisstore: migrate %s → %s: %w", old, to, err)
	}
	if err := s.rdb.Del(ctx, old).Err(); err != nil {
		return fmt.Errorf("redisstore: migrate %s: delete: %w", old, err)
	}
	return nil
}
