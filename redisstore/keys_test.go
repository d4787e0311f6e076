package redisstore

import "testing"

// TestKeyNames pins every key: a change here breaks data already in Redis.
func TestKeyNames(t *testing.T) {
	k := NewKeys("")
	cases := []struct{ got, want string }{
		{k.Ingest(), "voluntree:{ingest}"},
		{k.IngestGroup(), "pipeline"},
		{k.IngestSeen("123_456"), "voluntree:{ingest}:seen:123_456"},
		{k.IngestErrors(), "voluntree:{ingest}:errors"},
		{k.DeadLetter(), "voluntree:{ingest}:dead"},
		{k.Events(), "voluntree:{events}"},
		{k.EventsChannel(), "voluntree:events"},
		{k.Interest("1_2", "m.1"), "voluntree:{post:1_2}:interest:m.1"},
		{k.PostInterests("1_2"), "voluntree:{post:1_2}:interests"},
		{k.PostIntents("1_2"), "voluntree:{post:1_2}:intents"},
		{k.PostClassified("1_2"), "voluntree:{post:1_2}:classified"},
		{k.Conversation("p:s"), "voluntree:{conv:p:s}"},
		{NewKeys("t1").Ingest(), "t1:{ingest}"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("key %q, want %q", c.got, c.want)
		}
	}
}
