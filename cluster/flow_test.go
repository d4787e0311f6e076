package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
)

// flowHarness drives step() as the grain does, with a fixed clock, code and nonces.
type flowHarness struct {
	t     *testing.T
	st    *grainpb.ConversationState
	env   flowEnv
	codes int
	n     int
}

func newFlowHarness(t *testing.T) *flowHarness {
	su := &voluntree.Signup{ID: "su_1", OrgID: "org_1", Title: "Beach cleanup", TimeZone: "Europe/Paris",
		Slots: []voluntree.Slot{
			{ID: "am", Date: "2030-05-04", Start: "09:00", End: "12:00", Title: "Morning", Required: 5},
			{ID: "pm", Date: "2030-05-04", Start: "14:00", End: "17:00", Required: 2},
		}}
	h := &flowHarness{t: t, st: &grainpb.ConversationState{PageId: "P", SenderId: "U", SenderName: "Ada Lovelace", Stage: StageNew}}
	h.env = flowEnv{
		now: time.Date(2030, 4, 1, 10, 0, 0, 0, time.UTC), signup: su, orgID: "org_1",
		free: map[string]int{"am": 5, "pm": 0},
		answer: func(q string) (string, bool) {
			if strings.Contains(strings.ToLower(q), "park") {
				return "Parking is free at the north entrance.", true
			}
			return "", false
		},
		newCode: func() string { h.codes++; return fmt.Sprintf("%06d", 123455+h.codes) },
		nonce:   func() string { h.n++; return fmt.Sprintf("n%d", h.n) },
	}
	return h
}

func (h *flowHarness) say(kind, text, payload string, intent voluntree.Intent) []*grainpb.Effect {
	h.t.Helper()
	m := &grainpb.Classified{Id: fmt.Sprintf("m%d", h.st.Messages), Kind: kind, PageId: "P", SenderId: "U",
		SenderName: "Ada Lovelace", Text: text, Payload: payload, Intent: string(intent), PostId: "P_1"}
	h.st.Messages++
	return step(h.st, m, h.env)
}

func (h *flowHarness) msg(text string, intent voluntree.Intent) []*grainpb.Effect {
	return h.say(string(voluntree.KindMessage), text, "", intent)
}

func (h *flowHarness) tap(payload string) []*grainpb.Effect {
	return h.say(string(voluntree.KindPostback), "", payload, voluntree.IntentOther)
}

func (h *flowHarness) system(payload string) []*grainpb.Effect {
	return h.say(KindSystem, "", payload, "")
}

// kinds summarises effects as "kind: text" lines.
func kinds(effs []*grainpb.Effect) string {
	var b strings.Builder
	for _, e := range effs {
		fmt.Fprintf(&b, "%s: %s\n", e.Kind, e.Text)
	}
	return b.String()
}

func (h *flowHarness) expect(effs []*grainpb.Effect, stage string, want ...string) {
	h.t.Helper()
	got := kinds(effs)
	if h.st.Stage != stage {
		h.t.Fatalf("stage %q, want %q; effects:\n%s", h.st.Stage, stage, got)
	}
	if len(effs) != len(want) {
		h.t.Fatalf("%d effects, want %d:\n%s", len(effs), len(want), got)
	}
	for i, w := range want {
		kind, text, _ := strings.Cut(w, ": ")
		if effs[i].Kind != kind || !strings.Contains(effs[i].Text, text) {
			h.t.Fatalf("effect %d: %s: %q, want %s containing %q\nall:\n%s", i, effs[i].Kind, effs[i].Text, kind, text, got)
		}
	}
}

