package redisstore

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// Every Redis key and channel Voluntree uses is built here, and keys_test.go pins the
// strings: renaming one is a data migration, not a refactor.
//
// Hash tags ({...}) keep the keys one operation touches in one Redis Cluster slot: an ingest
// shard with its dedupe and bookkeeping keys; an organization's events, indexes, daily counts
// and its posts' recorded messages (the record script); a conversation alone. Keys written
// before a tag was added are moved by `voluntree migrate` (migrate.go).

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

// Layout holds the version of the key layout the keys are in (string integer, migrate.go).
func (k Keys) Layout() string { return k.prefix + ":layout" }

// Prefix returns the prefix every key starts with.
func (k Keys) Prefix() string { return k.prefix }

// Ingest is shard 0 of the ingest stream (IngestShard(0)): a deployment of one shard keeps
// the key names it had before sharding.
func (k Keys) Ingest() string { return k.IngestShard(0) }

// IngestShard is one shard of the ingest stream every accepted message is appended to (field
// "m": the JSON message). A page's messages all go to one shard (Store.ShardOf), so they keep
// their order; each shard and its dedupe and dead-letter keys share one hash tag ({ingest} for
// shard 0, {ingest:N} for the others), and the shards spread over a Redis Cluster's slots.
func (k Keys) IngestShard(shard int) string { return k.prefix + ":" + ingestTag(shard) }

func ingestTag(shard int) string {
	if shard == 0 {
		return "{ingest}"
	}
	return "{ingest:" + strconv.Itoa(shard) + "}"
}

// IngestGroup is the consumer group of the ingest streams' readers.
func (k Keys) IngestGroup() string { return "pipeline" }

// IngestSeen marks a message id as accepted in a shard for 36 hours (webhook redelivery
// dedupe).
func (k Keys) IngestSeen(shard int, messageID string) string {
	return k.IngestShard(shard) + ":seen:" + messageID
}

// IngestFence is written (INCR) before every WAIT for replicas: WAIT only covers the
// connection's own writes, and a pipeline of duplicates writes nothing, so without it a
// retried webhook would pass a WAIT its first attempt failed.
func (k Keys) IngestFence() string { return k.IngestShardFence(0) }

// IngestShardFence is an ingest shard's fence: on Redis Cluster, each master holding a shard
// is fenced and waited on apart.
func (k Keys) IngestShardFence(shard int) string { return k.IngestShard(shard) + ":fence" }

// DeadLetter is shard 0's stream of ingest entries that failed too often (IngestDead(0)).
func (k Keys) DeadLetter() string { return k.IngestDead(0) }

// IngestDead is a shard's stream of entries that failed too often, with their errors.
func (k Keys) IngestDead(shard int) string { return k.IngestShard(shard) + ":dead" }

// IngestRejected is the capped stream of webhook events refused for their own content (fields
// "reason", "error", "raw", "source", "at"), kept for operators.
func (k Keys) IngestRejected() string { return k.prefix + ":{ingest}:rejected" }

// OrgEvents is an organization's capped replay log of events (stream; field "data": the
// event's JSON without its id, which is the entry's): what its admins' live feeds replay.
func (k Keys) OrgEvents(orgID string) string { return k.prefix + ":{org:" + orgID + "}:events" }

// OrgEventsChannel is the Pub/Sub channel an organization's events are published on.
func (k Keys) OrgEventsChannel(orgID string) string { return k.prefix + ":events:" + orgID }

// EventsChannelPattern matches every organization's events channel (PSUBSCRIBE): each node's
// event hub listens to all of them and routes by organization.
func (k Keys) EventsChannelPattern() string { return globEscape(k.prefix) + ":events:*" }

// OrgOfEventsChannel returns the organization of an events channel ("", false for another one).
func (k Keys) OrgOfEventsChannel(channel string) (string, bool) {
	org, ok := strings.CutPrefix(channel, k.prefix+":events:")
	if !ok || org == "" {
		return "", false
	}
	return org, true
}

// WSTicket is a single-use ticket for the live feed, by the SHA-256 (hex) of the ticket (the
// organization id, expires).
func (k Keys) WSTicket(ticketHash string) string { return k.prefix + ":wsticket:" + ticketHash }

