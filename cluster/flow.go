package cluster

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
)

// The volunteer conversation, as a pure transition: step(state, message, env) changes the
// state and returns the effects to perform. It reads nothing and calls nothing: what it
// needs (the signup, the slots' free places, the facts' answers, a code) is in env, loaded by
// the grain beforehand. The grain saves the new state and appends the effects to the outbox
// in one Redis transaction; the effects worker performs them.
//
// An interested comment gets one private reply inviting the person to continue in Messenger.
// Their answer starts a form of required slots, asked one at a time (Rasa's form): confirm,
// email, the 6-digit code sent to that address, the slot. The slot being asked is recorded
// (Asking), each answer is validated, and a question, a "talk to a person" or a decline at
// any step is handled and the form resumes where it was.

// Stages of a conversation (ConversationState.Stage).
const (
	StageNew        = "new"        // nothing expressed yet
	StageInterested = "interested" // interested, on a page without a signup to run the form for
	StageInvited    = "invited"    // private reply sent: waiting for the person to answer
	StageConfirm    = "confirm"    // the form: asking to confirm
	StageEmail      = "email"      // asking for the email address
	StageCode       = "code"       // asking for the code sent to it
	StageSlot       = "slot"       // asking for a slot
	StageBooking    = "booking"    // the booking effect is on its way
	StageBooked     = "booked"
	StageWaitlisted = "waitlisted"
	StageDeclined   = "declined" // withdrew: no more messages
	StageCancelled  = "cancelled"
)

// Stages lists every stage (metrics export them all, at 0 first).
func Stages() []string {
	return []string{StageNew, StageInterested, StageInvited, StageConfirm, StageEmail, StageCode, StageSlot,
		StageBooking, StageBooked, StageWaitlisted, StageDeclined, StageCancelled}
}

// Effect kinds.
const (
	EffectSend          = "send"          // a message to the person (Messenger or web chat)
	EffectPrivateReply  = "private_reply" // Messenger private reply to a comment
	EffectCommentReply  = "comment_reply" // public reply to a comment
	EffectEmail         = "email"         // through the mail queue
	EffectBook          = "book"          // book a slot (or join its waitlist)
	EffectCancelBooking = "cancel_booking"
	EffectNotifyAdmins  = "notify_admins"
)

// Channels of a conversation.
const (
	ChannelMessenger = "messenger"
	ChannelWebChat   = "webchat"
)

// KindSystem is a message the system sends a conversation: the outcome of a booking, a place
// offered from the waitlist, an admin's reply. Its payload says which (see systemPayload).
const KindSystem = "system"

// Payloads of buttons and quick replies, and of system messages.
const (
	PayloadYes        = "YES"
	PayloadNo         = "NO"
	PayloadCancel     = "CANCEL"
	PayloadChange     = "CHANGE"
	PayloadHuman      = "HUMAN"
	PayloadStart      = "START"   // a web chat session opened: greet and ask
	slotPrefix        = "SLOT:"   // SLOT:<slot id>:<nonce>
	sysBooked         = "booked:" // booked:<slot id>
	sysWaitlisted     = "waitlisted:"
	sysOffer          = "offer:"     // offer:<slot id>: a freed place is held for the person
	sysFull           = "full:"      // full:<slot id>: a change found the new slot full (the old place is kept)
	sysAdminReply     = "admin:"     // admin:<text>: an admin's reply, sent with the HUMAN_AGENT tag
	sysChanged        = "changed:"   // changed:<slot>|<old label>: the organisers moved the slot
	sysSlotCancelled  = "cancelled:" // cancelled:<slot>|<label>: the organisers cancelled it
	sysRelease        = "release"    // an admin hands the conversation back to the bot
	messengerWindow   = 24 * time.Hour
	humanAgentWindow  = 7 * 24 * time.Hour
	maxCodeSends      = 5  // codes sent for one address
	maxCodeSendsTotal = 10 // codes sent in one conversation, whatever the addresses
)

// flowEnv is what a transition may know besides the state and the message.
type flowEnv struct {
	conversationID string // the grain's id (a Messenger PSID may differ from the commenter's id)
	now            time.Time
	signup         *voluntree.Signup // nil: no signup is known for the conversation
	orgID          string
	free           map[string]int                 // free places per slot id (capacity − booked − held); nil: loadFree
	loadFree       func() (map[string]int, error) // reads free when a transition first needs it
	loadErr        *error                         // where a failed load is reported (the grain fails the message)
	answer         func(q string) (string, bool)  // the best fact for a question, if one matches well
	newCode        func() string                  // a fresh 6-digit code
	nonce          func() string
}

