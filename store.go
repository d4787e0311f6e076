package voluntree

import (
	"context"
	"time"
)

// The store's interfaces, one per role an adapter plays; redisstore.Store implements them
// all. Each is small; a consumer that plays several roles takes an interface embedding them
// (AdminStore for httpapi, GrainStore for cluster, CommentPollStore for facebook). Errors
// follow error.go: ENOTFOUND for a missing record, ECONFLICT, EINVALID, and so on.

// ---- Reads shared by several roles ----

// PageReader reads a connected Facebook page.
type PageReader interface {
	Page(ctx context.Context, id string) (Page, error)
}

// PostReader reads an admin post.
type PostReader interface {
	Post(ctx context.Context, id string) (Post, error)
}

// SignupReader reads an admin signup.
type SignupReader interface {
	Signup(ctx context.Context, id string) (Signup, error)
}

// EventAppender appends an event to an organization's replay log and publishes it to the
// live feeds; it returns the event's id.
type EventAppender interface {
	AppendEvent(ctx context.Context, org string, ev Event) (string, error)
}

// ChatAppender appends a message to a web chat conversation's history (once per dedupe key)
// and returns its id.
type ChatAppender interface {
	AppendChat(ctx context.Context, conversationID string, m ChatMessage, dedupe string) (string, error)
}

// ---- Ingest ----

// Enqueuer appends messages to the ingest stream: one outcome per message, and an error only
// when the stream cannot be written.
type Enqueuer interface {
	Enqueue(ctx context.Context, msgs []Message) ([]Enqueued, error)
}

// Ingester is Enqueuer plus the rejected-events stream of events refused for their content.
type Ingester interface {
	Enqueuer
	Reject(ctx context.Context, rs []Rejection) error
}

// CommentPollStore is what the comment poller needs: the published posts to poll, a lock and
// a cursor per post, and the ingest stream.
type CommentPollStore interface {
	Enqueuer
	PageReader
	PostReader
	PublishedSince(ctx context.Context, since time.Time) ([]string, error)
	LockPoll(ctx context.Context, postID, owner string, ttl time.Duration) (bool, error)
	PollCursor(ctx context.Context, postID string) (string, error)
	SetPollCursor(ctx context.Context, postID, cursor string) error
}

// EventReplayer reads an organization's replay log (the live feed's catch-up).
type EventReplayer interface {
	EventsAfter(ctx context.Context, org, after string, count int64) (Replay, error)
	LastEventID(ctx context.Context, org string) (string, error)
	EventIDBeforeLastMatching(ctx context.Context, org string, n int, match func(EventHeader) bool) (string, error)
}

// ---- Admin records ----

// OrgStore reads and changes organizations.
type OrgStore interface {
	Org(ctx context.Context, id string) (Organization, error)
	UpdateOrg(ctx context.Context, id string, fn func(*Organization) error) (Organization, error)
}

// EmailVerificationStore keeps an organization's pending email verification.
type EmailVerificationStore interface {
	EmailVerification(ctx context.Context, orgID string) (EmailVerification, error)
	UpdateEmailVerification(ctx context.Context, orgID string, fn func(v *EmailVerification) (commit bool, err error)) (EmailVerification, error)
}

// PageStore lists and saves an organization's connected pages.
type PageStore interface {
	PageReader
	Pages(ctx context.Context, orgID string, offset, limit int) (List[Page], error)
	SavePage(ctx context.Context, pg Page) error
}

// LoginStateStore keeps the Facebook Logins started to connect a page.
type LoginStateStore interface {
	SaveLoginState(ctx context.Context, state string, ls LoginState, ttl time.Duration) error
	LoginState(ctx context.Context, state string) (LoginState, error)
	TakeLoginState(ctx context.Context, state string) (LoginState, error)
}

// PostStore creates, lists and changes posts; UpdatePost applies the publish-queue operation
// fn returns in the same transaction.
type PostStore interface {
	PostReader
	Posts(ctx context.Context, orgID string, offset, limit int) (List[Post], error)
	CreatePost(ctx context.Context, p Post) error
	UpdatePost(ctx context.Context, id string, fn func(*Post) (QueueOp, error)) (Post, error)
}

// SignupStore creates, lists and changes signups, and reads their slots and people.
type SignupStore interface {
	SignupReader
	Signups(ctx context.Context, orgID string, offset, limit int) (List[Signup], error)
	CreateSignup(ctx context.Context, su Signup) error
	DeleteSignup(ctx context.Context, id string, check func(*Signup) error) error
	UpdateSignupWithEffects(ctx context.Context, id string, fn func(*Signup) error,
		effects func(old, updated *Signup) ([][]byte, error)) (Signup, error)
	SignupsOverview(ctx context.Context, sus []Signup) ([][]SlotFill, []int64, error)
	SlotFills(ctx context.Context, su *Signup) ([]SlotFill, error)
	SlotBookingCounts(ctx context.Context, su *Signup) (map[string]SlotCounts, error)
	SlotInterests(ctx context.Context, su *Signup, slotID string, offset, limit int) (List[Interest], error)
	SignupPeople(ctx context.Context, signupID string, offset, limit int) ([]SignupPerson, int, error)
}

