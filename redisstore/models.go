package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
)

// The model registry: versions of the intent model pushed into Redis in chunks, one of them
// promoted; every node serves the promoted one and switches when another is promoted (the
// Pub/Sub channel, and a version check at start and on reconnect).

// ModelChunkSize is the largest piece of a model file in one Redis value.
const ModelChunkSize = 1 << 20

// MaxModelSize bounds a pushed model file.
// One push is one transaction, replicated whole: 64 MiB keeps it within the write timeout and
// far below a replica's output buffer limit.
const MaxModelSize = 64 << 20

// ErrModelChecksum: a version's stored file does not match its SHA-256 (damaged).
var ErrModelChecksum = errors.New("redisstore: model file damaged")

var modelTagRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidModelTag reports whether tag can name a version: letters, digits, ._- (at most 64).
func ValidModelTag(tag string) error {
	if !modelTagRE.MatchString(tag) {
		return voluntree.Errorf(voluntree.EINVALID, "model tag %.70q: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", tag)
	}
	return nil
}

// PushModel stores data as version v.Tag (its SHA256, Size and Created are set here). An
// unpromoted version expires after ttl (0: never). A tag is pushed once: pushing it again
// is a conflict.
func (s *Store) PushModel(ctx context.Context, v ModelVersion, data []byte, ttl time.Duration) (ModelVersion, error) {
	if err := ValidModelTag(v.Tag); err != nil {
		return v, err
	}
	if len(data) == 0 || len(data) > MaxModelSize {
		return v, voluntree.Errorf(voluntree.EINVALID, "a model file must hold 1 byte to %d MiB, got %d bytes", MaxModelSize>>20, len(data))
	}
	sum := sha256.Sum256(data)
	v.SHA256, v.Size, v.Created = hex.EncodeToString(sum[:]), int64(len(data)), time.Now().UTC().Truncate(time.Millisecond)
	chunks := (len(data) + ModelChunkSize - 1) / ModelChunkSize
	key := s.keys.ModelVersion(v.Tag)
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, key).Result()
		if err != nil {
			return err
		}
		if n > 0 {
			return voluntree.Errorf(voluntree.ECONFLICT, "model %s is already pushed: push under a new tag", v.Tag)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for i := range chunks {
				ck := s.keys.ModelChunk(v.Tag, i)
				p.Set(ctx, ck, data[i*ModelChunkSize:min((i+1)*ModelChunkSize, len(data))], ttl)
			}
			p.HSet(ctx, key, "tag", v.Tag, "sha256", v.SHA256, "size", v.Size, "kind", v.Kind, "note", v.Note,
				"created", v.Created.UnixMilli(), "chunks", chunks, "scores", string(v.Scores))
			if ttl > 0 {
				p.PExpire(ctx, key, ttl)
			}
			p.ZAdd(ctx, s.keys.ModelTags(), redis.Z{Score: float64(v.Created.UnixMilli()), Member: v.Tag})
			return nil
		})
		return err
	}, key)
	if errors.Is(err, redis.TxFailedErr) {
		return v, voluntree.Errorf(voluntree.ECONFLICT, "model %s was pushed at the same time by someone else", v.Tag)
	}
	if err != nil {
		return v, fmt.Errorf("redisstore: push model %s: %w", v.Tag, err)
	}
	if ttl > 0 {
		v.Expires = v.Created.Add(ttl)
	}
	return v, nil
}

// modelVersion reads a version's description (ENOTFOUND when it is not there, or expired).
func (s *Store) modelVersion(ctx context.Context, c redis.Cmdable, tag string) (ModelVersion, int, error) {
	h, err := c.HGetAll(ctx, s.keys.ModelVersion(tag)).Result()
	if err != nil {
		return ModelVersion{}, 0, fmt.Errorf("redisstore: model %s: %w", tag, err)
	}
	if len(h) == 0 {
		return ModelVersion{}, 0, voluntree.Errorf(voluntree.ENOTFOUND, "no model %s (never pushed, removed, or expired unpromoted)", tag)
	}
	size, _ := strconv.ParseInt(h["size"], 10, 64)
	ms, _ := strconv.ParseInt(h["created"], 10, 64)
	chunks, _ := strconv.Atoi(h["chunks"])
	v := ModelVersion{Tag: h["tag"], SHA256: h["sha256"], Size: size, Kind: h["kind"], Note: h["note"],
		Created: time.UnixMilli(ms).UTC()}
	if h["scores"] != "" {
		v.Scores = json.RawMessage(h["scores"])
	}
	return v, chunks, nil
}