// flow accumulates one transition's effects.
type flow struct {
	st  *grainpb.ConversationState
	m   *grainpb.Classified
	env flowEnv
	out []*grainpb.Effect
}

// step applies message m to st (changed in place) and returns the effects.
func step(st *grainpb.ConversationState, m *grainpb.Classified, env flowEnv) []*grainpb.Effect {
	f := &flow{st: st, m: m, env: env}
	f.run()
	return f.out
}

var (
	reCancel = regexp.MustCompile(`(?i)^\s*(cancel|cancel (my|the) (booking|place|slot|spot))\s*[.!]*\s*$`)
	reChange = regexp.MustCompile(`(?i)^\s*(change|change (my )?(slot|time|booking)|another (slot|time))\s*[.!]*\s*$`)
	reHuman  = regexp.MustCompile(`(?i)\b(talk to|speak (to|with)|contact) (a |an )?(person|human|someone|agent|organi[sz]er|team)\b|^\s*(human|agent)\s*$`)
	reCode   = regexp.MustCompile(`\b(\d{6})\b`)
	reEmail  = regexp.MustCompile(`[^\s<>()"',;:]+@[^\s<>()"',;:]+\.[^\s<>()"',;:]+`)
	reResend = regexp.MustCompile(`(?i)\b(resend|send (it |the code )?again|new code)\b`)
)

func (f *flow) run() {
	st, m := f.st, f.m
	switch m.Kind {
	case KindSystem:
		f.system()
		return
	case string(voluntree.KindComment):
		f.comment()
		return
	}
	// A private message (Messenger text or tap, web chat).
	st.LastInboundUnixNano = f.env.now.UnixNano()
	if st.Channel == "" {
		st.Channel = ChannelMessenger
		if m.PageId == voluntree.WebChatPage {
			st.Channel = ChannelWebChat
		}
	}
	text := strings.TrimSpace(m.Text)
	switch {
	case m.Payload == PayloadHuman || reHuman.MatchString(text):
		if !st.Handoff {
			st.Handoff = true
			f.send("Of course: someone from the team will answer you here soon.", nil)
			f.notify(fmt.Sprintf("%s asks to talk to a person.", f.who()))
		}
		return
	case st.Handoff && (m.Payload == PayloadCancel || reCancel.MatchString(text)):
		f.cancel() // a cancellation is never lost, a person answering or not
		f.notify(fmt.Sprintf("%s cancelled while waiting for the team.", f.who()))
		return
	case st.Handoff && strings.HasPrefix(m.Payload, slotPrefix) && st.Stage == StageSlot:
		f.slot() // a place offered while a person handles the conversation can still be taken
		return
	case st.Handoff:
		return // a person answers: the bot stays silent
	case m.Payload == PayloadStart:
		if f.env.signup != nil && (st.Stage == StageNew || st.Stage == StageDeclined || st.Stage == StageCancelled) {
			st.SignupId, st.Stage = f.env.signup.ID, StageConfirm
			if st.FirstInterestUnixNano == 0 {
				st.FirstInterestUnixNano = f.env.now.UnixNano()
			}
			// One message: the greeting and the question, with its buttons.
			f.askConfirmAfter(fmt.Sprintf("Hi%s! Thanks for stopping by. ", firstName(st.SenderName)))
		}
		return
	case st.Stage == StageDeclined && voluntree.Intent(m.Intent) != voluntree.IntentInterested && m.Payload != PayloadYes:
		return // withdrew: no more messages until they come back
	case m.Payload == PayloadCancel || reCancel.MatchString(text):
		f.cancel()
		return
	case m.Payload == PayloadChange || reChange.MatchString(text):
		f.change()
		return
	case voluntree.Intent(m.Intent) == voluntree.IntentDecline && m.Payload == "" && st.Stage != StageConfirm && !f.answersForm():
		f.decline()
		return
	}
	if strings.HasPrefix(m.Payload, slotPrefix) && st.Stage != StageSlot {
		f.stale()
		return
	}
	if f.env.signup == nil {
		if voluntree.Intent(m.Intent) == voluntree.IntentInterested && st.Stage == StageNew {
			st.Stage = StageInterested
		}
		return // no signup to sign up for: counted only
	}
	switch st.Stage {
	case StageNew, StageInterested, StageInvited, StageDeclined, StageCancelled:
		f.startForm()
	case StageConfirm:
		f.confirm()
	case StageEmail:
		f.email()
	case StageCode:
		f.code()
	case StageSlot:
		f.slot()
	case StageBooking:
		f.questionOr(func() {}) // the booking answers shortly
	case StageBooked, StageWaitlisted:
		f.questionOr(func() {
			if voluntree.Intent(m.Intent) == voluntree.IntentThanks {
				f.send("Thank you! See you there.", nil)
			}
		})
	}
}