func TestFlowFromCommentToBooking(t *testing.T) {
	h := newFlowHarness(t)
	// An interested comment: exactly one private reply, to that comment.
	effs := h.say(string(voluntree.KindComment), "Count me in!", "", voluntree.IntentInterested)
	h.expect(effs, StageInvited, `private_reply: Thanks for your interest in "Beach cleanup"`)
	if effs[0].CommentId != "m0" || effs[0].Id != "P:U:1" || effs[0].From != "bot" {
		t.Fatalf("private reply %+v", effs[0])
	}
	h.expect(h.say(string(voluntree.KindComment), "Me too again", "", voluntree.IntentInterested), StageInvited)

	// The answer in Messenger confirms: the email is asked, with the user_email quick reply.
	effs = h.msg("yes!", voluntree.IntentInterested)
	h.expect(effs, StageEmail, "send: What's your email address?")
	if !effs[0].AskEmail || effs[0].WindowUntilUnixNano != h.env.now.Add(24*time.Hour).UnixNano() {
		t.Fatalf("email question %+v", effs[0])
	}
	h.expect(h.msg("hmm", voluntree.IntentOther), StageEmail, "send: What's your email address?")
	h.expect(h.msg("ada at example", voluntree.IntentOther), StageEmail, "send: What's your email address?")

	// A question mid-form is answered, and the form resumes where it was.
	h.expect(h.msg("Where do I park?", voluntree.IntentQuestion), StageEmail,
		"send: Parking is free", "send: What's your email address?")
	h.expect(h.msg("Is there a dress code?", voluntree.IntentQuestion), StageEmail,
		"send: I've asked the team", "notify_admins: Ada Lovelace asks: Is there a dress code?", "send: What's your email address?")

	// The address, tapped as the user_email quick reply: a code goes by email.
	effs = h.say(string(voluntree.KindMessage), "ada@example.org", "ada@example.org", voluntree.IntentOther)
	h.expect(effs, StageCode, "email: 123456", "send: We've sent a 6-digit code to ada@example.org")
	if effs[0].EmailTo != "ada@example.org" || h.st.CodeHash == "" || strings.Contains(h.st.String(), "123456") {
		t.Fatalf("code effect %+v, state keeps the code's hash only: %v", effs[0], h.st)
	}
	// Two wrong codes, then the right one. A bare code the model takes for a decline is still
	// the answer to the question asked.
	h.expect(h.msg("111111", voluntree.IntentDecline), StageCode, "send: 2 tries left")
	h.expect(h.msg("222222", voluntree.IntentOther), StageCode, "send: 1 tries left")
	effs = h.msg("it's 123456", voluntree.IntentOther)
	h.expect(effs, StageSlot, "send: Which slot suits you?")
	if !h.st.EmailVerified || len(effs[0].Options) != 1 || effs[0].Options[0].Payload != "SLOT:am:"+h.st.Nonce ||
		effs[0].Options[0].Title != "Sat 4 May 09:00" || !strings.Contains(effs[0].Text, "\n1. Sat 4 May, 09:00–12:00 · Morning") {
		t.Fatalf("only the free slot is offered: %+v", effs[0].Options)
	}
	offered := effs[0].Options[0].Payload

	// A stale tap (an older nonce) is refused and the slots offered again.
	h.expect(h.tap("SLOT:am:n0"), StageSlot, "send: That button is from an earlier message.")
	if h.st.Nonce == strings.TrimPrefix(offered, "SLOT:am:") {
		t.Fatal("re-offering must change the nonce")
	}
	current := "SLOT:am:" + h.st.Nonce
	effs = h.tap(current)
	h.expect(effs, StageBooking, "book: ")
	if e := effs[0]; e.SignupId != "su_1" || e.SlotId != "am" || e.Capacity != 5 || e.PreviousSlotId != "" {
		t.Fatalf("book effect %+v", e)
	}
	h.expect(h.tap(current), StageBooking) // a double tap books nothing more

	// (The same, typed: "1" picks the first slot listed.)
	h2 := newFlowHarness(t)
	h2.st.Stage, h2.st.Email, h2.st.EmailVerified = StageInvited, "ada@example.org", true
	h2.msg("yes", voluntree.IntentInterested)
	if effs := h2.msg("1", voluntree.IntentOther); len(effs) != 1 || effs[0].Kind != EffectBook || effs[0].SlotId != "am" {
		t.Fatalf("typing 1: %s", kinds(effs))
	}

	// The booking's outcome: a confirmation in the signup's time zone, with change and cancel.
	effs = h.system("booked:am")
	h.expect(effs, StageBooked, "send: You're booked: Sat 4 May 2030, 09:00–12:00 (Europe/Paris) · Morning")
	if len(effs[0].Options) != 2 || effs[0].Options[0].Payload != PayloadChange || effs[0].Options[1].Payload != PayloadCancel {
		t.Fatalf("confirmation options %+v", effs[0].Options)
	}
	// Cancel frees the slot.
	effs = h.tap(PayloadCancel)
	h.expect(effs, StageCancelled, "cancel_booking: ", "send: Your place is cancelled", "notify_admins: Ada Lovelace cancelled")
	if effs[0].SlotId != "am" || effs[0].Capacity != 5 || h.st.SlotId != "" {
		t.Fatalf("cancel effect %+v", effs[0])
	}
}