// globEscape escapes the characters PSUBSCRIBE patterns treat specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// A post's recorded messages are kept in its organization's slot ({org:O}, "" for a page no
// organization connected): the record script changes them together with the organization's
// events, indexes and daily counts, in one script on one Redis Cluster slot.

// Interest is one stored interest (hash), by organization, post key and message id.
func (k Keys) Interest(orgID, postKey, messageID string) string {
	return k.post(orgID, postKey) + ":interest:" + messageID
}

func (k Keys) post(orgID, postKey string) string {
	return k.prefix + ":{org:" + orgID + "}:post:" + postKey
}

// PostInterests indexes a post's interests by recording time (sorted set of message ids).
func (k Keys) PostInterests(orgID, postKey string) string {
	return k.post(orgID, postKey) + ":interests"
}

// PostIntents counts a post's classified messages by intent (hash intent → count).
func (k Keys) PostIntents(orgID, postKey string) string { return k.post(orgID, postKey) + ":intents" }

// PostClassified maps each of a post's message ids to its intent (hash): the record of what
// was counted, which makes counting idempotent.
func (k Keys) PostClassified(orgID, postKey string) string {
	return k.post(orgID, postKey) + ":classified"
}

// ConversationPartitions is the number of partitions of the conversations: a conversation's
// state and the effects its transitions append share a partition's hash tag ({effects} for
// partition 0, {effects:N} for the others), so a save is one script on one Redis Cluster slot.
// Fixed: changing it would move every conversation.
const ConversationPartitions = 16

// ConversationPartition is the partition of a conversation (FNV-1a of its id).
func ConversationPartition(conversationID string) int {
	h := fnv.New32a()
	h.Write([]byte(conversationID))
	return int(h.Sum32() % ConversationPartitions)
}

func effectsTag(partition int) string {
	if partition == 0 {
		return "{effects}"
	}
	return "{effects:" + strconv.Itoa(partition) + "}"
}

// Conversation holds a conversation grain's state (protobuf bytes), in its partition.
func (k Keys) Conversation(conversationID string) string {
	return k.prefix + ":" + effectsTag(ConversationPartition(conversationID)) + ":conv:" + conversationID
}

// ConversationVersion counts the writes of a conversation's state (string integer): a save
// names the version it read and is refused when another activation wrote since (fencing).
func (k Keys) ConversationVersion(conversationID string) string {
	return k.Conversation(conversationID) + ":v"
}

// ConversationDelivery is what the effects worker learned about reaching a conversation's
// person (hash: error, code, at, dropped).
func (k Keys) ConversationDelivery(conversationID string) string {
	return k.prefix + ":{conv:" + conversationID + "}:delivery"
}

// ConversationAlias maps a Messenger conversation (page:PSID) to the conversation it continues
// (string: the conversation id of the comment a private reply answered), expires.
func (k Keys) ConversationAlias(conversationID string) string {
	return k.prefix + ":{conv:" + conversationID + "}:alias"
}

// ConversationStages counts a partition's conversations by stage (hash stage → count), kept
// in the same script as each state change; the counts are the sum over the partitions.
func (k Keys) ConversationStages(partition int) string {
	return k.prefix + ":" + effectsTag(partition) + ":stages"
}

// ---- Web chat ----

// ChatSession is a web chat session by the SHA-256 (hex) of its token (JSON, expires).
func (k Keys) ChatSession(tokenHash string) string { return k.prefix + ":chatsession:" + tokenHash }

// ChatHistory is a web chat conversation's messages both ways (capped stream, field "m").
func (k Keys) ChatHistory(conversationID string) string {
	return k.prefix + ":{conv:" + conversationID + "}:chat"
}

// ChatChannel is the Pub/Sub channel of a web chat conversation's new messages.
func (k Keys) ChatChannel(conversationID string) string { return k.prefix + ":chat:" + conversationID }

// ChatDedupe marks a message appended to a conversation's chat history once (by an effect
// id; expires), in the history's slot.
func (k Keys) ChatDedupe(conversationID, id string) string {
	return k.prefix + ":{conv:" + conversationID + "}:chat:dedupe:" + id
}

// ---- Effects: the conversations' outbox ----

// Effects is partition 0 of the effects outbox (EffectsPartition(0)).
func (k Keys) Effects() string { return k.EffectsPartition(0) }

