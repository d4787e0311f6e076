package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/voluntree/voluntree/redisstore"
)

// TestModelPushThroughTheAPI pushes the shipped model (4.2 MB, more than a request body may
// hold) through the admin API in chunks, as an operator's script or the dashboard would: the
// declaration, the chunks out of order with one sent damaged and again, the upload's state
// for resuming, the completion (the file is checked: loaded and scored), then promotion. A
// file that is no model, an incomplete upload, and another organization's owner are refused.
func TestModelPushThroughTheAPI(t *testing.T) {
	const prefix = "e2e-modelpush"
	ops, other := orgWithPages(t, prefix, "ops"), orgWithPages(t, prefix, "other")
	n := startServe(t, "VOLUNTREE_REDIS_URL="+redisSrv.URL(t), "VOLUNTREE_REDIS_PREFIX="+prefix, "VOLUNTREE_OPERATOR_ORG=ops",
		"VOLUNTREE_MODEL_TTL=2h")
	defer n.stop(t)
	call := func(method, path, tok string, body []byte) (int, map[string]any) {
		t.Helper()
		if method == "PUT" { // a chunk: raw bytes
			return n.api(t, method, path, tok, body, "application/octet-stream")
		}
		return n.api(t, method, path, tok, body, "")
	}
	declare := func(tok, tag string, data []byte) (int, map[string]any) {
		t.Helper()
		sum := sha256.Sum256(data)
		b, _ := json.Marshal(map[string]any{"tag": tag, "size": len(data), "sha256": hex.EncodeToString(sum[:]), "note": "through the API"})
		return call("POST", "/api/v1/models/uploads", tok, b)
	}
	file, err := os.ReadFile("../../ml/models/intent.vtm")
	if err != nil {
		t.Fatal(err)
	}
	chunk := func(i int) []byte {
		return file[i*redisstore.ModelChunkSize : min((i+1)*redisstore.ModelChunkSize, len(file))]
	}

	if code, out := declare(other, "api1", file); code != 403 {
		t.Fatalf("an upload by another organization's owner: %d %v", code, out)
	}
	for _, bad := range []string{`{"tag":"no/slash","size":10,"sha256":"` + strings.Repeat("a", 64) + `"}`,
		`{"tag":"big","size":1000000000,"sha256":"` + strings.Repeat("a", 64) + `"}`, `{"tag":"x","size":1,"sha256":"nothex"}`, `not json`} {
		if code, out := call("POST", "/api/v1/models/uploads", ops, []byte(bad)); code != 400 || out["error"] == nil {
			t.Fatalf("declaration %s: %d %v", bad, code, out)
		}
	}
	code, up := declare(ops, "api1", file)
	if code != 201 {
		t.Fatalf("declare: %d %v", code, up)
	}
	id, chunks := up["id"].(string), int(up["chunks"].(float64))
	if chunks != (len(file)+redisstore.ModelChunkSize-1)/redisstore.ModelChunkSize || chunks < 2 {
		t.Fatalf("the upload of %d bytes has %d chunks", len(file), chunks)
	}
	// Chunks out of order, the last one first; one damaged on the way (then sent again), one
	// of the wrong length, one out of range.
	for i := chunks - 1; i >= 1; i-- {
		data := chunk(i)
		if i == 1 {
			data = bytes.Clone(data)
			data[10] ^= 0xff
		}
		if code, out := call("PUT", fmt.Sprintf("/api/v1/models/uploads/%s/chunks/%d", id, i), ops, data); code != 200 {
			t.Fatalf("chunk %d: %d %v", i, code, out)
		}
	}
	if code, out := call("PUT", fmt.Sprintf("/api/v1/models/uploads/%s/chunks/0", id), ops, []byte("short")); code != 400 {
		t.Fatalf("a chunk of the wrong length: %d %v", code, out)
	}
	if code, out := call("PUT", fmt.Sprintf("/api/v1/models/uploads/%s/chunks/%d", id, chunks), ops, chunk(0)); code != 400 {
		t.Fatalf("a chunk out of range: %d %v", code, out)
	}
	if code, out := call("POST", "/api/v1/models/uploads/"+id+"/complete", ops, nil); code != 400 || !strings.Contains(fmt.Sprint(out["error"]), "missing chunks [0]") {
		t.Fatalf("completing without chunk 0: %d %v", code, out)
	}
	if code, state := call("GET", "/api/v1/models/uploads/"+id, ops, nil); code != 200 || len(state["received"].([]any)) != chunks-1 {
		t.Fatalf("the upload's state: %d %v", code, state)
	}
	if code, out := call("PUT", fmt.Sprintf("/api/v1/models/uploads/%s/chunks/0", id), ops, chunk(0)); code != 200 {
		t.Fatalf("chunk 0: %d %v", code, out)
	}
	if code, out := call("POST", "/api/v1/models/uploads/"+id+"/complete", ops, nil); code != 400 || !strings.Contains(fmt.Sprint(out["error"]), "damaged chunks") {
		t.Fatalf("completing with a damaged chunk: %d %v", code, out)
	}
	if code, out := call("PUT", fmt.Sprintf("/api/v1/models/uploads/%s/chunks/1", id), ops, chunk(1)); code != 200 {
		t.Fatalf("chunk 1 again: %d %v", code, out)
	}
	code, v := call("POST", "/api/v1/models/uploads/"+id+"/complete", ops, nil)
	sum := sha256.Sum256(file)
	if code != 201 || v["tag"] != "api1" || v["sha256"] != hex.EncodeToString(sum[:]) || v["kind"] != "native" || v["expires"] == nil {
		t.Fatalf("complete: %d %v", code, v)
	}
	if scores, _ := v["scores"].(map[string]any); scores == nil || scores["accuracy"].(float64) < defaultModelMinAccuracy {
		t.Fatalf("the pushed version's scores: %v", v["scores"])
	}
	if code, out := call("GET", "/api/v1/models/uploads/"+id, ops, nil); code != 404 {
		t.Fatalf("a completed upload is still there: %d %v", code, out)
	}
	if code, out := declare(ops, "api1", file); code != 409 {
		t.Fatalf("an upload of a tag already pushed: %d %v", code, out)
	}

	// A file that is no model: refused at completion, with the reason.
	junk := bytes.Repeat([]byte("not a model "), 100)
	_, up = declare(ops, "junk", junk)
	jid := up["id"].(string)
	if code, out := call("PUT", "/api/v1/models/uploads/"+jid+"/chunks/0", ops, junk); code != 200 {
		t.Fatalf("junk chunk: %d %v", code, out)
	}
	if code, out := call("POST", "/api/v1/models/uploads/"+jid+"/complete", ops, nil); code != 400 || !strings.Contains(fmt.Sprint(out["error"]), "does not load") {
		t.Fatalf("completing junk: %d %v", code, out)
	}

	// The pushed version is promoted and served.
	if code, out := call("POST", "/api/v1/models/api1/promote", ops, nil); code != 200 {
		t.Fatalf("promote api1: %d %v", code, out)
	}
	waitRedis(t, func() bool { return n.serves(t, "api1") }, "the node serving api1")
}