// comment: an interested comment gets one private reply (and, if the signup asks, a public one).
func (f *flow) comment() {
	st, m := f.st, f.m
	if voluntree.Intent(m.Intent) != voluntree.IntentInterested {
		return
	}
	if st.FirstInterestUnixNano == 0 {
		st.FirstInterestUnixNano = f.env.now.UnixNano()
	}
	if f.env.signup == nil {
		if st.Stage == StageNew {
			st.Stage = StageInterested
		}
		return
	}
	switch st.Stage {
	case StageNew, StageInterested, StageDeclined, StageCancelled:
	default:
		return // already in the conversation: one invitation is enough
	}
	if m.CreatedAtUnixNano != 0 && f.env.now.Sub(time.Unix(0, m.CreatedAtUnixNano)) > 7*24*time.Hour {
		return // Messenger allows a private reply within 7 days of the comment
	}
	st.Stage, st.Asking, st.SignupId, st.RepliedCommentId = StageInvited, StageConfirm, f.env.signup.ID, m.Id
	if st.Channel == "" {
		st.Channel = ChannelMessenger
	}
	name := firstName(m.SenderName)
	f.emit(&grainpb.Effect{Kind: EffectPrivateReply, CommentId: m.Id,
		Text: fmt.Sprintf("Hi%s! Thanks for your interest in %q. Can we count on you? Answer here and we'll find you a slot.", name, f.env.signup.Title)})
	if f.env.signup.PublicReply {
		f.emit(&grainpb.Effect{Kind: EffectCommentReply, CommentId: m.Id,
			Text: fmt.Sprintf("Thank you%s! We've sent you a private message.", name)})
	}
}

func (f *flow) startForm() {
	st := f.st
	st.SignupId = f.env.signup.ID
	if st.FirstInterestUnixNano == 0 {
		st.FirstInterestUnixNano = f.env.now.UnixNano()
	}
	in := voluntree.Intent(f.m.Intent)
	if st.Stage == StageInvited && (in == voluntree.IntentInterested || f.m.Payload == PayloadYes) {
		f.afterConfirm()
		return
	}
	if f.question() {
		f.answerQuestion()
	}
	st.Stage = StageConfirm
	f.askConfirm()
}

func (f *flow) askConfirm() { f.askConfirmAfter("") }

// askConfirmAfter asks to confirm, the question after intro.
func (f *flow) askConfirmAfter(intro string) {
	f.st.Asking = StageConfirm
	f.send(fmt.Sprintf("%sWould you like to volunteer for %q?", intro, f.env.signup.Title),
		[]*grainpb.Option{{Title: "Yes, count me in", Payload: PayloadYes}, {Title: "No, thanks", Payload: PayloadNo}})
}

func (f *flow) confirm() {
	in := voluntree.Intent(f.m.Intent)
	switch {
	case f.m.Payload == PayloadYes || (f.m.Payload == "" && in == voluntree.IntentInterested):
		f.afterConfirm()
	case f.m.Payload == PayloadNo || in == voluntree.IntentDecline:
		f.decline()
	case f.question():
		f.answerQuestion()
		f.askConfirm()
	default:
		f.askConfirm()
	}
}

// afterConfirm asks for the next missing slot of the form.
func (f *flow) afterConfirm() {
	if f.st.EmailVerified && f.st.Email != "" {
		f.askSlot("Great!")
		return
	}
	f.askEmail("Great! What's your email address? We'll send you a code to check it.")
}

func (f *flow) askEmail(text string) {
	f.st.Stage, f.st.Asking = StageEmail, StageEmail
	f.emit(&grainpb.Effect{Kind: EffectSend, Text: text, AskEmail: true})
}