// EffectsPartition is the outbox stream of a partition's conversation effects (field "b": a
// protobuf EffectBatch; "c": the conversation id). Partition 0 also takes the signups' and
// the unparked pages' batches.
func (k Keys) EffectsPartition(partition int) string { return k.prefix + ":" + effectsTag(partition) }

// EffectsGroup is the consumer group of the effects workers.
func (k Keys) EffectsGroup() string { return "effects" }

// EffectsDead is the stream of a partition's effect batches given up, with their errors.
func (k Keys) EffectsDead(partition int) string { return k.EffectsPartition(partition) + ":dead" }

// EffectsParked holds the effect batches waiting for a page to be connected again (stream,
// field "b"): a page whose token Graph refused parks its messages here.
func (k Keys) EffectsParked(pageID string) string { return k.prefix + ":{effects}:parked:" + pageID }

// EffectDone marks an effect performed (string: its outcome, expires): a redelivered batch
// skips it.
func (k Keys) EffectDone(effectID string) string { return k.prefix + ":effect:done:" + effectID }

// EffectEcho holds the message id of a sent effect's message_echoes callback (expires).
func (k Keys) EffectEcho(effectID string) string { return k.prefix + ":effect:echo:" + effectID }

// EffectAmbiguous holds when an effect's send was last attempted (unix ms, expires): written
// before the send, it tells a redelivery that the message may have gone.
func (k Keys) EffectAmbiguous(effectID string) string {
	return k.prefix + ":effect:ambiguous:" + effectID
}

// ---- Organizations, admin tokens, pages, signups, posts ----
//
// Records are JSON strings; every record names its organization. Per-organization indexes are
// sorted sets (by creation time) so lists page with a stable order.

// Orgs indexes every organization id (sorted set by creation time).
func (k Keys) Orgs() string { return k.prefix + ":orgs" }

// Org is one organization (JSON), in the organization's slot with its pending email
// verification (one transaction changes both).
func (k Keys) Org(orgID string) string { return k.prefix + ":{org:" + orgID + "}" }

// AdminToken maps the SHA-256 (hex) of an admin API token to its record (JSON).
func (k Keys) AdminToken(tokenHash string) string { return k.prefix + ":token:" + tokenHash }

// OrgTokens lists an organization's token hashes (sorted set by creation time).
func (k Keys) OrgTokens(orgID string) string { return k.prefix + ":org:" + orgID + ":tokens" }

// User is one person who signs in (JSON), by user id.
func (k Keys) User(userID string) string { return k.prefix + ":user:" + userID }

// UserIdentity maps an account elsewhere (provider github or facebook, and its id there) to a
// user id.
func (k Keys) UserIdentity(provider, externalID string) string {
	return k.prefix + ":identity:" + provider + ":" + externalID
}

// UserOrgs is the set of organizations a user is a member of.
func (k Keys) UserOrgs(userID string) string { return k.prefix + ":user:" + userID + ":orgs" }

// UserSessions is the set of a user's session ids (hashes), to revoke them together.
func (k Keys) UserSessions(userID string) string { return k.prefix + ":user:" + userID + ":sessions" }

// OrgMembers maps an organization's member user ids to their membership (hash of JSON).
func (k Keys) OrgMembers(orgID string) string { return k.prefix + ":org:" + orgID + ":members" }

// Session is one signed-in browser's session (hash), by the SHA-256 (hex) of its cookie value.
func (k Keys) Session(sessionHash string) string { return k.prefix + ":session:" + sessionHash }

// LoginLink is a one-time sign-in link (JSON, 15 minutes), by the SHA-256 (hex) of its token.
func (k Keys) LoginLink(tokenHash string) string { return k.prefix + ":loginlink:" + tokenHash }

// OAuthState is a sign-in in progress at GitHub or Facebook (JSON, 10 minutes), by the
// SHA-256 (hex) of its state parameter.
func (k Keys) OAuthState(stateHash string) string { return k.prefix + ":oauthstate:" + stateHash }

// Invitation is an invitation to join an organization (JSON, until it expires), by the
// SHA-256 (hex) of the token its email carries.
func (k Keys) Invitation(tokenHash string) string { return k.prefix + ":invitation:" + tokenHash }

