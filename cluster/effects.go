package cluster

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/internal/streamworker"
	"github.com/voluntree/voluntree/mail"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/redisstore"
)

// The effects worker performs what conversation transitions decided (their outbox entries,
// see flow.go), one batch at a time and in order: Messenger messages and private replies
// through the Send API, web chat messages, emails through the mail queue, bookings, and
// notices to the admins. It runs on the stream worker engine (internal/streamworker), so an
// entry is retried with backoff and reclaimed from a dead node; each effect done is marked, so
// a redelivered batch skips it.
//
// No duplicate message: each message carries its effect id as Messenger metadata. A send
// that fails ambiguously (a 5xx, a timeout: the message may have gone) is not sent again until
// EchoWait has passed without its message_echoes webhook; an echo settles it as sent.
//
// Messenger's rules: an automated message is sent only within 24 hours of the person's last
// message; past that it is dropped, counted and marked on the conversation, and sent by email
// when the address is verified. A person's reply from the dashboard carries the HUMAN_AGENT tag
// (7 days). Graph errors: outside the window (10/2018278) and unavailable (551/1545041) are
// marked and not retried; "already replied" (10900) counts as done; throttling is retried with
// backoff; an invalid token (190) marks the page disconnected and tells the admins.

// Messenger is what the effects worker needs of the Graph API (*facebook.Graph has it).
type Messenger interface {
	SendMessage(ctx context.Context, pageID, pageToken string, m facebook.OutMessage) (facebook.SendResult, error)
	ReplyToComment(ctx context.Context, commentID, pageToken, text string) (string, error)
}

// Mailer queues an email (*mail.Queue).
type Mailer interface {
	Enqueue(ctx context.Context, e mail.Email) (string, error)
}

// ChatSink delivers a web chat message to the person's session (nil: web chat is off).
type ChatSink interface {
	Deliver(ctx context.Context, conversationID string, e *grainpb.Effect) error
}

// storeChat delivers web chat messages into the conversation's history, which its open
// sockets follow (redisstore.AppendChat publishes each one).
type storeChat struct{ store voluntree.ChatAppender }

// NewChatSink returns the web chat sink on store.
func NewChatSink(store voluntree.ChatAppender) ChatSink { return storeChat{store: store} }

func (c storeChat) Deliver(ctx context.Context, conversationID string, e *grainpb.Effect) error {
	m := voluntree.ChatMessage{From: e.From, Text: e.Text}
	for _, o := range e.Options {
		m.Options = append(m.Options, voluntree.ChatOption{Title: o.Title, Payload: o.Payload})
	}
	if e.AskEmail {
		m.Options = nil // the page has a text box for it
	}
	_, err := c.store.AppendChat(ctx, conversationID, m, e.Id)
	return err
}

// mailPerHour bounds the emails to one volunteer address an hour.
const mailPerHour = 10

// DefaultEchoWait is how long an ambiguous send waits for its echo before it is sent again.
const DefaultEchoWait = 30 * time.Second

// EffectsConfig configures the effects worker.
type EffectsConfig struct {
	Graph    Messenger // nil: Messenger effects fail (retried, then dead-lettered)
	Mail     Mailer    // nil: email effects are dropped
	Chat     ChatSink
	EchoWait time.Duration
	HoldFor  time.Duration // a freed place offered from the waitlist is held this long
	Logger   *slog.Logger
}

// Effects is the effects stream's handler.
type Effects struct {
	node    *Node
	store   Store
	metrics *metrics.Metrics
	cfg     EffectsConfig
	log     *slog.Logger
	now     func() time.Time
}

var _ streamworker.Handler = (*Effects)(nil)

