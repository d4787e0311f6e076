package cluster

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
)

// TestVolunteerEffect: a change admins see (stage, email, slot, handoff) of a conversation
// with a signup gives one volunteer effect carrying the new view; anything else gives none.
func TestVolunteerEffect(t *testing.T) {
	now := time.Date(2030, 6, 1, 9, 0, 0, 0, time.UTC)
	base := &grainpb.ConversationState{PageId: "p", SenderId: "s", SenderName: "Ada", Channel: ChannelMessenger,
		SignupId: "su_1", OrgId: "acme", Stage: StageInvited, EffectSeq: 4, Messages: 1}
	cases := []struct {
		name   string
		change func(*grainpb.ConversationState)
		want   bool
	}{
		{"nothing seen changed", func(s *grainpb.ConversationState) { s.Messages = 2; s.Nonce = "x" }, false},
		{"stage", func(s *grainpb.ConversationState) { s.Stage = StageBooked; s.SlotId = "am" }, true},
		{"email verified", func(s *grainpb.ConversationState) { s.EmailVerified = true }, true},
		{"handoff", func(s *grainpb.ConversationState) { s.Handoff = true }, true},
		{"name", func(s *grainpb.ConversationState) { s.SenderName = "Ada L." }, true},
		{"channel", func(s *grainpb.ConversationState) { s.Channel = ChannelWebChat }, true},
		{"no signup", func(s *grainpb.ConversationState) { s.SignupId = ""; s.Stage = StageBooked }, false},
		{"no organization", func(s *grainpb.ConversationState) { s.OrgId = ""; s.Stage = StageBooked }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next := proto.Clone(base).(*grainpb.ConversationState)
			c.change(next)
			e, err := volunteerEffect("p:s", base, next, now)
			if err != nil {
				t.Fatal(err)
			}
			if (e != nil) != c.want {
				t.Fatalf("effect %v, want one: %v", e, c.want)
			}
			if e == nil {
				if next.EffectSeq != base.EffectSeq {
					t.Fatalf("effect seq moved to %d without an effect", next.EffectSeq)
				}
				return
			}
			var v voluntree.Volunteer
			if err := json.Unmarshal([]byte(e.Text), &v); err != nil {
				t.Fatal(err)
			}
			if e.Kind != EffectVolunteer || e.Id != "p:s:5" || next.EffectSeq != 5 || e.OrgId != "acme" ||
				v.ConversationID != "p:s" || v.SignupID != "su_1" || v.Stage != next.Stage || v.SlotID != next.SlotId ||
				v.EmailVerified != next.EmailVerified || v.Handoff != next.Handoff || v.Name != next.SenderName || !v.UpdatedAt.Equal(now) ||
				v.Version != 5 || v.Channel != next.Channel {
				t.Fatalf("effect %+v with view %+v", e, v)
			}
		})
	}
}

// TestRedeliveredTurnStaysATurn: a message that answered the bot is a turn of the
// conversation; redelivered (the state saved, the record lost), it gets the same answer — a
// turn again, not a new interest — and its name.
func TestRedeliveredTurnStaysATurn(t *testing.T) {
	e := requireEnv(t)
	u := uid(t)
	deps := e.grainDeps()
	id := voluntree.ConversationID("page"+u, "s"+u)
	g := &conversationGrain{deps: deps, id: id}
	// A person the bot is waiting for (stage invited), then their "yes".
	if _, err := e.store.SaveConversationEffects(context.Background(), id, "", 0, mustMarshal(t, &grainpb.ConversationState{
		PageId: "page" + u, SenderId: "s" + u, SenderName: "Ada", Stage: StageInvited, Channel: ChannelMessenger}), nil, "", ""); err != nil {
		t.Fatal(err)
	}
	yes := &grainpb.ConversationRequest{Messages: []*grainpb.Classified{{Id: "m1" + u, Kind: "message", PageId: "page" + u,
		SenderId: "s" + u, Text: "yes", Intent: "interested"}}}
	first, err := g.Handle(yes, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := (&conversationGrain{deps: deps, id: id}).Handle(yes, nil) // another activation: state from Redis
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*grainpb.ConversationResponse{first, again} {
		if len(r.Turns) != 1 || !r.Turns[0] || r.Names[0] != "Ada" {
			t.Fatalf("answers %+v and %+v: want a turn of Ada's both times", first, again)
		}
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
