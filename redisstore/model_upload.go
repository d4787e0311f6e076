package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
)

// Pushing a model through the admin API: an upload declared with the file's tag, size and
// SHA-256, its chunks (ModelChunkSize each, the last one shorter) stored one request each, in
// any order and again after a failure, then the whole file read back, checked and pushed. Every
// key is in the registry's slot ({models}) and expires with the upload.

// ModelUploadTTL is how long an upload may take, from its creation.
const ModelUploadTTL = time.Hour

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidateModelUpload checks an upload's declaration (tag, note, size, checksum).
func ValidateModelUpload(u voluntree.ModelUpload) error {
	if err := ValidModelTag(u.Tag); err != nil {
		return voluntree.FieldErrorf("tag", "%s", voluntree.ErrorMessage(err))
	}
	if len(u.Note) > 500 {
		return voluntree.FieldErrorf("note", "a note has at most 500 bytes")
	}
	if u.Size < 1 || u.Size > MaxModelSize {
		return voluntree.FieldErrorf("size", "a model file holds 1 byte to %d MiB, got %d bytes", MaxModelSize>>20, u.Size)
	}
	if !sha256Hex.MatchString(u.SHA256) {
		return voluntree.FieldErrorf("sha256", "sha256 must be the file's SHA-256, 64 lowercase hex digits")
	}
	return nil
}

// CreateModelUpload starts an upload of the declared file. The tag must be free (ECONFLICT
// when a version has it); it is taken only when the upload completes.
func (s *Store) CreateModelUpload(ctx context.Context, u voluntree.ModelUpload) (voluntree.ModelUpload, error) {
	if err := ValidateModelUpload(u); err != nil {
		return u, err
	}
	if n, err := s.rdb.Exists(ctx, s.keys.ModelVersion(u.Tag)).Result(); err != nil {
		return u, fmt.Errorf("redisstore: model upload: %w", err)
	} else if n > 0 {
		return u, voluntree.Errorf(voluntree.ECONFLICT, "model %s is already pushed: push under a new tag", u.Tag)
	}
	u.ID = voluntree.NewID("mu_")
	u.ChunkSize = ModelChunkSize
	u.Chunks = int((u.Size + ModelChunkSize - 1) / ModelChunkSize)
	u.Received = []int{}
	u.Expires = time.Now().UTC().Add(ModelUploadTTL).Truncate(time.Millisecond)
	key := s.keys.ModelUpload(u.ID)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "tag", u.Tag, "note", u.Note, "size", u.Size, "sha256", u.SHA256,
			"expires", u.Expires.UnixMilli())
		p.PExpireAt(ctx, key, u.Expires)
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("redisstore: model upload: %w", err)
	}
	return u, nil
}

// ModelUpload returns an upload with the chunks it received; ENOTFOUND when it is unknown,
// completed or expired.
func (s *Store) ModelUpload(ctx context.Context, id string) (voluntree.ModelUpload, error) {
	var h *redis.MapStringStringCmd
	var rec *redis.StringSliceCmd
	if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		h = p.HGetAll(ctx, s.keys.ModelUpload(id))
		rec = p.SMembers(ctx, s.keys.ModelUploadReceived(id))
		return nil
	}); err != nil {
		return voluntree.ModelUpload{}, fmt.Errorf("redisstore: model upload %s: %w", id, err)
	}
	f := h.Val()
	if f["tag"] == "" {
		return voluntree.ModelUpload{}, voluntree.Errorf(voluntree.ENOTFOUND, "no model upload %.40q (unknown, completed, or older than %s)", id, ModelUploadTTL)
	}
	size, _ := strconv.ParseInt(f["size"], 10, 64)
	exp, _ := strconv.ParseInt(f["expires"], 10, 64)
	u := voluntree.ModelUpload{ID: id, Tag: f["tag"], Note: f["note"], Size: size, SHA256: f["sha256"],
		ChunkSize: ModelChunkSize, Chunks: int((size + ModelChunkSize - 1) / ModelChunkSize),
		Received: []int{}, Expires: time.UnixMilli(exp).UTC()}
	for _, m := range rec.Val() {
		if n, err := strconv.Atoi(m); err == nil {
			u.Received = append(u.Received, n)
		}
	}
	slices.Sort(u.Received)
	return u, nil
}

