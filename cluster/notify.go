package cluster

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
)

// Telling volunteers what admins changed. An update that moves a slot (date or times) or
// cancels it appends, in the signup's own transaction, one effect per changed slot; the
// effects worker tells each person of the slot — one system message to their conversation,
// with an id of that change and person, so they are told once — and the conversation answers
// them in Messenger within the window, by email otherwise, or in the web chat.

// Effect kinds of admin actions.
const (
	EffectSlotChanged   = "slot_changed"   // a slot moved: tell its people
	EffectSlotCancelled = "slot_cancelled" // a slot was cancelled: free and tell its people
	EffectTell          = "tell"           // hand a system message to a conversation (an admin's reply)
)

// SlotChangeEffects returns the effect batches telling the people of each slot of old that
// updated moved or cancelled (httpapi's Config.SlotChanges).
func SlotChangeEffects(old, updated *voluntree.Signup) ([][]byte, error) {
	var out [][]byte
	for _, was := range old.Slots {
		now, ok := updated.Slot(was.ID)
		if !ok || was.Cancelled {
			continue // a removed slot had nobody (httpapi refuses otherwise)
		}
		kind := ""
		switch {
		case now.Cancelled:
			kind = EffectSlotCancelled
		case now.Date != was.Date || now.Start != was.Start || now.End != was.End:
			kind = EffectSlotChanged
		default:
			continue
		}
		label := (&flow{env: flowEnv{signup: old}}).slotLabel(was, false)
		e := &grainpb.Effect{
			Id:   fmt.Sprintf("signup:%s:%d:%s", updated.ID, updated.UpdatedAt.UnixNano(), was.ID),
			Kind: kind, SignupId: updated.ID, SlotId: was.ID, OrgId: updated.OrgID, Text: label,
			Capacity: int32(now.Required), CreatedAtUnixNano: updated.UpdatedAt.UnixNano(),
		}
		b, err := proto.Marshal(&grainpb.EffectBatch{Effects: []*grainpb.Effect{e}})
		if err != nil {
			return nil, fmt.Errorf("cluster: encode slot change: %w", err)
		}
		out = append(out, b)
	}
	return out, nil
}

// TellEffect is the effect batch handing payload (an admin's reply "admin:<text>", or
// "release") to a conversation, with id making it once.
func TellEffect(conversationID, id, payload string) ([]byte, error) {
	return proto.Marshal(&grainpb.EffectBatch{Effects: []*grainpb.Effect{{
		Id: "tell:" + id, Kind: EffectTell, ConversationId: conversationID, Text: payload}}})
}

// AdminReply is the payload of an admin's reply to a conversation.
func AdminReply(text string) string { return sysAdminReply + text }

// ReleasePayload hands a conversation back to the bot.
const ReleasePayload = sysRelease

// slotChange tells every person of the slot (and frees them when it was cancelled).
func (x *Effects) slotChange(ctx context.Context, e *grainpb.Effect) (string, int, error) {
	people, err := x.store.SlotPeople(ctx, e.SignupId, e.SlotId)
	if err != nil {
		return "", 0, err
	}
	// Each person is told, then freed: a retry after a failure finds the ones not yet done
	// still on the slot (telling twice is once: the message id is per change and person).
	for _, p := range people {
		payload := sysChanged + e.SlotId + "|" + e.Text
		if e.Kind == EffectSlotCancelled {
			payload = sysSlotCancelled + e.SlotId + "|" + e.Text
		}
		if err := x.tell(ctx, p, e.Id+":"+p, payload); err != nil {
			return "", 0, err
		}
		if e.Kind == EffectSlotCancelled {
			// Capacity 0: nobody waiting is offered a place of a cancelled slot.
			if _, _, err := x.store.CancelBooking(ctx, e.SignupId, e.SlotId, 0, p, x.cfg.HoldFor); err != nil {
				return "", 0, err
			}
		}
	}
	return "done", 0, nil
}

// parseChange splits "<slot>|<label>".
func parseChange(p string) (slot, label string) {
	slot, label, _ = strings.Cut(p, "|")
	return slot, label
}

// ConversationAdmin is what admins do to a conversation from the dashboard: answer the person
// (a HUMAN_AGENT message) and hand the conversation back to the bot. Both go through the
// outbox, so they are durable once accepted and reach the grain once.
type ConversationAdmin struct{ store storeAppender }

type storeAppender interface {
	AppendEffects(ctx context.Context, key string, batch []byte) error
}

// NewConversationAdmin returns the admin actions on store.
func NewConversationAdmin(store storeAppender) ConversationAdmin {
	return ConversationAdmin{store: store}
}

// Reply sends text to the person from an admin.
func (a ConversationAdmin) Reply(ctx context.Context, conversationID, text string) (string, error) {
	id := voluntree.NewID("ar_")
	b, err := TellEffect(conversationID, id, AdminReply(text))
	if err != nil {
		return "", err
	}
	return id, a.store.AppendEffects(ctx, conversationID, b)
}

// Release hands the conversation back to the bot.
func (a ConversationAdmin) Release(ctx context.Context, conversationID string) error {
	b, err := TellEffect(conversationID, voluntree.NewID("rl_"), ReleasePayload)
	if err != nil {
		return err
	}
	return a.store.AppendEffects(ctx, conversationID, b)
}
