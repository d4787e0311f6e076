package redisstore_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

func TestModelRegistry(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, rdb := newStore(t, redisstore.Config{})
	k := st.Keys()
	sub := rdb.Subscribe(ctx, k.ModelChannel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}

	big := bytes.Repeat([]byte("0123456789abcdef"), redisstore.ModelChunkSize/16*2+100) // three chunks
	v1, err := st.PushModel(ctx, redisstore.ModelVersion{Tag: "v1", Kind: "native", Note: "first"}, big, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Size != int64(len(big)) || len(v1.SHA256) != 64 || v1.Expires.IsZero() {
		t.Fatalf("pushed %+v", v1)
	}
	if n := rdb.Exists(ctx, k.ModelChunk("v1", 2)).Val(); n != 1 {
		t.Fatal("a 2.x MiB file is not in three chunks")
	}
	if _, err := st.PushModel(ctx, redisstore.ModelVersion{Tag: "v1"}, []byte("x"), 0); voluntree.ErrorCode(err) != voluntree.ECONFLICT {
		t.Fatalf("pushing a tag again = %v, want a conflict", err)
	}
	for _, bad := range []string{"", "-x", "a b", "a/b", string(bytes.Repeat([]byte("a"), 65))} {
		if _, err := st.PushModel(ctx, redisstore.ModelVersion{Tag: bad}, []byte("x"), 0); voluntree.ErrorCode(err) != voluntree.EINVALID {
			t.Errorf("tag %q = %v, want invalid", bad, err)
		}
	}
	got, data, err := st.ModelFile(ctx, "v1")
	if err != nil || !bytes.Equal(data, big) || got.SHA256 != v1.SHA256 || got.Note != "first" {
		t.Fatalf("ModelFile(v1) = %+v, %d bytes, %v", got, len(data), err)
	}
	// A damaged chunk is caught by the checksum.
	rdb.SetRange(ctx, k.ModelChunk("v1", 1), 5, "X")
	if _, _, err := st.ModelFile(ctx, "v1"); err == nil {
		t.Fatal("a damaged file passed its checksum")
	}
	rdb.SetRange(ctx, k.ModelChunk("v1", 1), 5, "5")

	if _, err := st.PushModel(ctx, redisstore.ModelVersion{Tag: "v2", Kind: "native"}, []byte("two"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PushModel(ctx, redisstore.ModelVersion{Tag: "short", Kind: "native"}, []byte("s"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if prev, err := st.PromoteModel(ctx, "v1", v1.SHA256); err != nil || prev != "" {
		t.Fatalf("promote v1 = %q, %v", prev, err)
	}
	if msg, err := sub.ReceiveMessage(ctx); err != nil || msg.Payload != "v1" {
		t.Fatalf("announcement %v, %v", msg, err)
	}
	if ttl := rdb.PTTL(ctx, k.ModelChunk("v1", 0)).Val(); ttl > 0 {
		t.Fatalf("a promoted version's chunk still expires in %s", ttl)
	}
	if prev, err := st.PromoteModel(ctx, "v2", ""); err != nil || prev != "v1" {
		t.Fatalf("promote v2 = %q, %v", prev, err)
	}
	if tag, sha, err := st.PromotedModel(ctx); err != nil || tag != "v2" || sha == "" {
		t.Fatalf("promoted = %q %q %v", tag, sha, err)
	}
	if err := st.RemoveModel(ctx, "v2"); voluntree.ErrorCode(err) != voluntree.ECONFLICT {
		t.Fatalf("removing the promoted version = %v, want a conflict", err)
	}
	if _, err := st.PromoteModel(ctx, "v1", "0000"); voluntree.ErrorCode(err) != voluntree.ECONFLICT {
		t.Fatalf("promoting a version whose file is not the one checked = %v, want a conflict", err)
	}
	if _, err := st.PromoteModel(ctx, "nope", ""); voluntree.ErrorCode(err) != voluntree.ENOTFOUND {
		t.Fatalf("promoting an unknown tag = %v, want not found", err)
	}
	// The short-lived version expires unpromoted and leaves the list.
	deadline := time.Now().Add(5 * time.Second)
	for rdb.Exists(ctx, k.ModelVersion("short")).Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("an unpromoted version did not expire")
		}
		time.Sleep(20 * time.Millisecond)
	}
	list, err := st.ModelVersions(ctx)
	if err != nil || len(list) != 2 || list[0].Tag != "v2" || !list[0].Promoted || list[1].Tag != "v1" || list[1].Promoted {
		t.Fatalf("versions = %+v, %v", list, err)
	}
	if back, err := st.RollbackModel(ctx); err != nil || back != "v1" {
		t.Fatalf("rollback = %q, %v", back, err)
	}
	if tag, _, _ := st.PromotedModel(ctx); tag != "v1" {
		t.Fatalf("promoted after the rollback: %q", tag)
	}
	if _, err := st.RollbackModel(ctx); voluntree.ErrorCode(err) != voluntree.ENOTFOUND {
		t.Fatalf("a second rollback with no history = %v, want not found", err)
	}
	if err := st.RemoveModel(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, k.ModelVersion("v2"), k.ModelChunk("v2", 0)).Val(); n != 0 {
		t.Fatalf("%d keys of a removed version remain", n)
	}
	if err := st.RemoveModel(ctx, "v2"); voluntree.ErrorCode(err) != voluntree.ENOTFOUND {
		t.Fatalf("removing it again = %v, want not found", err)
	}
}
