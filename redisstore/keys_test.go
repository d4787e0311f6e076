package redisstore

import "testing"

// TestKeyNames pins every key: a change here breaks data already in Redis.
func TestKeyNames(t *testing.T) {
	k := NewKeys("")
	cases := []struct{ got, want string }{
		{k.Ingest(), "voluntree:{ingest}"},
		{k.IngestGroup(), "pipeline"},
		{k.IngestSeen(0, "123_456"), "voluntree:{ingest}:seen:123_456"},
		{k.DeadLetter(), "voluntree:{ingest}:dead"},
		{k.OrgEvents("o1"), "voluntree:{org:o1}:events"},
		{k.OrgEventsChannel("o1"), "voluntree:events:o1"},
		{k.EventsChannelPattern(), "voluntree:events:*"},
		{NewKeys("a*b").EventsChannelPattern(), `a\*b:events:*`},
		{k.WSTicket("ab12"), "voluntree:wsticket:ab12"},
		{k.IngestRejected(), "voluntree:{ingest}:rejected"},
		{k.IngestShard(0), "voluntree:{ingest}"},
		{k.IngestShard(3), "voluntree:{ingest:3}"},
		{k.IngestSeen(3, "123_456"), "voluntree:{ingest:3}:seen:123_456"},
		{k.IngestDead(3), "voluntree:{ingest:3}:dead"},
		{k.Interest("o1", "1_2", "m.1"), "voluntree:{org:o1}:post:1_2:interest:m.1"},
		{k.PostInterests("o1", "1_2"), "voluntree:{org:o1}:post:1_2:interests"},
		{k.PostIntents("o1", "1_2"), "voluntree:{org:o1}:post:1_2:intents"},
		{k.PostClassified("o1", "1_2"), "voluntree:{org:o1}:post:1_2:classified"},
		{k.PostIntents("", "page:1"), "voluntree:{org:}:post:page:1:intents"},
		{k.Conversation("p:s"), "voluntree:{effects:4}:conv:p:s"},
		{k.ConversationVersion("p:s"), "voluntree:{effects:4}:conv:p:s:v"},
		{k.EffectsPartition(4), "voluntree:{effects:4}"},
		{k.EffectsPartition(0), "voluntree:{effects}"},
		{k.EffectsDead(4), "voluntree:{effects:4}:dead"},
		{k.ConversationStages(4), "voluntree:{effects:4}:stages"},
		{k.ConversationStages(0), "voluntree:{effects}:stages"},
		{NewKeys("t1").Ingest(), "t1:{ingest}"},
		{k.Orgs(), "voluntree:orgs"},
		{k.Org("o1"), "voluntree:{org:o1}"},
		{k.AdminToken("ab12"), "voluntree:token:ab12"},
		{k.OrgTokens("o1"), "voluntree:org:o1:tokens"},
		{k.Page("111"), "voluntree:page:111"},
		{k.OrgPages("o1"), "voluntree:org:o1:pages"},
		{k.Signup("s1"), "voluntree:{signup:s1}"},
		{k.OrgSignups("o1"), "voluntree:org:o1:signups"},
		{k.Post("p1"), "voluntree:post:p1"},
		{k.OrgPosts("o1"), "voluntree:org:o1:posts"},
		{k.SignupPosts("s1"), "voluntree:{signup:s1}:posts"},
		{k.SignupOutbox("s1"), "voluntree:{signup:s1}:outbox"},
		{k.SignupOutboxes(), "voluntree:signups:outboxes"},
		{k.PostsByFacebookID(), "voluntree:posts:facebook"},
		{k.PublishQueue(), "voluntree:publish:queue"},
		{k.PublishedPosts(), "voluntree:posts:published"},
		{k.PollCursor(), "voluntree:poll:cursor"},
		{k.PollLock("p1"), "voluntree:poll:lock:p1"},
		{k.SlotBooked("s1", "sl1"), "voluntree:{signup:s1}:slot:sl1:booked"},
		{k.SlotWaitlist("s1", "sl1"), "voluntree:{signup:s1}:slot:sl1:waitlist"},
		{k.SlotHolds("s1", "sl1"), "voluntree:{signup:s1}:slot:sl1:holds"},
		{k.SignupBookings("s1"), "voluntree:{signup:s1}:bookings"},
		{k.OrgVolunteers("o1"), "voluntree:{org:o1}:volunteers"},
		{k.OrgInterests("o1"), "voluntree:{org:o1}:interests"},
		{k.LoginState("st"), "voluntree:fblogin:st"},
		{k.EmailCode("o1"), "voluntree:{org:o1}:emailcode"},
		{k.ConversationDelivery("p:u"), "voluntree:{conv:p:u}:delivery"},
		{k.ConversationAlias("p:psid"), "voluntree:{conv:p:psid}:alias"},
		{k.ChatSession("h"), "voluntree:chatsession:h"},
		{k.ChatHistory("webchat:wc_1"), "voluntree:{conv:webchat:wc_1}:chat"},
		{k.ChatChannel("webchat:wc_1"), "voluntree:chat:webchat:wc_1"},
		{k.ChatDedupe("webchat:wc_1", "webchat:wc_1:3"), "voluntree:{conv:webchat:wc_1}:chat:dedupe:webchat:wc_1:3"},
		{k.Effects(), "voluntree:{effects}"},
		{k.EffectsGroup(), "effects"},
		{k.EffectsDead(0), "voluntree:{effects}:dead"},
		{k.EffectsParked("111"), "voluntree:{effects}:parked:111"},
		{k.EffectDone("p:u:1"), "voluntree:effect:done:p:u:1"},
		{k.EffectEcho("p:u:1"), "voluntree:effect:echo:p:u:1"},
		{k.EffectAmbiguous("p:u:1"), "voluntree:effect:ambiguous:p:u:1"},
		{k.MailRate("h"), "voluntree:mailrate:h"},
		{k.MailQueue(), "voluntree:{mail}"},
		{k.MailGroup(), "mailer"},
		{k.MailOutbox(), "voluntree:{mail}:outbox"},
		{k.MailDead(), "voluntree:{mail}:dead"},
		{k.ModelVersion("v1"), "voluntree:{models}:version:v1"},
		{k.ModelChunk("v1", 3), "voluntree:{models}:version:v1:chunk:3"},
		{k.ModelTags(), "voluntree:{models}:tags"},
		{k.ModelUpload("up1"), "voluntree:{models}:upload:up1"},
		{k.ModelUploadChunk("up1", 3), "voluntree:{models}:upload:up1:chunk:3"},
		{k.ModelUploadReceived("up1"), "voluntree:{models}:upload:up1:received"},
		{k.ModelPromoted(), "voluntree:{models}:promoted"},
		{k.ModelHistory(), "voluntree:{models}:history"},
		{k.ModelChannel(), "voluntree:models:promoted"},
		{k.ModelNodes(), "voluntree:{models}:nodes"},
		{k.IngestFence(), "voluntree:{ingest}:fence"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("key %q, want %q", c.got, c.want)
		}
	}
}

func TestOrgOfEventsChannel(t *testing.T) {
	k := NewKeys("vt")
	for _, c := range []struct {
		channel, org string
		ok           bool
	}{
		{"vt:events:o1", "o1", true},
		{"vt:events:a:b", "a:b", true},
		{"vt:events:", "", false},
		{"other:events:o1", "", false},
	} {
		if org, ok := k.OrgOfEventsChannel(c.channel); org != c.org || ok != c.ok {
			t.Errorf("OrgOfEventsChannel(%q) = %q, %v; want %q, %v", c.channel, org, ok, c.org, c.ok)
		}
	}
}