func TestFlowCodeExpiresAndLocks(t *testing.T) {
	h := newFlowHarness(t)
	h.msg("I want to help", voluntree.IntentInterested)
	h.expect(h.tap(PayloadYes), StageEmail, "send: What's your email")
	h.msg("bo@example.org", voluntree.IntentOther)
	// Three wrong codes lock it: the address is asked again.
	h.msg("000001", voluntree.IntentOther)
	h.msg("000002", voluntree.IntentOther)
	h.expect(h.msg("000003", voluntree.IntentOther), StageEmail, "send: that was the last try")
	h.expect(h.msg("123456", voluntree.IntentOther), StageEmail, "send: What's your email address?")
	// A new code, which expires after 15 minutes: a new one is sent.
	h.expect(h.msg("bo@example.org", voluntree.IntentOther), StageCode, "email: 123457", "send: We've sent")
	h.env.now = h.env.now.Add(16 * time.Minute)
	h.expect(h.msg("123457", voluntree.IntentOther), StageCode, "send: That code has expired.", "email: 123458", "send: We've sent")
	h.expect(h.msg("123458", voluntree.IntentOther), StageSlot, "send: Which slot")
}

func TestFlowHandoffDeclineAndWaitlist(t *testing.T) {
	h := newFlowHarness(t)
	h.st.Stage, h.st.Email, h.st.EmailVerified = StageInvited, "ada@example.org", true
	h.expect(h.msg("yes", voluntree.IntentInterested), StageSlot, "send: Great! Which slot")
	// Talk to a person: the bot says so once, tells the admins, then stays silent.
	h.expect(h.msg("Can I talk to a person?", voluntree.IntentQuestion), StageSlot, "send: someone from the team", "notify_admins: asks to talk to a person")
	h.expect(h.msg("hello?", voluntree.IntentOther), StageSlot)
	effs := h.system("admin:Hi Ada, parking is at the north gate.")
	h.expect(effs, StageSlot, "send: Hi Ada, parking")
	if effs[0].Tag != "HUMAN_AGENT" || effs[0].From != "admin" || effs[0].WindowUntilUnixNano != h.env.now.Add(7*24*time.Hour).UnixNano() {
		t.Fatalf("admin reply %+v", effs[0])
	}
	h.system("release")
	// Every slot full: waitlists are offered; the outcome says the position.
	h.env.free = map[string]int{}
	effs = h.msg("ok", voluntree.IntentOther)
	h.expect(effs, StageSlot, "send: All slots are full")
	if len(effs[0].Options) != 2 || effs[0].Options[1].Title != "Wait 4 May 14:00" {
		t.Fatalf("waitlist options %+v", effs[0].Options)
	}
	h.tap(effs[0].Options[1].Payload)
	h.expect(h.system("waitlisted:pm:3"), StageWaitlisted, "send: you're number 3 on the waitlist")
	// A place frees up: it is offered with a fresh nonce; taking it books (the same slot).
	effs = h.system("offer:pm")
	h.expect(effs, StageSlot, "send: a place opened up")
	effs = h.tap(effs[0].Options[0].Payload)
	h.expect(effs, StageBooking, "book: ")
	if effs[0].SlotId != "pm" || effs[0].PreviousSlotId != "" || effs[0].ReleaseSlotId != "" {
		t.Fatalf("book the offered place %+v", effs[0])
	}
	h.system("booked:pm")
	// Decline withdraws: the place is freed and messages stop.
	h.expect(h.msg("Sorry, I can't make it anymore", voluntree.IntentDecline), StageDeclined,
		"cancel_booking: ", "notify_admins: withdrew", "send: We won't message you again.")
	h.expect(h.msg("ok", voluntree.IntentOther), StageDeclined)
	h.expect(h.msg("Where do I park?", voluntree.IntentQuestion), StageDeclined)
}

