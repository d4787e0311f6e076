package redisstore

// Every Redis key and channel Voluntree uses is built here, and keys_test.go pins the
// strings: renaming one is a data migration, not a refactor.
//
// Hash tags ({...}) keep the keys one operation touches in one Redis Cluster slot: the ingest
// stream with its dedupe and bookkeeping keys, a post with its interests and counts, a
// conversation alone. The record script (interests.go) also appends to the events stream,
// which lives in its own slot: on Redis Cluster that step will move out of the script.

// DefaultPrefix starts every key unless a test isolates itself with another prefix.
const DefaultPrefix = "voluntree"

// Keys builds key names under one prefix.
type Keys struct{ prefix string }

// NewKeys returns the key builder for prefix ("" means DefaultPrefix).
func NewKeys(prefix string) Keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Keys{prefix: prefix}
}

// Prefix returns the prefix every key starts with.
func (k Keys) Prefix() string { return k.prefix }

// Ingest is the stream every accepted message is appended to (field "m": the JSON message).
func (k Keys) Ingest() string { return k.prefix + ":{ingest}" }

// IngestGroup is the consumer group of the ingest stream's readers.
func (k Keys) IngestGroup() string { return "pipeline" }

// IngestSeen marks a message id as accepted for 36 hours (webhook redelivery dedupe).
func (k Keys) IngestSeen(messageID string) string { return k.prefix + ":{ingest}:seen:" + messageID }

// IngestErrors maps an ingest entry id to the last error its processing hit (hash).
func (k Keys) IngestErrors() string { return k.prefix + ":{ingest}:errors" }

// DeadLetter is the stream of ingest entries that failed too often, with their errors.
func (k Keys) DeadLetter() string { return k.prefix + ":{ingest}:dead" }

// Events is the capped replay log of events (stream; fields "type", "post", "data").
func (k Keys) Events() string { return k.prefix + ":{events}" }

// EventsChannel is the Pub/Sub channel every node's sockets listen on.
func (k Keys) EventsChannel() string { return k.prefix + ":events" }

// Interest is one stored interest (hash), by post and message id.
func (k Keys) Interest(postKey, messageID string) string {
	return k.prefix + ":{post:" + postKey + "}:interest:" + messageID
}

// PostInterests indexes a post's interests by recording time (sorted set of message ids).
func (k Keys) PostInterests(postKey string) string {
	return k.prefix + ":{post:" + postKey + "}:interests"
}

// PostIntents counts a post's classified messages by intent (hash intent → count).
func (k Keys) PostIntents(postKey string) string { return k.prefix + ":{post:" + postKey + "}:intents" }

// PostClassified maps each of a post's message ids to its intent (hash): the record of what
// was counted, which makes counting idempotent.
func (k Keys) PostClassified(postKey string) string {
	return k.prefix + ":{post:" + postKey + "}:classified"
}

// Conversation holds a conversation grain's state (protobuf bytes).
func (k Keys) Conversation(conversationID string) string {
	return k.prefix + ":{conv:" + conversationID + "}"
}