// ModelFile returns a version and its file, checked against its SHA-256.
func (s *Store) ModelFile(ctx context.Context, tag string) (ModelVersion, []byte, error) {
	v, chunks, err := s.modelVersion(ctx, s.rdb, tag)
	if err != nil {
		return v, nil, err
	}
	data := make([]byte, 0, v.Size)
	for i := range chunks { // a chunk a command: each reply stays at 1 MiB
		b, err := s.rdb.Get(ctx, s.keys.ModelChunk(tag, i)).Bytes()
		if errors.Is(err, redis.Nil) {
			return v, nil, voluntree.Errorf(voluntree.ENOTFOUND, "model %s: a piece of its file is gone (expired)", tag)
		}
		if err != nil {
			return v, nil, fmt.Errorf("redisstore: model %s: %w", tag, err)
		}
		data = append(data, b...)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != v.SHA256 || int64(len(data)) != v.Size {
		return v, nil, fmt.Errorf("%w: model %s: the stored file's checksum %s does not match %s", ErrModelChecksum, tag, got, v.SHA256)
	}
	return v, data, nil
}

// PromotedModel returns the tag and checksum of the promoted version ("" when none is).
func (s *Store) PromotedModel(ctx context.Context) (tag, sha string, err error) {
	h, err := s.rdb.HMGet(ctx, s.keys.ModelPromoted(), "tag", "sha256").Result()
	if err != nil {
		return "", "", fmt.Errorf("redisstore: promoted model: %w", err)
	}
	tag, _ = h[0].(string)
	sha, _ = h[1].(string)
	return tag, sha, nil
}

// PromoteModel makes tag the version every node serves: it stops expiring, the previous one
// goes on the rollback history, and the nodes are told. It returns the previous tag. With
// sha set, the version must still be that file (the one a caller checked): a conflict if it
// was removed and pushed again since.
func (s *Store) PromoteModel(ctx context.Context, tag, sha string) (string, error) {
	return s.promote(ctx, tag, sha, false)
}

// RollbackModel promotes again the version promoted before the current one, and returns it.
func (s *Store) RollbackModel(ctx context.Context) (string, error) {
	return s.promote(ctx, "", "", true)
}

func (s *Store) promote(ctx context.Context, tag, sha string, rollback bool) (string, error) {
	var prev string
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		cur, err := tx.HGet(ctx, s.keys.ModelPromoted(), "tag").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		prev = cur
		popped := 0
		if rollback {
			hist, err := tx.LRange(ctx, s.keys.ModelHistory(), 0, -1).Result()
			if err != nil {
				return err
			}
			tag = ""
			for i, h := range hist {
				if n, _ := tx.Exists(ctx, s.keys.ModelVersion(h)).Result(); n > 0 {
					tag, popped = h, i+1
					break
				}
			}
			if tag == "" {
				return voluntree.Errorf(voluntree.ENOTFOUND, "nothing to roll back to: no version was promoted before %q", cur)
			}
		}
		// The version too: a removal or expiry before EXEC fails the transaction.
		if err := tx.Watch(ctx, s.keys.ModelVersion(tag)).Err(); err != nil {
			return err
		}
		v, chunks, err := s.modelVersion(ctx, tx, tag)
		if err != nil {
			return err
		}
		if sha != "" && v.SHA256 != sha {
			return voluntree.Errorf(voluntree.ECONFLICT, "model %s changed since it was checked (removed and pushed again): promote it again", tag)
		}
		if !rollback && tag == cur {
			return nil // promoted already: nothing changes, nobody is told
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Persist(ctx, s.keys.ModelVersion(tag))
			for i := range chunks {
				p.Persist(ctx, s.keys.ModelChunk(tag, i))
			}
			p.HSet(ctx, s.keys.ModelPromoted(), "tag", tag, "sha256", v.SHA256, "at", time.Now().UnixMilli())
			if rollback {
				for range popped {
					p.LPop(ctx, s.keys.ModelHistory())
				}
			} else if cur != "" {
				p.LRem(ctx, s.keys.ModelHistory(), 0, cur)
				p.LPush(ctx, s.keys.ModelHistory(), cur)
				p.LTrim(ctx, s.keys.ModelHistory(), 0, 99)
			}
			p.Publish(ctx, s.keys.ModelChannel(), tag)
			return nil
		})
		return err
	}, s.keys.ModelPromoted(), s.keys.ModelHistory())
	if errors.Is(err, redis.TxFailedErr) {
		return "", voluntree.Errorf(voluntree.ECONFLICT, "the promoted model changed at the same time: try again")
	}
	if err != nil {
		if voluntree.ErrorCode(err) != voluntree.EINTERNAL {
			return "", err
		}
		return "", fmt.Errorf("redisstore: promote model: %w", err)
	}
	if rollback {
		return tag, nil
	}
	return prev, nil
}