// PutModelUploadChunk stores chunk n of an upload (sending it again replaces it). A chunk is
// ModelChunkSize bytes, the last one the rest of the file: another length is EINVALID.
func (s *Store) PutModelUploadChunk(ctx context.Context, id string, n int, data []byte) (voluntree.ModelUpload, error) {
	u, err := s.ModelUpload(ctx, id)
	if err != nil {
		return u, err
	}
	if n < 0 || n >= u.Chunks {
		return u, voluntree.FieldErrorf("chunk", "chunk %d is not one of this upload's 0 to %d", n, u.Chunks-1)
	}
	want := int64(ModelChunkSize)
	if n == u.Chunks-1 {
		want = u.Size - int64(n)*ModelChunkSize
	}
	if int64(len(data)) != want {
		return u, voluntree.FieldErrorf("chunk", "chunk %d must hold %d bytes, got %d", n, want, len(data))
	}
	ttl := time.Until(u.Expires)
	if ttl <= 0 {
		return u, voluntree.Errorf(voluntree.ENOTFOUND, "model upload %s expired", id)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.keys.ModelUploadChunk(id, n), data, ttl)
		p.SAdd(ctx, s.keys.ModelUploadReceived(id), n)
		p.PExpireAt(ctx, s.keys.ModelUploadReceived(id), u.Expires)
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("redisstore: model upload %s: chunk %d: %w", id, n, err)
	}
	if !slices.Contains(u.Received, n) {
		u.Received = append(u.Received, n)
		slices.Sort(u.Received)
	}
	return u, nil
}

// ModelUploadFile reads an upload's whole file back and checks it against its declaration:
// EINVALID naming the chunks still missing, or a file whose SHA-256 is not the declared one.
func (s *Store) ModelUploadFile(ctx context.Context, id string) (voluntree.ModelUpload, []byte, error) {
	u, err := s.ModelUpload(ctx, id)
	if err != nil {
		return u, nil, err
	}
	if len(u.Received) != u.Chunks {
		var missing []int
		for n := range u.Chunks {
			if !slices.Contains(u.Received, n) {
				missing = append(missing, n)
			}
		}
		return u, nil, voluntree.Errorf(voluntree.EINVALID, "model upload %s is missing chunks %v of %d", id, missing, u.Chunks)
	}
	cmds := make([]*redis.StringCmd, u.Chunks)
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for n := range cmds {
			cmds[n] = p.Get(ctx, s.keys.ModelUploadChunk(id, n))
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return u, nil, fmt.Errorf("redisstore: model upload %s: %w", id, err)
	}
	data := make([]byte, 0, u.Size)
	for n, c := range cmds {
		b, err := c.Bytes()
		if err != nil {
			return u, nil, voluntree.Errorf(voluntree.EINVALID, "model upload %s: chunk %d is gone (expired): send it again", id, n)
		}
		data = append(data, b...)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); int64(len(data)) != u.Size || got != u.SHA256 {
		return u, nil, voluntree.Errorf(voluntree.EINVALID, "model upload %s: the chunks make %d bytes with SHA-256 %s, not the declared %d bytes with %s: send the damaged chunks again",
			id, len(data), got, u.Size, u.SHA256)
	}
	return u, data, nil
}

// DeleteModelUpload forgets an upload and its chunks (once pushed, or refused).
func (s *Store) DeleteModelUpload(ctx context.Context, id string, chunks int) error {
	keys := []string{s.keys.ModelUpload(id), s.keys.ModelUploadReceived(id)}
	for n := range chunks {
		keys = append(keys, s.keys.ModelUploadChunk(id, n))
	}
	if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("redisstore: delete model upload %s: %w", id, err)
	}
	return nil
}
