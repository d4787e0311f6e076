package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestEveryLineHasNodeComponentAction(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, slog.LevelDebug, "n1")
	l.Info("Actor system started!", "x", 1)                              // library-style record
	l.With("component", "httpapi").Info("listening", "action", "listen") // our style
	l.With("component", "batcher", "action", "infer").Warn("slow batch")
	l.WithGroup("g").Info("grouped", "k", "v")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 4:\n%s", len(lines), buf.String())
	}
	want := []struct{ component, action string }{
		{"voluntree", "actor_system_started"}, {"httpapi", "listen"}, {"batcher", "infer"}, {"voluntree", "grouped"},
	}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, line)
		}
		if rec["node"] != "n1" {
			t.Errorf("line %d: node = %v", i, rec["node"])
		}
		comp, act := rec["component"], rec["action"]
		if g, ok := rec["g"].(map[string]any); ok && comp == nil {
			comp, act = g["component"], g["action"]
		}
		if comp != want[i].component || act != want[i].action {
			t.Errorf("line %d: component=%v action=%v, want %s/%s: %s", i, comp, act, want[i].component, want[i].action, line)
		}
	}
}