// RemoveModel deletes a version that is not the promoted one.
func (s *Store) RemoveModel(ctx context.Context, tag string) error {
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		cur, err := tx.HGet(ctx, s.keys.ModelPromoted(), "tag").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if cur == tag {
			return voluntree.Errorf(voluntree.ECONFLICT, "model %s is the promoted one: promote another (or roll back) first", tag)
		}
		_, chunks, err := s.modelVersion(ctx, tx, tag)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			keys := []string{s.keys.ModelVersion(tag)}
			for i := range chunks {
				keys = append(keys, s.keys.ModelChunk(tag, i))
			}
			p.Del(ctx, keys...)
			p.ZRem(ctx, s.keys.ModelTags(), tag)
			p.LRem(ctx, s.keys.ModelHistory(), 0, tag)
			return nil
		})
		return err
	}, s.keys.ModelPromoted(), s.keys.ModelVersion(tag))
	if errors.Is(err, redis.TxFailedErr) {
		return voluntree.Errorf(voluntree.ECONFLICT, "the registry changed at the same time: try again")
	}
	if err != nil && voluntree.ErrorCode(err) == voluntree.EINTERNAL {
		return fmt.Errorf("redisstore: remove model %s: %w", tag, err)
	}
	return err
}

// ModelVersions lists the versions, newest first; expired ones leave the index as they are met.
func (s *Store) ModelVersions(ctx context.Context) ([]ModelVersion, error) {
	tags, err := s.rdb.ZRevRange(ctx, s.keys.ModelTags(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: model versions: %w", err)
	}
	cur, _, err := s.PromotedModel(ctx)
	if err != nil {
		return nil, err
	}
	out := []ModelVersion{}
	for _, tag := range tags {
		v, _, err := s.modelVersion(ctx, s.rdb, tag)
		if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
			s.rdb.ZRem(ctx, s.keys.ModelTags(), tag) // expired unpromoted
			continue
		}
		if err != nil {
			return nil, err
		}
		if ttl, err := s.rdb.PTTL(ctx, s.keys.ModelVersion(tag)).Result(); err == nil && ttl > 0 {
			v.Expires = time.Now().Add(ttl).UTC().Truncate(time.Second)
		}
		v.Promoted = tag == cur
		out = append(out, v)
	}
	return out, nil
}

// ModelNodeTTL is how long a node that stopped reporting is still listed.
const ModelNodeTTL = 30 * time.Second

// ReportModelNode records the version node serves.
func (s *Store) ReportModelNode(ctx context.Context, n ModelNode) error {
	n.Seen = time.Now().UTC().Truncate(time.Millisecond)
	b, _ := json.Marshal(n)
	if err := s.rdb.HSet(ctx, s.keys.ModelNodes(), n.Node, b).Err(); err != nil {
		return fmt.Errorf("redisstore: report model node: %w", err)
	}
	return nil
}

// ModelNodes lists the nodes that reported within ModelNodeTTL, by name; older reports are
// removed as they are met.
func (s *Store) ModelNodes(ctx context.Context) ([]ModelNode, error) {
	h, err := s.rdb.HGetAll(ctx, s.keys.ModelNodes()).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: model nodes: %w", err)
	}
	out := []ModelNode{}
	for name, raw := range h {
		var n ModelNode
		if json.Unmarshal([]byte(raw), &n) != nil || time.Since(n.Seen) > ModelNodeTTL {
			s.rdb.HDel(ctx, s.keys.ModelNodes(), name)
			continue
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b ModelNode) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}