func (f *flow) email() {
	addr := reEmail.FindString(f.m.Text)
	if f.m.Payload != "" && reEmail.MatchString(f.m.Payload) {
		addr = f.m.Payload // the user_email quick reply
	}
	if addr == "" {
		if f.question() {
			f.answerQuestion()
		}
		f.askEmail("What's your email address? (for example name@example.org)")
		return
	}
	email, err := voluntree.NormalizeEmail(strings.Trim(addr, ".!?"))
	if err != nil {
		f.askEmail("That doesn't look like an email address. Could you type it again?")
		return
	}
	if !strings.EqualFold(email, f.st.Email) {
		f.st.CodeSends = 0
	}
	f.st.Email, f.st.EmailVerified = email, false
	f.sendCode()
}

// sendCode emails a new code (at most maxCodeSends per address) and asks for it.
func (f *flow) sendCode() {
	st := f.st
	if st.CodeSends >= maxCodeSends || st.CodeSendsTotal >= maxCodeSendsTotal {
		f.askEmail("We've sent too many codes to that address. Please give another email address, or type \"talk to a person\".")
		return
	}
	code := f.env.newCode()
	st.CodeHash = voluntree.HashEmailCode(f.conversationID(), st.Email, code)
	st.CodeExpiresUnix = f.env.now.Add(voluntree.EmailCodeTTL).Unix()
	st.CodeAttempts = 0
	st.CodeSends++
	st.CodeSendsTotal++
	st.Stage, st.Asking = StageCode, StageCode
	f.emit(&grainpb.Effect{Kind: EffectEmail, EmailTo: st.Email, EmailSubject: "Your code: " + code,
		Text: fmt.Sprintf("Your code to volunteer for %q is %s.\n\nIt is valid for 15 minutes. If you did not ask for it, ignore this email.\n", f.env.signup.Title, code)})
	f.send(fmt.Sprintf("We've sent a 6-digit code to %s. Please type it here (valid 15 minutes).", st.Email), nil)
}

func (f *flow) code() {
	st, text := f.st, f.m.Text
	if addr := reEmail.FindString(text); addr != "" || (f.m.Payload != "" && reEmail.MatchString(f.m.Payload)) {
		f.email() // another address
		return
	}
	if reResend.MatchString(text) {
		f.sendCode()
		return
	}
	code := reCode.FindString(text)
	if code == "" {
		if f.question() {
			f.answerQuestion()
		}
		f.send(fmt.Sprintf("Please type the 6-digit code we sent to %s, or \"resend\" for a new one.", st.Email), nil)
		return
	}
	if f.env.now.Unix() > st.CodeExpiresUnix {
		f.send("That code has expired.", nil)
		f.sendCode()
		return
	}
	if voluntree.HashEmailCode(f.conversationID(), st.Email, code) != st.CodeHash {
		st.CodeAttempts++
		if st.CodeAttempts >= voluntree.EmailCodeAttempts {
			st.CodeHash = ""
			f.askEmail("That code is wrong, and that was the last try. Type your email address again for a new code.")
			return
		}
		f.send(fmt.Sprintf("That code is not right. %d tries left.", voluntree.EmailCodeAttempts-int(st.CodeAttempts)), nil)
		return
	}
	st.EmailVerified, st.CodeHash = true, ""
	f.askSlot("Thanks, your email is verified.")
}

// askSlot offers the slots with free places (or, when all are full, their waitlists).
func (f *flow) askSlot(intro string) {
	st := f.st
	st.Stage, st.Asking = StageSlot, StageSlot
	st.Nonce = f.env.nonce()
	var free, full []*grainpb.Option
	var freeLines, fullLines []string
	for _, sl := range f.env.signup.Slots {
		if f.past(sl) || sl.Cancelled || sl.ID == st.ChangingFrom { // the place kept while changing
			continue
		}
		// A quick reply's title has 20 characters at most: the text lists the slots in full.
		o := &grainpb.Option{Title: f.slotTitle(sl), Payload: slotPrefix + sl.ID + ":" + st.Nonce}
		if f.freePlaces(sl.ID) > 0 {
			free = append(free, o)
			freeLines = append(freeLines, f.slotLabel(sl, true))
		} else {
			o.Title = "Wait " + f.slotTitleNoDay(sl)
			full = append(full, o)
			fullLines = append(fullLines, f.slotLabel(sl, true))
		}
	}
	list := func(lines []string) string {
		var b strings.Builder
		for i, l := range lines[:min(len(lines), 13)] {
			fmt.Fprintf(&b, "\n%d. %s", i+1, l)
		}
		return b.String()
	}
	switch {
	case len(free) > 0:
		f.send(intro+" Which slot suits you?"+list(freeLines), limitOptions(free))
	case len(full) > 0:
		f.send(intro+" All slots are full at the moment. Join a waitlist? We'll message you when a place frees up."+list(fullLines), limitOptions(full))
	case st.ChangingFrom != "":
		st.Stage, st.Asking, st.SlotId, st.ChangingFrom = StageBooked, "", st.ChangingFrom, ""
		f.send(intro+" There is no other upcoming slot, so you keep your place.", nil)
	default:
		st.Stage, st.Asking = StageCancelled, ""
		f.send(intro+" There are no upcoming slots left. Thank you for offering your help!", nil)
	}
	st.Options = nil
	for _, o := range append(free, full...) {
		st.Options = append(st.Options, strings.TrimPrefix(o.Payload, slotPrefix))
	}
}

