// Package logging builds Voluntree's slog logger: JSON lines that always carry the fields
// node, component and action, even for records from libraries (Proto.Actor) that set none.
//
//	logger := logging.New(os.Stderr, slog.LevelInfo, "node-1")
//	logger.With("component", "httpapi").Info("listening", "action", "listen", "addr", addr)
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// New returns a JSON logger writing to w whose records all have node, component and action.
// A record without a component gets "voluntree"; without an action, a slug of its message.
func New(w io.Writer, level slog.Leveler, node string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(&handler{next: h.WithAttrs([]slog.Attr{slog.String("node", node)})})
}

type handler struct {
	next         slog.Handler
	hasComponent bool
	hasAction    bool
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	comp, act := h.hasComponent, h.hasAction
	r.Attrs(func(a slog.Attr) bool {
		comp = comp || a.Key == "component"
		act = act || a.Key == "action"
		return true
	})
	if !comp {
		r.AddAttrs(slog.String("component", "voluntree"))
	}
	if !act {
		r.AddAttrs(slog.String("action", slug(r.Message)))
	}
	return h.next.Handle(ctx, r)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	for _, a := range attrs {
		c.hasComponent = c.hasComponent || a.Key == "component"
		c.hasAction = c.hasAction || a.Key == "action"
	}
	c.next = h.next.WithAttrs(attrs)
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

// slug turns "Started actor system" into "started_actor_system" (at most 5 words).
func slug(msg string) string {
	words := strings.FieldsFunc(strings.ToLower(msg), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	})
	if len(words) > 5 {
		words = words[:5]
	}
	if len(words) == 0 {
		return "log"
	}
	return strings.Join(words, "_")
}

// Printf is a logger for libraries that log through a Printf method (go-redis's
// redis.SetLogger): each message becomes a record of l, a warning when it tells of a failure.
type Printf struct{ L *slog.Logger }

// Printf logs one message.
func (p Printf) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	level := slog.LevelInfo
	if low := strings.ToLower(msg); strings.Contains(low, "fail") || strings.Contains(low, "error") {
		level = slog.LevelWarn
	}
	p.L.Log(ctx, level, msg)
}
