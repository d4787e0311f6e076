package voluntree

import (
	"encoding/json"
	"errors"
	"time"
)

// The records the store's interfaces (store.go) take and return, beside the domain types.

// List is one page of a longer list: its items and how many there are in all.
type List[T any] struct {
	Items []T `json:"items"`
	Total int `json:"total"`
}

// QueueOp says what a post change does to the publish queue.
type QueueOp struct {
	Add    bool      // (re)queue at At
	At     time.Time // due time when Add
	Remove bool      // leave the queue
}

// RecordOutcome says what recording a classified message did.
type RecordOutcome int

// Outcomes of InterestRecorder.Record.
const (
	RecordDuplicate   RecordOutcome = iota // recorded before: nothing changed
	RecordCounted                          // a new message of another intent, or of no organization: counted
	RecordNewInterest                      // a new interest: stored, indexed, event published
)

// Recorded is the outcome of one message of InterestRecorder.Record.
type Recorded struct {
	Outcome RecordOutcome
	EventID string // RecordNewInterest, and RecordCounted when a message event was published
}

// Enqueued is the outcome of one message of Enqueuer.Enqueue.
type Enqueued struct {
	ID  string // the stream entry id; "" for a duplicate or a refused message
	Err error  // EINVALID: this message cannot be stored for its own content (refused alone)
}

// Rejection is one refused event.
type Rejection struct {
	ID     string    `json:"id,omitempty"` // the stream entry id (set when read back)
	Reason string    `json:"reason"`       // malformed_event, invalid_event, unencodable_event
	Error  string    `json:"error"`
	Source string    `json:"source"` // webhook, poll, demo
	Raw    string    `json:"raw"`    // the event's JSON as received, cut at the store's limit
	Cut    bool      `json:"truncated,omitempty"`
	At     time.Time `json:"at"`
}

// Replay is a page of an events replay log read after some id.
type Replay struct {
	Events []Event
	// Gap is true when events after the requested id were trimmed from the capped log
	// before they could be read: the reader missed some and should reload.
	Gap bool
}

// EventHeader is what routing an event needs: its id, type, post and (message events) intent.
type EventHeader struct {
	ID     string    `json:"id"`
	Type   EventType `json:"type"`
	PostID string    `json:"post_id"`
	Intent Intent    `json:"intent"`
}

// Delivery is what the effects worker learned about reaching a person.
type Delivery struct {
	Error   string    `json:"error,omitempty"`   // the last failure that stops messages (outside_window, unavailable)
	Code    int       `json:"code,omitempty"`    // its Graph error code
	At      time.Time `json:"at,omitzero"`       // when
	Dropped int64     `json:"dropped,omitempty"` // automated messages dropped outside the 24-hour window
}

// ErrStaleConversation refuses a conversation save whose version is not the stored one:
// another activation of the grain (a topology change) wrote the state since this one read it.
var ErrStaleConversation = errors.New("voluntree: the conversation was written by another activation since it was read")

// SignupPerson is one person of a signup's conversation flow: their conversation's state
// (protobuf, nil when gone) and when they joined.
type SignupPerson struct {
	ConversationID string
	JoinedAt       time.Time
	State          []byte
}

// EmailVerification is an organization with its pending email verification.
type EmailVerification struct {
	Org       Organization
	Challenge *EmailChallenge // nil: none pending
}

// ModelVersion describes one pushed version of the model registry.
type ModelVersion struct {
	Tag     string          `json:"tag"`
	SHA256  string          `json:"sha256"`
	Size    int64           `json:"size"`
	Kind    string          `json:"kind"` // native or torchscript
	Note    string          `json:"note,omitempty"`
	Created time.Time       `json:"created"`
	Scores  json.RawMessage `json:"scores,omitempty"` // the validation report (ml.Report)
	// Expires is when an unpromoted version is deleted (zero: kept, once promoted).
	Expires  time.Time `json:"expires,omitzero"`
	Promoted bool      `json:"promoted"`
}

// ModelUpload is a push of a model file through the admin API, in chunks, in progress: the
// client declares the file (tag, size, SHA-256), sends its chunks in any order (again after
// a failure), then completes it; the file is checked as `voluntree model push` checks it.
type ModelUpload struct {
	ID        string    `json:"id"`
	Tag       string    `json:"tag"`
	Note      string    `json:"note,omitempty"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	ChunkSize int       `json:"chunk_size"`
	Chunks    int       `json:"chunks"`
	Received  []int     `json:"received"` // the chunks stored, ascending
	Expires   time.Time `json:"expires"`  // an upload not completed by then is forgotten
}

// ModelNode is the version one node serves, as it last reported.
type ModelNode struct {
	Node    string    `json:"node"`
	Version string    `json:"version"` // a tag, or "file" before any promotion
	SHA256  string    `json:"sha256,omitempty"`
	Since   time.Time `json:"since"` // when it started serving it
	Seen    time.Time `json:"seen"`  // its last report
}