// TestFlowCancelWhileBookingAndChanges: a cancel while the booking is on its way undoes the
// booking when its outcome comes; a booked person changing keeps their place when there is no
// other slot, and an offer that is not waited for any more is passed on.
func TestFlowCancelWhileBookingAndChanges(t *testing.T) {
	h := newFlowHarness(t)
	h.st.Stage, h.st.Email, h.st.EmailVerified = StageInvited, "ada@example.org", true
	effs := h.msg("yes", voluntree.IntentInterested)
	h.tap(effs[0].Options[0].Payload)
	if h.st.Stage != StageBooking {
		t.Fatalf("stage %s", h.st.Stage)
	}
	h.expect(h.tap(PayloadCancel), StageCancelled, "cancel_booking: ", "send: Your place is cancelled", "notify_admins: ")
	effs = h.system("booked:am")
	h.expect(effs, StageCancelled, "cancel_booking: ")
	if effs[0].SlotId != "am" {
		t.Fatalf("the late booking is undone on its slot: %+v", effs[0])
	}
	// An offer for a slot the person no longer waits for is passed on.
	effs = h.system("offer:pm")
	h.expect(effs, StageCancelled, "cancel_booking: ")

	// One slot only: "change" keeps the booking.
	h2 := newFlowHarness(t)
	h2.env.signup.Slots = h2.env.signup.Slots[:1]
	h2.st.Stage, h2.st.SlotId, h2.st.SignupId = StageBooked, "am", "su_1"
	h2.expect(h2.tap(PayloadChange), StageBooked, "send: There is no other upcoming slot, so you keep your place.")
	if h2.st.SlotId != "am" || h2.st.ChangingFrom != "" {
		t.Fatalf("after change: slot %q changing from %q", h2.st.SlotId, h2.st.ChangingFrom)
	}
	// Two slots: the change books the new one first; a full one keeps the old place.
	h3 := newFlowHarness(t)
	h3.env.free["pm"] = 1
	h3.st.Stage, h3.st.SlotId, h3.st.SignupId = StageBooked, "am", "su_1"
	effs = h3.tap(PayloadChange)
	if len(effs) != 1 || len(effs[0].Options) != 1 || !strings.HasPrefix(effs[0].Options[0].Payload, "SLOT:pm:") {
		t.Fatalf("change offers the other slot only: %s", kinds(effs))
	}
	effs = h3.tap(effs[0].Options[0].Payload)
	if effs[0].Kind != EffectBook || effs[0].PreviousSlotId != "am" || effs[0].ReleaseSlotId != "" {
		t.Fatalf("book for a change %+v", effs[0])
	}
	h3.expect(h3.system("full:pm"), StageBooked, "send: you keep your place: Sat 4 May 2030, 09:00–12:00")
	if h3.st.SlotId != "am" {
		t.Fatalf("slot after a full change: %q", h3.st.SlotId)
	}
}

// TestFlowLateOutcomesAndChangesDuringAChange: a late duplicate of the person's own booking is
// not undone; a slot cancelled or moved while its person picks another is handled; an offer
// can be taken during a handoff.
func TestFlowLateOutcomesAndChangesDuringAChange(t *testing.T) {
	h := newFlowHarness(t)
	h.st.Stage, h.st.SlotId, h.st.SignupId = StageBooked, "am", "su_1"
	h.expect(h.system("booked:am"), StageBooked) // a late duplicate: nothing undone

	// Changing from am, the organisers move am: the person is told.
	h.env.free["pm"] = 1
	h.tap(PayloadChange)
	if h.st.ChangingFrom != "am" || h.st.Stage != StageSlot {
		t.Fatalf("changing: %+v", h.st)
	}
	h.expect(h.system("changed:am|Sat 4 May 2030, 09:00–12:00 (Europe/Paris)"), StageSlot, "send: Update from the organisers")
	// ... then cancel it: nothing is kept any more, and a later full slot does not bring it back.
	h.expect(h.system("cancelled:am|Sat 4 May 2030, 09:00–12:00 (Europe/Paris)"), StageSlot, "send: Sorry: the organisers cancelled")
	if h.st.ChangingFrom != "" || h.st.SlotId != "" {
		t.Fatalf("after the cancellation: changing from %q, slot %q", h.st.ChangingFrom, h.st.SlotId)
	}

	// An offer made during a handoff can be taken.
	h2 := newFlowHarness(t)
	h2.st.Stage, h2.st.SlotId, h2.st.SignupId, h2.st.Handoff = StageWaitlisted, "pm", "su_1", true
	effs := h2.system("offer:pm")
	effs = h2.tap(effs[0].Options[0].Payload)
	if len(effs) != 1 || effs[0].Kind != EffectBook || effs[0].SlotId != "pm" {
		t.Fatalf("taking the offer during a handoff: %s", kinds(effs))
	}
}