// freePlaces is a slot's free places, read (once a transition) when first needed.
func (f *flow) freePlaces(slotID string) int {
	if f.env.free == nil && f.env.loadFree != nil {
		free, err := f.env.loadFree()
		if err != nil {
			if f.env.loadErr != nil {
				*f.env.loadErr = err
			}
			free = map[string]int{}
		}
		f.env.free = free
	}
	return f.env.free[slotID]
}

// Messenger shows at most 13 quick replies.
func limitOptions(o []*grainpb.Option) []*grainpb.Option { return o[:min(len(o), 13)] }

func (f *flow) slot() {
	st := f.st
	payload := f.m.Payload
	if !strings.HasPrefix(payload, slotPrefix) {
		// A typed number picks the n-th slot listed.
		if n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(f.m.Text), ".")); err == nil && n >= 1 && n <= len(st.Options) {
			payload = slotPrefix + st.Options[n-1]
		}
	}
	slotID, nonce, ok := strings.Cut(strings.TrimPrefix(payload, slotPrefix), ":")
	if !strings.HasPrefix(payload, slotPrefix) || !ok {
		if f.question() {
			f.answerQuestion()
		}
		f.askSlot("Please pick a slot.")
		return
	}
	sl, known := f.env.signup.Slot(slotID)
	if nonce != st.Nonce || !known || f.past(sl) || sl.Cancelled {
		f.askSlot("That button is from an earlier message.")
		return
	}
	// A booked person changing keeps their place until the new one is booked (PreviousSlotId);
	// a person waiting or holding a place elsewhere leaves it once booked (ReleaseSlotId).
	release := ""
	if st.SlotId != "" && st.SlotId != st.ChangingFrom && st.SlotId != sl.ID {
		release = st.SlotId
	}
	f.emit(&grainpb.Effect{Kind: EffectBook, SignupId: f.env.signup.ID, SlotId: sl.ID, Capacity: int32(sl.Required),
		PreviousSlotId: st.ChangingFrom, ReleaseSlotId: release, PersonName: st.SenderName})
	st.Stage, st.Asking = StageBooking, ""
	st.Nonce = "" // one tap books: a second tap of the same button is stale
}

// answersForm reports whether the message is a valid answer to the slot being asked: then it
// is that answer, whatever the model made of it (a bare code can look like anything).
func (f *flow) answersForm() bool {
	text := strings.TrimSpace(f.m.Text)
	switch f.st.Stage {
	case StageEmail:
		return reEmail.MatchString(text) || reEmail.MatchString(f.m.Payload)
	case StageCode:
		return reCode.MatchString(text) || reEmail.MatchString(text) || reResend.MatchString(text)
	case StageSlot:
		_, err := strconv.Atoi(strings.Trim(text, "."))
		return strings.HasPrefix(f.m.Payload, slotPrefix) || err == nil
	}
	return false
}

// stale answers a slot button tapped when no slot is being asked.
func (f *flow) stale() {
	st := f.st
	if sl, ok := f.slotOf(st.SlotId); ok && st.Stage == StageBooked {
		f.send(fmt.Sprintf("That button is from an earlier message. You're booked: %s.", f.slotLabel(sl, false)),
			[]*grainpb.Option{{Title: "Change slot", Payload: PayloadChange}, {Title: "Cancel", Payload: PayloadCancel}})
		return
	}
	if st.Stage == StageBooking {
		return // the booking answers shortly
	}
	f.send("That button is from an earlier message.", nil)
}