// InterestReader reads the interests recorded for a post (or a page inbox).
type InterestReader interface {
	Interests(ctx context.Context, orgID, postKey string, offset, limit int64) ([]Interest, error)
	InterestCount(ctx context.Context, orgID, postKey string) (int, error)
}

// StatsReader reads an organization's counters.
type StatsReader interface {
	OrgStats(ctx context.Context, orgID string, from, to time.Time) (Stats, error)
	OrgDaily(ctx context.Context, orgID string, days []string) ([]map[Intent]int64, error)
	BookingsByDay(ctx context.Context, signupIDs []string) (map[string]int, error)
}

// ConversationReader reads a conversation's state (protobuf) and what is known of reaching
// its person.
type ConversationReader interface {
	LoadConversation(ctx context.Context, conversationID string) ([]byte, error)
	ConversationDelivery(ctx context.Context, conversationID string) (Delivery, error)
}

// EchoStore records the echoes of the page's own messages: the effect an echo confirms, and
// the conversation an admin's reply from the page's inbox belongs to.
type EchoStore interface {
	MarkEchoed(ctx context.Context, effectID, messageID string) (bool, error)
	SetConversationAlias(ctx context.Context, alias, target string) error
}

// ---- Accounts and signing in ----

// AccountStore reads users and changes organizations' members.
type AccountStore interface {
	User(ctx context.Context, id string) (User, error)
	UserOrgs(ctx context.Context, userID string) ([]string, error)
	UserByIdentity(ctx context.Context, provider, externalID string, fill func(*User)) (User, error)
	Member(ctx context.Context, orgID, userID string) (Member, error)
	Members(ctx context.Context, orgID string) ([]Member, error)
	SetMember(ctx context.Context, orgID, userID string, role Role) (Member, error)
	RemoveMember(ctx context.Context, orgID, userID string) error
}

// InvitationStore issues, lists, revokes and accepts invitations to an organization.
type InvitationStore interface {
	CreateInvitation(ctx context.Context, inv Invitation, ttl time.Duration) (string, Invitation, error)
	Invitation(ctx context.Context, token string) (Invitation, error)
	Invitations(ctx context.Context, orgID string) ([]Invitation, error)
	RevokeInvitation(ctx context.Context, orgID, id string) error
	AcceptInvitation(ctx context.Context, token, userID string) (Member, error)
}

// SessionStore keeps signed-in browsers' sessions.
type SessionStore interface {
	CreateSession(ctx context.Context, userID, orgID, via string, idle, absolute time.Duration) (string, Session, error)
	CreateSessionWith(ctx context.Context, sess Session, idle, absolute time.Duration) (string, Session, error)
	UseSession(ctx context.Context, token string, idle time.Duration) (Session, error)
	DeleteSession(ctx context.Context, sess Session) error
	MarkSessionChecked(ctx context.Context, sessionID string, at time.Time) error
	SwitchSessionOrg(ctx context.Context, sessionID, orgID string) error
}

// SignInStore keeps the single-use states of signing in: OAuth states and sign-in links.
type SignInStore interface {
	CreateOAuthState(ctx context.Context, st OAuthState, ttl time.Duration) (string, error)
	UseOAuthState(ctx context.Context, state string) (OAuthState, error)
	UseLoginLink(ctx context.Context, token string) (LoginLink, error)
}

// AdminTokenStore keeps admin API tokens.
type AdminTokenStore interface {
	AdminTokens(ctx context.Context, orgID string) ([]AdminToken, error)
	CreateAdminToken(ctx context.Context, orgID string, opts TokenOptions) (string, AdminToken, error)
	LookupAdminToken(ctx context.Context, token string) (AdminToken, error)
	RevokeAdminToken(ctx context.Context, orgID, id string) (AdminToken, error)
}

// TicketStore issues and spends the single-use tickets that open a live feed.
type TicketStore interface {
	CreateWSTicket(ctx context.Context, org string, ttl time.Duration) (string, WSTicket, error)
	TakeWSTicket(ctx context.Context, ticket string) (WSTicket, error)
}

// ChatStore keeps web chat sessions and histories.
type ChatStore interface {
	ChatAppender
	ChatHistory(ctx context.Context, conversationID, after string, count int64) ([]ChatMessage, error)
	ChatSessionOf(ctx context.Context, token string) (ChatSession, error)
	CreateChatSession(ctx context.Context, sess ChatSession) (string, ChatSession, error)
	RefreshChatSession(ctx context.Context, token string) (string, ChatSession, error)
}