// NewEffects returns the handler of the effects stream for node.
func NewEffects(node *Node, cfg EffectsConfig) *Effects {
	if cfg.EchoWait <= 0 {
		cfg.EchoWait = DefaultEchoWait
	}
	if cfg.HoldFor <= 0 {
		cfg.HoldFor = redisstore.DefaultHoldFor
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Effects{node: node, store: node.cfg.Store, metrics: node.cfg.Metrics, cfg: cfg,
		log: cfg.Logger.With("component", "effects"), now: time.Now}
}

// StreamConfig is the stream worker configuration of consumer of an effects outbox partition
// (0 to redisstore.ConversationPartitions-1): a node runs at least one per partition.
func (x *Effects) StreamConfig(consumer string, partition int) streamworker.Config {
	keys := x.store.Keys()
	return streamworker.Config{Name: "effects", Stream: keys.EffectsPartition(partition), Group: keys.EffectsGroup(),
		Consumer: consumer, DeadStream: keys.EffectsDead(partition), DeleteOnAck: true,
		Block: 200 * time.Millisecond, ClaimIdle: time.Minute, MaxAttempts: 12,
		BaseDelay: 500 * time.Millisecond, MaxDelay: 30 * time.Second, HandleTimeout: 25 * time.Second}
}

// errRetry asks for the batch to be retried later (with the engine's backoff).
var errRetry = errors.New("effects: retry later")

// errParked: the page is disconnected; the batch waits for it to be connected again.
var errParked = errors.New("effects: page disconnected")

// park keeps messages of a disconnected page until it is connected again. A page connected
// meanwhile (its unparking ran before this parking) is unparked at once.
func (x *Effects) park(ctx context.Context, effects []*grainpb.Effect) error {
	page := effects[0].PageId
	b, err := proto.Marshal(&grainpb.EffectBatch{Effects: effects})
	if err != nil {
		return err
	}
	if err := x.store.ParkEffects(ctx, page, b); err != nil {
		return err
	}
	for _, e := range effects {
		x.count(e, "parked", 0)
	}
	x.log.Warn("page disconnected: messages parked until it is connected again", "action", "effect", "page", page, "effects", len(effects))
	if pg, err := x.store.Page(ctx, page); err == nil && pg.DisconnectedAt == nil {
		if _, err := x.store.UnparkEffects(ctx, page); err != nil {
			return err
		}
	}
	return nil
}

// Handle performs one batch's effects in order. An effect that must wait (a throttled call, an
// echo not yet seen) stops the batch there: it is retried, and what was done is skipped.
func (x *Effects) Handle(ctx context.Context, entry streamworker.Entry) error {
	var batch grainpb.EffectBatch
	if err := proto.Unmarshal([]byte(entry.Field("b")), &batch); err != nil {
		return streamworker.Permanent(fmt.Errorf("undecodable effects batch: %w", err))
	}
	var parked []*grainpb.Effect // messages to a disconnected page, in order
	for _, e := range batch.Effects {
		done, err := x.store.EffectDone(ctx, e.Id)
		if err != nil {
			return err
		}
		if done {
			continue
		}
		if len(parked) > 0 && isMessage(e) && e.PageId == parked[0].PageId {
			parked = append(parked, e) // behind the first parked message, to keep their order
			continue
		}
		outcome, code, err := x.perform(ctx, e)
		if errors.Is(err, errParked) {
			// The page is disconnected: its messages wait for it. The other effects (a
			// booking, a cancellation, an email, a notice) need no page and go on.
			parked = append(parked, e)
			continue
		}
		if err != nil {
			x.count(e, "retry", code)
			x.log.Warn("effect failed, will retry", "action", "effect", "effect", e.Id, "kind", e.Kind, "error", err)
			return err
		}
		x.count(e, outcome, code)
		if err := x.store.MarkEffectDone(ctx, e.Id, outcome); err != nil {
			return err
		}
	}
	if len(parked) > 0 {
		return x.park(ctx, parked)
	}
	return nil
}

// isMessage reports an effect that goes through the page (Messenger, or a comment reply).
func isMessage(e *grainpb.Effect) bool {
	return e.Channel != ChannelWebChat && (e.Kind == EffectSend || e.Kind == EffectPrivateReply || e.Kind == EffectCommentReply)
}

func (x *Effects) count(e *grainpb.Effect, outcome string, code int) {
	c := ""
	if code != 0 {
		c = strconv.Itoa(code)
	}
	x.metrics.Effects.WithLabelValues(e.Kind, outcome, c).Inc()
}

// perform does one effect and says how it ended; an error means "try again later".
func (x *Effects) perform(ctx context.Context, e *grainpb.Effect) (outcome string, code int, err error) {
	switch e.Kind {
	case EffectSend, EffectPrivateReply, EffectCommentReply:
		if e.Channel == ChannelWebChat {
			if x.cfg.Chat == nil {
				return "dropped", 0, nil
			}
			if err := x.cfg.Chat.Deliver(ctx, e.ConversationId, e); err != nil {
				return "", 0, err
			}
			return "done", 0, nil
		}
		return x.message(ctx, e)
	case EffectEmail:
		return x.email(ctx, e, e.EmailTo, e.EmailSubject, e.Text)
	case EffectBook:
		return x.book(ctx, e)
	case EffectCancelBooking:
		return x.cancelBooking(ctx, e)
	case EffectSlotChanged, EffectSlotCancelled:
		return x.slotChange(ctx, e)
	case EffectTell:
		if err := x.tell(ctx, e.ConversationId, e.Id, e.Text); err != nil {
			return "", 0, err
		}
		return "done", 0, nil
	case EffectVolunteer:
		return x.volunteer(ctx, e)
	case EffectNotifyAdmins:
		_, err := x.store.AppendEvent(ctx, e.OrgId, voluntree.Event{Type: voluntree.EventNotice,
			Notice: &voluntree.Notice{ConversationID: e.ConversationId, Name: e.PersonName, Text: e.Text}})
		if err != nil {
			return "", 0, err
		}
		return "done", 0, nil
	}
	return "failed", 0, nil // an unknown kind (a newer node's): nothing to do here
}

// message sends a Messenger message, private reply or public comment reply.
func (x *Effects) message(ctx context.Context, e *grainpb.Effect) (string, int, error) {
	if e.Kind == EffectSend && e.WindowUntilUnixNano != 0 && x.now().UnixNano() > e.WindowUntilUnixNano {
		// Outside the window (24 hours; 7 days for a person's HUMAN_AGENT reply).
		x.metrics.WindowDrops.Inc()
		if err := x.store.MarkUndeliverable(ctx, e.ConversationId, "outside_window", 0, true); err != nil {
			return "", 0, err
		}
		return x.byEmail(ctx, e, "dropped_window")
	}
	page, err := x.store.Page(ctx, e.PageId)
	if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
		return "page_disconnected", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	if page.DisconnectedAt != nil {
		return "", 0, errParked // until it is connected again
	}
	if x.cfg.Graph == nil {
		return "", 0, errors.New("effects: no Graph API is configured")
	}
	// Write-ahead: the attempt is marked before the send. Finding a mark means an earlier
	// attempt (failed ambiguously, or cut by a crash before its acknowledgement) may have sent
	// the message: its echo settles it; without one, wait EchoWait, then send again.
	resent := false
	if e.Kind != EffectCommentReply {
		since, first, err := x.store.MarkAttempt(ctx, e.Id, x.now())
		if err != nil {
			return "", 0, err
		}
		if !first {
			mid, err := x.store.Echoed(ctx, e.Id)
			switch {
			case err != nil:
				return "", 0, err
			case mid != "":
				return "echoed", 0, nil
			case x.now().Sub(since) < x.cfg.EchoWait:
				return "", 0, fmt.Errorf("waiting for the echo of %s: %w", e.Id, errRetry)
			}
			if err := x.store.RestartAttempt(ctx, e.Id, x.now()); err != nil {
				return "", 0, err
			}
			resent = true
		}
	}
	if e.Kind == EffectCommentReply {
		_, err = x.cfg.Graph.ReplyToComment(ctx, e.CommentId, page.AccessToken, e.Text)
	} else {
		m := facebook.OutMessage{Text: e.Text, Metadata: e.Id, Tag: e.Tag}
		if e.Kind == EffectPrivateReply {
			m.CommentID = e.CommentId
		} else {
			m.RecipientID = e.RecipientId
		}
		if e.AskEmail {
			m.QuickReplies = append(m.QuickReplies, facebook.QuickOption{Email: true})
		}
		for _, o := range e.Options {
			m.QuickReplies = append(m.QuickReplies, facebook.QuickOption{Title: o.Title, Payload: o.Payload})
		}
		var res facebook.SendResult
		res, err = x.cfg.Graph.SendMessage(ctx, page.ID, page.AccessToken, m)
		if err == nil && e.Kind == EffectPrivateReply && res.RecipientID != "" && res.RecipientID != e.RecipientId {
			// The commenter's Messenger id: their answers continue this conversation.
			if aerr := x.store.SetConversationAlias(ctx, voluntree.ConversationID(page.ID, res.RecipientID), e.ConversationId); aerr != nil {
				// Sent: the redelivery finds the attempt mark and the echo, which records it too.
				return "", 0, fmt.Errorf("record the commenter's Messenger id: %w", aerr)
			}
		}
	}
	if err == nil {
		if resent {
			return "resent", 0, nil
		}
		return "done", 0, nil
	}
	code, sub := facebook.GraphCode(err)
	switch {
	case code == facebook.CodeOutsideWindow && (sub == 2018278 || sub == 2534022 || sub == 0):
		x.metrics.WindowDrops.Inc()
		if err := x.store.MarkUndeliverable(ctx, e.ConversationId, "outside_window", code, true); err != nil {
			return "", code, err
		}
		outcome, _, err := x.byEmail(ctx, e, "outside_window")
		return outcome, code, err
	case code == facebook.CodeUnavailable || code == facebook.CodeCannotReply:
		return "unavailable", code, x.store.MarkUndeliverable(ctx, e.ConversationId, "unavailable", code, false)
	case code == facebook.CodeAlreadyReplied:
		return "already_replied", code, nil
	case code == facebook.CodeInvalidToken:
		if cerr := x.store.ClearAttempt(ctx, e.Id); cerr != nil {
			return "", code, cerr
		}
		x.count(e, "page_disconnected", code)
		return "", code, x.disconnect(ctx, page, e, err)
	case ambiguous(err) && e.Kind != EffectCommentReply:
		x.count(e, "ambiguous", code) // the attempt mark stays: the retry waits for the echo
		return "", code, fmt.Errorf("send %s: %w", e.Id, err)
	case ambiguous(err):
		// A public reply has no echo to tell whether it went: better none than two.
		x.log.Warn("public comment reply failed ambiguously: not posted again", "action", "effect", "effect", e.Id, "error", err)
		return "ambiguous_dropped", code, nil
	case facebook.IsRetryable(err):
		if cerr := x.store.ClearAttempt(ctx, e.Id); cerr != nil { // refused: it did not go
			return "", code, cerr
		}
		return "", code, err
	}
	x.log.Error("effect refused by Graph", "action", "effect", "effect", e.Id, "kind", e.Kind, "error", err)
	return "failed", code, nil
}

// ambiguous reports a failure after which the message may have been sent: a 5xx, a timeout, a
// broken connection — not a Graph error answer of the 4xx kind.
func ambiguous(err error) bool {
	var ge *facebook.GraphError
	if errors.As(err, &ge) {
		return ge.HTTPStatus >= 500
	}
	return facebook.IsRetryable(err)
}

// disconnect marks the page disconnected (its token was refused) and tells its admins; the
// effect is parked until the page is connected again.
func (x *Effects) disconnect(ctx context.Context, page voluntree.Page, e *grainpb.Effect, cause error) error {
	stored, err := x.store.Page(ctx, page.ID)
	if err != nil {
		return err
	}
	if stored.AccessToken != page.AccessToken {
		return errRetry // reconnected with another token meanwhile: send again with it
	}
	if stored.DisconnectedAt == nil {
		now := x.now().UTC()
		page = stored
		page.DisconnectedAt, page.Error = &now, cause.Error()
		if err := x.store.SavePage(ctx, page); err != nil {
			return err
		}
		x.log.Error("page token refused: page marked disconnected", "action", "effect", "page", page.ID, "error", cause)
		if _, err := x.store.AppendEvent(ctx, page.OrgID, voluntree.Event{Type: voluntree.EventNotice,
			Notice: &voluntree.Notice{ConversationID: e.ConversationId,
				Text: fmt.Sprintf("Facebook refused the access token of page %s: connect the page again. Messages to volunteers wait until then.", page.Name)}}); err != nil {
			return err
		}
	}
	return errParked
}

// byEmail sends a message that could not go by Messenger to the verified address, if any.
func (x *Effects) byEmail(ctx context.Context, e *grainpb.Effect, outcome string) (string, int, error) {
	if e.EmailTo == "" || e.Kind != EffectSend {
		return outcome, 0, nil
	}
	o, _, err := x.email(ctx, e, e.EmailTo, "A message about your volunteering", e.Text+"\n")
	if err != nil {
		return "", 0, err
	}
	if o == "done" {
		return outcome + "_emailed", 0, nil
	}
	return outcome, 0, nil
}

func (x *Effects) email(ctx context.Context, e *grainpb.Effect, to, subject, text string) (string, int, error) {
	if x.cfg.Mail == nil || to == "" {
		return "dropped", 0, nil
	}
	// At most mailPerHour emails to one address, whatever the sessions asking for them.
	if n, err := x.store.CountEmailTo(ctx, to, time.Hour); err != nil {
		return "", 0, err
	} else if n > mailPerHour {
		return "rate_limited", 0, nil
	}
	sum := sha256.Sum256([]byte(e.Id))
	_, err := x.cfg.Mail.Enqueue(ctx, mail.Email{ID: "fx" + hex.EncodeToString(sum[:16]), Org: e.OrgId, To: to, Subject: subject, Text: text})
	if voluntree.ErrorCode(err) == voluntree.EINVALID {
		return "failed", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	return "done", 0, nil
}

// book books the slot (or the waitlist) and tells the conversation how it went; a change frees
// the previous place once the new one is booked, and a freed place is offered to the first
// person waiting.
func (x *Effects) book(ctx context.Context, e *grainpb.Effect) (string, int, error) {
	// The slot as it is now: an admin may have cut its places, cancelled or removed it since
	// the person tapped it.
	capacity := 0 // cancelled, removed or past: full for everyone
	su, err := x.signup(ctx, e.SignupId)
	if err != nil {
		return "", 0, err
	}
	if su != nil {
		if sl, ok := su.Slot(e.SlotId); ok && !sl.Cancelled && !slotPast(su, sl, x.now()) {
			capacity = sl.Required
		}
	}
	rec := voluntree.BookingRecord{Name: e.PersonName, Channel: e.Channel}
	res := voluntree.BookResult{Status: voluntree.Waitlisted}
	if capacity > 0 {
		if res, err = x.store.Book(ctx, e.SignupId, e.SlotId, capacity, e.ConversationId, rec, x.cfg.HoldFor); err != nil {
			return "", 0, err
		}
	} else if e.PreviousSlotId == "" {
		// Nothing to wait for on a slot that is gone: tell the person it is full.
		e = proto.Clone(e).(*grainpb.Effect)
		e.PreviousSlotId = "-"
	}
	x.offer(ctx, e, e.SlotId, res.Offered)
	change := e.PreviousSlotId != "" && e.PreviousSlotId != e.SlotId
	var payload, outcome string
	switch {
	case res.Status == voluntree.Booked:
		payload, outcome = sysBooked+e.SlotId, "booked"
		for _, old := range []string{e.PreviousSlotId, e.ReleaseSlotId} {
			if old != "" && old != "-" && old != e.SlotId {
				if err := x.free(ctx, e, su, old); err != nil {
					return "", 0, err
				}
			}
		}
	case change:
		// The new slot is full: the person keeps their place and leaves that waitlist.
		if err := x.free(ctx, e, su, e.SlotId); err != nil {
			return "", 0, err
		}
		payload, outcome = sysFull+e.SlotId, "full"
	default:
		payload, outcome = sysWaitlisted+e.SlotId+":"+strconv.Itoa(res.Position), "waitlisted"
		if e.ReleaseSlotId != "" && e.ReleaseSlotId != e.SlotId { // the flow forgets it: free it now
			if err := x.free(ctx, e, su, e.ReleaseSlotId); err != nil {
				return "", 0, err
			}
		}
	}
	x.metrics.Bookings.WithLabelValues(outcome).Inc()
	x.bookingEvent(ctx, e, su, e.SlotId, outcome)
	if err := x.tell(ctx, e.ConversationId, e.Id+":result", payload); err != nil {
		return "", 0, err
	}
	return "done", 0, nil
}

func (x *Effects) cancelBooking(ctx context.Context, e *grainpb.Effect) (string, int, error) {
	slot := e.SlotId
	if slot == "" { // a booking that was on its way: whatever the person holds
		rec, ok, err := x.store.Booking(ctx, e.SignupId, e.ConversationId)
		if err != nil {
			return "", 0, err
		}
		if !ok {
			return "done", 0, nil
		}
		slot = rec.SlotID
	}
	su, err := x.signup(ctx, e.SignupId)
	if err != nil {
		return "", 0, err
	}
	if err := x.free(ctx, e, su, slot); err != nil {
		return "", 0, err
	}
	x.metrics.Bookings.WithLabelValues("cancelled").Inc()
	x.bookingEvent(ctx, e, su, slot, "cancelled")
	return "done", 0, nil
}

// signup reads a signup as it is now (nil when it was deleted).
func (x *Effects) signup(ctx context.Context, id string) (*voluntree.Signup, error) {
	su, err := x.store.Signup(ctx, id)
	switch {
	case voluntree.ErrorCode(err) == voluntree.ENOTFOUND:
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &su, nil
}

// free takes the person off a slot of su (nil: deleted) and offers a freed place.
func (x *Effects) free(ctx context.Context, e *grainpb.Effect, su *voluntree.Signup, slot string) error {
	capacity := int(e.Capacity)
	if su != nil {
		if sl, ok := su.Slot(slot); ok {
			capacity = sl.Required
			if sl.Cancelled {
				capacity = 0 // nobody is offered a place of a cancelled slot
			}
		}
	}
	_, offered, err := x.store.CancelBooking(ctx, e.SignupId, slot, capacity, e.ConversationId, x.cfg.HoldFor)
	if err != nil {
		return err
	}
	x.offer(ctx, e, slot, offered)
	return nil
}

// offer tells each person offered a freed place (best effort: the hold expires otherwise and
// the place passes on).
func (x *Effects) offer(ctx context.Context, e *grainpb.Effect, slot string, people []string) {
	for _, p := range people {
		x.metrics.Bookings.WithLabelValues("offered").Inc()
		if err := x.tell(ctx, p, e.Id+":offer:"+p, sysOffer+slot); err != nil {
			x.log.Warn("offer a freed place", "action", "effect", "conversation", p, "error", err)
		}
	}
}

// tell sends a system message to a conversation grain (id makes it idempotent there).
func (x *Effects) tell(ctx context.Context, conversationID, id, payload string) error {
	page, sender, ok := strings.Cut(conversationID, ":")
	if !ok {
		return fmt.Errorf("effects: conversation id %q", conversationID)
	}
	req := &grainpb.ConversationRequest{Messages: []*grainpb.Classified{{Id: id, Kind: KindSystem,
		PageId: page, SenderId: sender, Payload: payload, CreatedAtUnixNano: x.now().UnixNano()}}}
	if _, err := x.node.Conversation(conversationID).Handle(req); err != nil {
		return fmt.Errorf("effects: tell %s: %w", conversationID, err)
	}
	return nil
}

// bookingEvent shows the slot's new counts on the organization's live feed (best effort).
func (x *Effects) bookingEvent(ctx context.Context, e *grainpb.Effect, su *voluntree.Signup, slot, outcome string) {
	if su == nil {
		return
	}
	c, err := x.store.SlotCountsOf(ctx, su.ID, slot)
	if err != nil {
		return
	}
	sl, _ := su.Slot(slot)
	_, _ = x.store.AppendEvent(ctx, su.OrgID, voluntree.Event{Type: voluntree.EventBooking, Booking: &voluntree.BookingUpdate{
		SignupID: su.ID, SlotID: slot, SlotLabel: cmp.Or(sl.Title, strings.TrimSpace(sl.Date+" "+sl.Start)), ConversationID: e.ConversationId, Name: e.PersonName, Channel: e.Channel,
		Outcome: outcome, Booked: c.Booked, Held: c.Held, Waiting: c.Waiting, Required: sl.Required}})
}

// slotPast reports whether a slot has started (in its signup's time zone).
func slotPast(su *voluntree.Signup, sl voluntree.Slot, now time.Time) bool {
	return (&flow{env: flowEnv{signup: su, now: now}}).past(sl)
}