// system: what the effects worker or an admin tells the conversation.
func (f *flow) system() {
	st, p := f.st, f.m.Payload
	outcome := strings.HasPrefix(p, sysBooked) || strings.HasPrefix(p, sysWaitlisted) || strings.HasPrefix(p, sysFull)
	if outcome && st.Stage != StageBooking {
		// The person cancelled or withdrew while the booking was on its way: undo it — unless
		// it is the place the conversation holds (a late duplicate of its own booking).
		slotID := strings.TrimPrefix(strings.TrimPrefix(p, sysBooked), sysWaitlisted)
		if strings.HasPrefix(p, sysWaitlisted) {
			slotID = slotID[:max(0, strings.LastIndexByte(slotID, ':'))]
		}
		if !strings.HasPrefix(p, sysFull) && slotID != "" && slotID != st.SlotId && slotID != st.ChangingFrom {
			f.emit(&grainpb.Effect{Kind: EffectCancelBooking, SignupId: st.SignupId, SlotId: slotID, Capacity: f.capacity(slotID)})
		}
		return
	}
	switch {
	case strings.HasPrefix(p, sysBooked):
		st.Stage, st.SlotId, st.Asking, st.ChangingFrom = StageBooked, strings.TrimPrefix(p, sysBooked), "", ""
		if sl, ok := f.slotOf(st.SlotId); ok {
			f.send(fmt.Sprintf("You're booked: %s. Thank you! Reply \"change\" to pick another slot or \"cancel\" to cancel.", f.slotLabel(sl, false)),
				[]*grainpb.Option{{Title: "Change slot", Payload: PayloadChange}, {Title: "Cancel", Payload: PayloadCancel}})
		}
	case strings.HasPrefix(p, sysFull) && st.ChangingFrom == "":
		// The slot was cancelled, removed or started since it was offered: offer the others.
		f.askSlot("Sorry, that slot is no longer available.")
	case strings.HasPrefix(p, sysFull):
		// A change to a full slot: the person keeps the place they had.
		st.Stage, st.Asking, st.SlotId, st.ChangingFrom = StageBooked, "", st.ChangingFrom, ""
		if sl, ok := f.slotOf(st.SlotId); ok {
			f.send(fmt.Sprintf("That slot has just filled up, so you keep your place: %s.", f.slotLabel(sl, false)),
				[]*grainpb.Option{{Title: "Change slot", Payload: PayloadChange}, {Title: "Cancel", Payload: PayloadCancel}})
		}
	case strings.HasPrefix(p, sysWaitlisted):
		rest := strings.TrimPrefix(p, sysWaitlisted)
		cut := strings.LastIndexByte(rest, ':')
		slotID, pos := rest[:max(0, cut)], rest[cut+1:]
		st.Stage, st.SlotId, st.Asking, st.ChangingFrom = StageWaitlisted, slotID, "", ""
		if sl, ok := f.slotOf(slotID); ok {
			f.send(fmt.Sprintf("%s is full: you're number %s on the waitlist. We'll message you as soon as a place frees up.", f.slotLabel(sl, false), pos),
				[]*grainpb.Option{{Title: "Another slot", Payload: PayloadChange}, {Title: "Cancel", Payload: PayloadCancel}})
		}
	case strings.HasPrefix(p, sysOffer):
		slotID := strings.TrimPrefix(p, sysOffer)
		sl, ok := f.slotOf(slotID)
		switch {
		case ok && st.Stage == StageWaitlisted && st.SlotId == slotID:
		case st.Stage == StageSlot || st.Stage == StageBooking || slotID == st.SlotId || slotID == st.ChangingFrom:
			// Choosing (or booking) right now, maybe that slot again: the hold is left to
			// expire and pass on, rather than cancel what the choice may book.
			return
		default:
			// Not waiting for it any more (booked elsewhere, cancelled, withdrew): pass it on.
			f.emit(&grainpb.Effect{Kind: EffectCancelBooking, SignupId: st.SignupId, SlotId: slotID, Capacity: f.capacity(slotID)})
			return
		}
		st.Nonce = f.env.nonce()
		st.Stage, st.Asking = StageSlot, StageSlot
		st.Options = []string{sl.ID + ":" + st.Nonce}
		f.send(fmt.Sprintf("Good news: a place opened up on %s and we're holding it for you for 2 hours. Do you want it?", f.slotLabel(sl, false)),
			[]*grainpb.Option{{Title: "Yes, book it", Payload: slotPrefix + sl.ID + ":" + st.Nonce}, {Title: "No, thanks", Payload: PayloadCancel}})
	case strings.HasPrefix(p, sysAdminReply):
		f.emit(&grainpb.Effect{Kind: EffectSend, Text: strings.TrimPrefix(p, sysAdminReply), Tag: "HUMAN_AGENT", From: "admin"})
	case p == sysRelease:
		st.Handoff = false
	case strings.HasPrefix(p, sysChanged):
		slotID, old := parseChange(strings.TrimPrefix(p, sysChanged))
		sl, ok := f.slotOf(slotID)
		held := st.SlotId == slotID && (st.Stage == StageBooked || st.Stage == StageWaitlisted)
		if !ok || !(held || st.ChangingFrom == slotID) {
			return
		}
		f.send(fmt.Sprintf("Update from the organisers: %s has moved to %s. Reply \"change\" to pick another slot or \"cancel\" if you can't make it.",
			old, f.slotLabel(sl, false)),
			[]*grainpb.Option{{Title: "Change slot", Payload: PayloadChange}, {Title: "Cancel", Payload: PayloadCancel}})
	case strings.HasPrefix(p, sysSlotCancelled):
		slotID, label := parseChange(strings.TrimPrefix(p, sysSlotCancelled))
		if st.SlotId != slotID && st.ChangingFrom != slotID {
			return
		}
		// Freed by the worker already (the place held, or the one kept while changing).
		if st.SlotId == slotID {
			st.SlotId = ""
		}
		st.ChangingFrom = ""
		if f.env.signup == nil || st.Stage == StageDeclined || st.Stage == StageCancelled {
			return
		}
		f.askSlot(fmt.Sprintf("Sorry: the organisers cancelled %s.", label))
	}
}