// AdminStore is everything the HTTP API reads and writes: admin records, accounts, sign-in
// and web chat.
type AdminStore interface {
	OrgStore
	EmailVerificationStore
	PageStore
	LoginStateStore
	PostStore
	SignupStore
	InterestReader
	StatsReader
	EventAppender
	ConversationReader
	EchoStore
	AccountStore
	InvitationStore
	SessionStore
	SignInStore
	AdminTokenStore
	TicketStore
	ChatStore
}

// ---- The grains and their effects ----

// InterestRecorder records classified messages of one post (postKey: the post id, or a page
// inbox) of an organization, idempotently on their ids.
type InterestRecorder interface {
	Record(ctx context.Context, org, postKey string, interests []Interest) ([]Recorded, error)
}

// ConversationStore keeps conversation grains' state, fenced by a version: a save with a
// version that is not the stored one fails with ErrStaleConversation. The state and the
// effects batch it causes are written in one step.
type ConversationStore interface {
	LoadConversationVersion(ctx context.Context, conversationID string) ([]byte, int64, error)
	SaveConversationEffects(ctx context.Context, conversationID, signupID string, version int64, state, batch []byte, from, to string) (int64, error)
}

// AliasStore maps conversation ids to the conversation they stand for.
type AliasStore interface {
	SetConversationAlias(ctx context.Context, alias, target string) error
	ConversationAliases(ctx context.Context, ids []string) ([]string, error)
}

// BookingStore books people into signups' slots, with a waitlist and held places.
type BookingStore interface {
	Book(ctx context.Context, signupID, slotID string, capacity int, person string, rec BookingRecord, holdFor time.Duration) (BookResult, error)
	Booking(ctx context.Context, signupID, person string) (BookingRecord, bool, error)
	CancelBooking(ctx context.Context, signupID, slotID string, capacity int, person string, holdFor time.Duration) (bool, []string, error)
	SlotCountsOf(ctx context.Context, signupID, slotID string) (SlotCounts, error)
	SlotBookingCounts(ctx context.Context, su *Signup) (map[string]SlotCounts, error)
	SlotPeople(ctx context.Context, signupID, slotID string) ([]string, error)
}

// EffectStore is the effects worker's bookkeeping: which effects were done or attempted,
// echoes seen, mail sent, people unreachable, and messages parked for a disconnected page.
type EffectStore interface {
	EffectDone(ctx context.Context, effectID string) (bool, error)
	MarkEffectDone(ctx context.Context, effectID, outcome string) error
	MarkAttempt(ctx context.Context, effectID string, at time.Time) (time.Time, bool, error)
	RestartAttempt(ctx context.Context, effectID string, at time.Time) error
	ClearAttempt(ctx context.Context, effectID string) error
	Echoed(ctx context.Context, effectID string) (string, error)
	CountEmailTo(ctx context.Context, addr string, window time.Duration) (int64, error)
	MarkUndeliverable(ctx context.Context, conversationID, reason string, code int, dropped bool) error
	ParkEffects(ctx context.Context, pageID string, batch []byte) error
	UnparkEffects(ctx context.Context, pageID string) (int, error)
}

// PublishStore is the post publisher's: the publish queue and the posts it publishes.
type PublishStore interface {
	PostReader
	UpdatePost(ctx context.Context, id string, fn func(*Post) (QueueOp, error)) (Post, error)
	SlotFills(ctx context.Context, su *Signup) ([]SlotFill, error)
	ClaimDuePosts(ctx context.Context, now time.Time, lease time.Duration, max int) ([]string, error)
	Requeue(ctx context.Context, postID string, at time.Time) error
	Dequeue(ctx context.Context, postID string) error
	QueueLength(ctx context.Context) (int64, error)
}

// GrainStore is everything the cluster's grains, publisher and effects worker read and
// write.
type GrainStore interface {
	PageReader
	SignupReader
	EventAppender
	ChatAppender
	InterestRecorder
	ConversationStore
	AliasStore
	BookingStore
	EffectStore
	PublishStore
	SavePage(ctx context.Context, pg Page) error
	PostIDByFacebookID(ctx context.Context, fbPostID string) (string, error)
}

// ---- Model registry ----

// ModelRegistry is the model registry as admins manage it: Promote checks a version (it
// loads and scores it on the shipped validation set) before promoting it.
type ModelRegistry interface {
	Versions(ctx context.Context) ([]ModelVersion, error)
	Nodes(ctx context.Context) ([]ModelNode, error)
	Promote(ctx context.Context, tag string) (previous string, err error)
	Rollback(ctx context.Context) (string, error)
	Remove(ctx context.Context, tag string) error
	// A push in chunks (ModelUpload): Complete checks the file (it loads and scores it on the
	// shipped validation set against the floor) and pushes it as the upload's tag.
	CreateUpload(ctx context.Context, u ModelUpload) (ModelUpload, error)
	Upload(ctx context.Context, id string) (ModelUpload, error)
	PutUploadChunk(ctx context.Context, id string, n int, data []byte) (ModelUpload, error)
	CompleteUpload(ctx context.Context, id string) (ModelVersion, error)
}
