package redisstore

import "github.com/voluntree/voluntree"

// The records the store's interfaces take and return live in the root package, beside the
// domain types; these aliases keep their redisstore names.
type (
	Session           = voluntree.Session
	LoginLink         = voluntree.LoginLink
	OAuthState        = voluntree.OAuthState
	AdminToken        = voluntree.AdminToken
	TokenOptions      = voluntree.TokenOptions
	WSTicket          = voluntree.WSTicket
	LoginState        = voluntree.LoginState
	ChatSession       = voluntree.ChatSession
	ChatOption        = voluntree.ChatOption
	ChatMessage       = voluntree.ChatMessage
	BookingRecord     = voluntree.BookingRecord
	BookingStatus     = voluntree.BookingStatus
	BookResult        = voluntree.BookResult
	SlotCounts        = voluntree.SlotCounts
	Page[T any]       = voluntree.List[T]
	QueueOp           = voluntree.QueueOp
	Outcome           = voluntree.RecordOutcome
	Recorded          = voluntree.Recorded
	Enqueued          = voluntree.Enqueued
	Rejection         = voluntree.Rejection
	Replay            = voluntree.Replay
	EventHeader       = voluntree.EventHeader
	Delivery          = voluntree.Delivery
	SignupPerson      = voluntree.SignupPerson
	EmailVerification = voluntree.EmailVerification
	ModelVersion      = voluntree.ModelVersion
	ModelNode         = voluntree.ModelNode
	ModelUpload       = voluntree.ModelUpload
)

// Outcomes of Book.
const (
	Booked     = voluntree.Booked
	Waitlisted = voluntree.Waitlisted
)

// Outcomes of Record.
const (
	Duplicate   = voluntree.RecordDuplicate
	Counted     = voluntree.RecordCounted
	NewInterest = voluntree.RecordNewInterest
)

// ErrStaleConversation refuses a conversation save whose version is not the stored one.
var ErrStaleConversation = voluntree.ErrStaleConversation

// Store implements every store interface of the root package.
var (
	_ voluntree.Ingester         = (*Store)(nil)
	_ voluntree.CommentPollStore = (*Store)(nil)
	_ voluntree.EventReplayer    = (*Store)(nil)
	_ voluntree.AdminStore       = (*Store)(nil)
	_ voluntree.GrainStore       = (*Store)(nil)
)