func (f *flow) cancel() {
	st := f.st
	switch {
	case st.SlotId != "" || st.Stage == StageBooking:
		f.cancelBooking()
		st.Stage, st.Asking = StageCancelled, ""
		f.send("Your place is cancelled. Thank you for letting us know! Write to us any time if you'd like to come after all.", nil)
		f.notify(fmt.Sprintf("%s cancelled their place.", f.who()))
	case st.Stage == StageNew || st.Stage == StageDeclined || st.Stage == StageCancelled:
	default:
		st.Stage, st.Asking = StageCancelled, ""
		f.send("No problem, we've stopped here. Write to us any time if you'd like to volunteer.", nil)
	}
}

// cancelBooking frees the person's place (or waitlist spot). A booking still on its way is
// cancelled by slot id "": the worker frees whatever the person holds in the signup.
func (f *flow) cancelBooking() {
	st := f.st
	f.emit(&grainpb.Effect{Kind: EffectCancelBooking, SignupId: st.SignupId, SlotId: st.SlotId, Capacity: f.capacity(st.SlotId)})
	st.SlotId, st.ChangingFrom = "", ""
}

func (f *flow) change() {
	st := f.st
	if f.env.signup == nil {
		return
	}
	switch st.Stage {
	case StageBooked:
		st.ChangingFrom = st.SlotId // kept until the new one is booked
		f.askSlot("Sure.")
	case StageWaitlisted:
		f.cancelBooking() // leave that waitlist: the person picks again
		f.askSlot("Sure.")
	default:
		f.startForm()
	}
}

func (f *flow) decline() {
	st := f.st
	if st.SlotId != "" || st.Stage == StageBooking {
		f.cancelBooking()
		f.notify(fmt.Sprintf("%s withdrew.", f.who()))
	}
	st.Stage, st.Asking = StageDeclined, ""
	f.send("Understood, thank you for letting us know. We won't message you again.", nil)
}

// question reports a question: the model says so, or the text ends with a question mark (a
// form must not take "Where can I park?" for an invalid answer).
func (f *flow) question() bool {
	return voluntree.Intent(f.m.Intent) == voluntree.IntentQuestion ||
		(f.m.Payload == "" && strings.HasSuffix(strings.TrimSpace(f.m.Text), "?"))
}

// questionOr answers a question from the facts, else runs otherwise.
func (f *flow) questionOr(otherwise func()) {
	if f.question() {
		f.answerQuestion()
		return
	}
	otherwise()
}