// OrgInvitations lists an organization's invitation ids (sorted set by expiry time).
func (k Keys) OrgInvitations(orgID string) string { return k.prefix + ":org:" + orgID + ":invitations" }

// Page is one connected Facebook page (JSON), by Facebook page id.
func (k Keys) Page(pageID string) string { return k.prefix + ":page:" + pageID }

// OrgPages lists an organization's page ids (sorted set by connection time).
func (k Keys) OrgPages(orgID string) string { return k.prefix + ":org:" + orgID + ":pages" }

// Signup is one signup (JSON) by id, in the signup's slot with its posts' index, its outbox
// and its booking keys.
func (k Keys) Signup(signupID string) string { return k.prefix + ":{signup:" + signupID + "}" }

// OrgSignups lists an organization's signup ids (sorted set by creation time).
func (k Keys) OrgSignups(orgID string) string { return k.prefix + ":org:" + orgID + ":signups" }

// Post is one admin post (JSON) by id.
func (k Keys) Post(postID string) string { return k.prefix + ":post:" + postID }

// OrgPosts lists an organization's post ids (sorted set by creation time).
func (k Keys) OrgPosts(orgID string) string { return k.prefix + ":org:" + orgID + ":posts" }

// SignupPosts lists a signup's post ids (sorted set by creation time).
func (k Keys) SignupPosts(signupID string) string {
	return k.prefix + ":{signup:" + signupID + "}:posts"
}

// SignupOutbox holds the effect batches of a signup change (stream, fields "b" and "c" as in
// the effects outbox), written in the transaction that stores the change, until they are
// relayed to the effects outbox (another slot on Redis Cluster).
func (k Keys) SignupOutbox(signupID string) string {
	return k.prefix + ":{signup:" + signupID + "}:outbox"
}

// SignupOutboxes is the set of signups whose outbox may hold batches not relayed yet.
func (k Keys) SignupOutboxes() string { return k.prefix + ":signups:outboxes" }

// PostsByFacebookID maps a Facebook post id to the admin post it came from (hash).
func (k Keys) PostsByFacebookID() string { return k.prefix + ":posts:facebook" }

// PublishQueue holds the posts waiting to be published, by due time in unix ms (sorted set).
// A claimed post's score moves to the end of its lease, so a crashed publisher's post comes
// due again.
func (k Keys) PublishQueue() string { return k.prefix + ":publish:queue" }

// PublishedPosts lists published posts by publication time, unix ms (sorted set): what the
// comment poller polls.
func (k Keys) PublishedPosts() string { return k.prefix + ":posts:published" }

// PollCursor remembers, per published post, how far the comment poller has read (hash).
func (k Keys) PollCursor() string { return k.prefix + ":poll:cursor" }

// PollLock is held by the node polling a post's comments this round.
func (k Keys) PollLock(postID string) string { return k.prefix + ":poll:lock:" + postID }

// SlotBooked lists the people (conversation ids) booked on a slot, by booking time in unix ms
// (sorted set). A slot's booking keys share the signup's hash tag: one script changes them.
func (k Keys) SlotBooked(signupID, slotID string) string {
	return k.prefix + ":{signup:" + signupID + "}:slot:" + slotID + ":booked"
}

// SlotWaitlist lists the people waiting for a place on a full slot, by joining time (sorted set).
func (k Keys) SlotWaitlist(signupID, slotID string) string {
	return k.prefix + ":{signup:" + signupID + "}:slot:" + slotID + ":waitlist"
}

// SlotHolds lists the people offered a freed place of a slot, by the offer's expiry in unix ms
// (sorted set): a hold counts against the slot's capacity until it is taken or expires.
func (k Keys) SlotHolds(signupID, slotID string) string {
	return k.prefix + ":{signup:" + signupID + "}:slot:" + slotID + ":holds"
}

// SignupPeople lists the people (conversation ids) who entered a signup's conversation flow,
// by when they first did, in unix ms (sorted set): the signup's volunteers.
func (k Keys) SignupPeople(signupID string) string {
	return k.prefix + ":{signup:" + signupID + "}:people"
}

// SignupBookings maps each booked person of a signup to their booking (hash: conversation id
// → JSON BookingRecord).
func (k Keys) SignupBookings(signupID string) string {
	return k.prefix + ":{signup:" + signupID + "}:bookings"
}

