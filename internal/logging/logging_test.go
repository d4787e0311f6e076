package logging

import (
	"bytes"
	"context"
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

// TestPrintf: a library's Printf lines become JSON records with the three fields, a warning
// when they tell of a failure.
func TestPrintf(t *testing.T) {
	var buf bytes.Buffer
	p := Printf{L: New(&buf, slog.LevelInfo, "n1").With("component", "redis")}
	p.Printf(context.Background(), "sentinel: new master=%q addr=%q", "voluntree", "127.0.0.1:1")
	p.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts", 5)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), buf.String())
	}
	for i, want := range []string{"INFO", "WARN"} {
		var rec map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %q", i, lines[i])
		}
		if rec["level"] != want || rec["node"] != "n1" || rec["component"] != "redis" || rec["action"] == "" {
			t.Errorf("line %d = %v, want level %s and node, component, action", i, rec, want)
		}
	}
	if !strings.Contains(lines[0], `new master=\"voluntree\"`) {
		t.Errorf("message lost: %q", lines[0])
	}
}