// answerQuestion answers from the signup's facts, or says the team will, and tells the admins.
func (f *flow) answerQuestion() {
	if f.env.answer != nil {
		if a, ok := f.env.answer(f.m.Text); ok {
			f.send(a, nil)
			return
		}
	}
	f.send("Good question! I don't know that one, so I've asked the team: they'll answer you here.", nil)
	f.notify(fmt.Sprintf("%s asks: %s", f.who(), f.m.Text))
}

func (f *flow) send(text string, options []*grainpb.Option) {
	f.emit(&grainpb.Effect{Kind: EffectSend, Text: text, Options: options})
}

func (f *flow) notify(text string) {
	f.emit(&grainpb.Effect{Kind: EffectNotifyAdmins, Text: text})
}

// emit adds an effect with its id and the conversation's addressing.
func (f *flow) emit(e *grainpb.Effect) {
	st := f.st
	st.EffectSeq++
	e.Id = f.conversationID() + ":" + strconv.FormatInt(st.EffectSeq, 10)
	e.ConversationId = f.conversationID()
	e.Channel, e.PageId, e.RecipientId, e.OrgId = st.Channel, st.PageId, st.SenderId, f.env.orgID
	if e.PersonName == "" {
		e.PersonName = st.SenderName
	}
	if e.From == "" && (e.Kind == EffectSend || e.Kind == EffectPrivateReply || e.Kind == EffectCommentReply) {
		e.From = "bot"
	}
	e.CreatedAtUnixNano = f.env.now.UnixNano()
	if e.Kind == EffectSend && st.EmailVerified {
		e.EmailTo = st.Email // where it goes if Messenger's window has closed
	}
	window := messengerWindow
	if e.Tag == "HUMAN_AGENT" {
		window = humanAgentWindow
	}
	if st.LastInboundUnixNano != 0 {
		e.WindowUntilUnixNano = st.LastInboundUnixNano + int64(window)
	}
	f.out = append(f.out, e)
}

func (f *flow) conversationID() string {
	if f.env.conversationID != "" {
		return f.env.conversationID
	}
	return voluntree.ConversationID(f.st.PageId, f.st.SenderId)
}

func (f *flow) who() string {
	if f.st.SenderName != "" {
		return f.st.SenderName
	}
	return "A volunteer"
}

func (f *flow) slotOf(id string) (voluntree.Slot, bool) {
	if f.env.signup == nil {
		return voluntree.Slot{}, false
	}
	return f.env.signup.Slot(id)
}

func (f *flow) capacity(slotID string) int32 {
	sl, _ := f.slotOf(slotID)
	return int32(sl.Required)
}

func (f *flow) past(sl voluntree.Slot) bool {
	loc, err := time.LoadLocation(f.env.signup.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	start, err := sl.StartTime(loc)
	return err == nil && start.Before(f.env.now)
}

// slotTitle is a slot's short title for a quick reply: "Sat 4 May 09:00".
func (f *flow) slotTitle(sl voluntree.Slot) string {
	if d, err := time.Parse("2006-01-02", sl.Date); err == nil {
		return d.Format("Mon 2 Jan") + " " + sl.Start
	}
	return sl.Date + " " + sl.Start
}

// slotTitleNoDay is a waitlist option's title: "Wait 14 May 09:00" fits in 20 characters.
func (f *flow) slotTitleNoDay(sl voluntree.Slot) string {
	if d, err := time.Parse("2006-01-02", sl.Date); err == nil {
		return d.Format("2 Jan") + " " + sl.Start
	}
	return sl.Date + " " + sl.Start
}

// slotLabel is a slot's date and time in the signup's time zone: "Sat 4 May, 09:00–12:00
// (Morning)"; long adds the year and zone for a confirmation.
func (f *flow) slotLabel(sl voluntree.Slot, short bool) string {
	date := sl.Date
	if d, err := time.Parse("2006-01-02", sl.Date); err == nil {
		date = d.Format("Mon 2 Jan 2006")
		if short {
			date = d.Format("Mon 2 Jan")
		}
	}
	s := fmt.Sprintf("%s, %s–%s", date, sl.Start, sl.End)
	if !short {
		s += " (" + f.env.signup.TimeZone + ")"
	}
	if sl.Title != "" {
		s += " · " + sl.Title
	}
	return s
}

func firstName(name string) string {
	if f, _, _ := strings.Cut(strings.TrimSpace(name), " "); f != "" {
		return " " + f
	}
	return ""
}
