package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
)

// Showing volunteers live. A conversation whose visible state (stage, email, slot, handoff)
// changes while it belongs to a signup appends a volunteer effect in the transaction that
// saves the new state; the effects worker publishes it on the organization's live feed, where
// the dashboard's volunteer list updates that row. The effect carries the view as JSON, with
// its version (the effect's sequence number in the conversation): a list keeps the view of the
// highest version of each conversation, whatever order redeliveries arrive in.

// EffectVolunteer publishes a volunteer's new view (Effect.Text: a voluntree.Volunteer).
const EffectVolunteer = "volunteer"

// volunteerView is what admins see of a conversation.
func volunteerView(id string, st *grainpb.ConversationState, at time.Time) voluntree.Volunteer {
	v := voluntree.Volunteer{
		ConversationID: id, SignupID: st.SignupId, Name: st.SenderName, Channel: st.Channel, Stage: st.Stage,
		Email: st.Email, EmailVerified: st.EmailVerified, SlotID: st.SlotId, Handoff: st.Handoff, UpdatedAt: at.UTC(),
		Version: st.EffectSeq,
	}
	if st.FirstInterestUnixNano != 0 {
		v.JoinedAt = time.Unix(0, st.FirstInterestUnixNano).UTC()
	}
	return v
}

// volunteerEffect returns the effect showing next's view when it differs from prev's (nil
// when nothing admins see changed, or the conversation has no signup or organization yet).
func volunteerEffect(id string, prev, next *grainpb.ConversationState, now time.Time) (*grainpb.Effect, error) {
	if next.SignupId == "" || next.OrgId == "" {
		return nil, nil
	}
	if prev.SignupId == next.SignupId && prev.Stage == next.Stage && prev.Email == next.Email &&
		prev.EmailVerified == next.EmailVerified && prev.SlotId == next.SlotId && prev.Handoff == next.Handoff &&
		prev.Channel == next.Channel && prev.SenderName == next.SenderName {
		return nil, nil
	}
	next.EffectSeq++ // the view's version: this effect's sequence
	b, err := json.Marshal(volunteerView(id, next, now))
	if err != nil {
		next.EffectSeq--
		return nil, fmt.Errorf("encode volunteer %s: %w", id, err)
	}
	return &grainpb.Effect{
		Id: id + ":" + strconv.FormatInt(next.EffectSeq, 10), Kind: EffectVolunteer, ConversationId: id,
		Channel: next.Channel, PageId: next.PageId, RecipientId: next.SenderId, OrgId: next.OrgId,
		SignupId: next.SignupId, PersonName: next.SenderName, Text: string(b), CreatedAtUnixNano: now.UnixNano(),
	}, nil
}

// volunteer publishes a volunteer effect's view on its organization's live feed — when the
// signup is that organization's (a page that moved to another organization keeps its old
// conversations: the new one must not see them).
func (x *Effects) volunteer(ctx context.Context, e *grainpb.Effect) (string, int, error) {
	var v voluntree.Volunteer
	if err := json.Unmarshal([]byte(e.Text), &v); err != nil || e.OrgId == "" {
		return "failed", 0, nil // not one this node wrote: nothing to show
	}
	su, err := x.signup(ctx, v.SignupID)
	if err != nil {
		return "", 0, err
	}
	if su == nil || su.OrgID != e.OrgId { // deleted, or another organization's
		return "dropped", 0, nil
	}
	if _, err := x.store.AppendEvent(ctx, e.OrgId, voluntree.Event{Type: voluntree.EventVolunteer, Volunteer: &v}); err != nil {
		return "", 0, err
	}
	return "done", 0, nil
}