// OrgDaily counts an organization's messages by UTC day and intent (hash "YYYY-MM-DD|intent"
// → count, written by the record script): the stats' daily series.
func (k Keys) OrgDaily(orgID string) string { return k.prefix + ":{org:" + orgID + "}:daily" }

// OrgVolunteers records when each volunteer (page:sender) first showed interest in one of
// the organization's posts (sorted set by unix ms): the stats' volunteers and new volunteers.
func (k Keys) OrgVolunteers(orgID string) string {
	return k.prefix + ":{org:" + orgID + "}:volunteers"
}

// OrgInterests indexes an organization's interests by the time they were expressed, unix ms
// (sorted set; member "<conversation id>|<message id>"; older members have the post key in
// between: readers only take the conversation, before the first "|").
func (k Keys) OrgInterests(orgID string) string {
	return k.prefix + ":{org:" + orgID + "}:interests"
}

// LoginState is a Facebook Login `state` waiting for its callback (JSON, expires).
func (k Keys) LoginState(state string) string { return k.prefix + ":fblogin:" + state }

// EmailCode is the pending email verification of an organization (JSON, expires).
func (k Keys) EmailCode(orgID string) string { return k.Org(orgID) + ":emailcode" }

// ---- Email ----

// MailQueue is the stream of emails waiting to be sent (field "m": the JSON email).
func (k Keys) MailQueue() string { return k.prefix + ":{mail}" }

// MailGroup is the consumer group of the mail senders.
func (k Keys) MailGroup() string { return "mailer" }

// MailOutbox keeps the latest emails "sent" when no SMTP server is configured (list, newest
// first, capped): the embedded default shows it on the first page.
func (k Keys) MailOutbox() string { return k.prefix + ":{mail}:outbox" }

// MailRate counts the volunteer emails sent to one address (by the SHA-256 of the lowercased
// address) in the current hour (string, expires).
func (k Keys) MailRate(addrHash string) string { return k.prefix + ":mailrate:" + addrHash }

// MailDead is the stream of emails that failed too often, with their errors.
func (k Keys) MailDead() string { return k.prefix + ":{mail}:dead" }

// ---- The model registry ----
//
// Every key of the registry shares the {models} hash tag: a push, a promotion or a removal is
// one transaction on one slot.

// ModelVersion is one pushed model version (hash: tag, sha256, size, kind, note, created,
// chunks, scores), by tag; an unpromoted version expires.
func (k Keys) ModelVersion(tag string) string { return k.prefix + ":{models}:version:" + tag }

// ModelChunk is the i-th piece of a version's file (string, at most ModelChunkSize bytes).
func (k Keys) ModelChunk(tag string, i int) string {
	return k.prefix + ":{models}:version:" + tag + ":chunk:" + strconv.Itoa(i)
}

// ModelTags indexes the pushed versions by push time, unix ms (sorted set of tags).
func (k Keys) ModelTags() string { return k.prefix + ":{models}:tags" }

// ModelUpload is a push through the admin API in progress (hash: tag, note, size, sha256,
// chunks; expires).
func (k Keys) ModelUpload(id string) string { return k.prefix + ":{models}:upload:" + id }

// ModelUploadChunk is the n-th chunk an upload received (string; expires with the upload).
func (k Keys) ModelUploadChunk(id string, n int) string {
	return k.ModelUpload(id) + ":chunk:" + strconv.Itoa(n)
}

// ModelUploadReceived is the set of the chunk numbers an upload received.
func (k Keys) ModelUploadReceived(id string) string { return k.ModelUpload(id) + ":received" }

// ModelPromoted names the version every node serves (hash: tag, sha256, at).
func (k Keys) ModelPromoted() string { return k.prefix + ":{models}:promoted" }

// ModelHistory lists the versions promoted before the current one, latest first (list of
// tags): what rollback goes back to.
func (k Keys) ModelHistory() string { return k.prefix + ":{models}:history" }

// ModelChannel is the Pub/Sub channel a promotion is announced on (message: the tag).
func (k Keys) ModelChannel() string { return k.prefix + ":models:promoted" }

// ModelNodes records the version each node serves (hash node → JSON ModelNode), refreshed by
// every node every few seconds.
func (k Keys) ModelNodes() string { return k.prefix + ":{models}:nodes" }
