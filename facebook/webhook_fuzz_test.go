package facebook

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
)

// fuzzBodies are real webhook shapes: a comment, a Messenger text, a quick reply, a postback,
// an echo, many entries, and the hostile cases this parser was hardened against.
var fuzzBodies = []string{
	`{"object":"page","entry":[{"id":"111","time":1732262400,"changes":[{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"111_2_3","post_id":"111_2","parent_id":"111_2","from":{"id":"u1","name":"Ada"},"message":"Count me in!","created_time":1732262400}}]}]}`,
	`{"object":"page","entry":[{"id":"111","time":1732262400000,"messaging":[{"sender":{"id":"u1"},"recipient":{"id":"111"},"timestamp":1732262400000,"message":{"mid":"m.1","text":"I can help on Saturday"}}]}]}`,
	`{"object":"page","entry":[{"id":"111","messaging":[{"sender":{"id":"u1"},"recipient":{"id":"111"},"timestamp":1,"message":{"mid":"m.2","text":"Morning","quick_reply":{"payload":"SLOT:sl_1:n0nce"}}}]}]}`,
	`{"object":"page","entry":[{"id":"111","messaging":[{"sender":{"id":"u1"},"recipient":{"id":"111"},"timestamp":2,"postback":{"mid":"m.3","title":"Yes","payload":"CONFIRM"}}]}]}`,
	`{"object":"page","entry":[{"id":"111","messaging":[{"sender":{"id":"111"},"recipient":{"id":"u1"},"timestamp":3,"message":{"mid":"m.4","text":"echo","is_echo":true}}]}]}`,
	`{"object":"page","entry":[{"id":"1","changes":[{"field":"feed","value":{"item":"reaction","verb":"add"}}]},{"id":"2","changes":[{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"2_1_1","post_id":"2_1","from":{"id":"u"},"message":"x"}}]}]}`,
	`{"object":"page","entry":[{"id":"111","changes":[{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"111_2_9","post_id":"111_2","from":{"id":"u1"},"message":"far","created_time":253402300800}}]}]}`,
	`{"object":"page","entry":[{"id":"111","changes":[{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"111_2_9","post_id":"111_2","from":{"id":"u1"},"message":"typed","created_time":"x"}}]},7]}`,
	`{"object":"page","entry":[{"id":"111","messaging":[{"sender":{"id":"u"},"timestamp":9223372036854775807,"message":{"mid":"m.x","text":"max"}}]}]}`,
	`{"object":"user","entry":[]}`,
	`{"object":"page","entry":{}}`,
	`[]`, `null`, `{`, ``,
}

// FuzzParseEvents: any body, signed or not, parses without panicking into messages that are
// valid and storable, or into refusals of single events that each carry their raw JSON; only
// the whole body's faults are errors, and those are EINVALID (a 400, never a 5xx). Parsing is
// deterministic, and the one-pass decoding agrees with the event-by-event one.
func FuzzParseEvents(f *testing.F) {
	for _, b := range fuzzBodies {
		f.Add([]byte(b))
	}
	received := time.Unix(1732262400, 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, e := range Echoes(body) {
			if e.Metadata == "" || len(e.Metadata) > MaxMetadataBytes {
				t.Fatalf("echo with metadata of %d bytes", len(e.Metadata))
			}
		}
		msgs, rejected, err := ParseEvents(body, received)
		if err != nil {
			if voluntree.ErrorCode(err) != voluntree.EINVALID || msgs != nil || rejected != nil {
				t.Fatalf("error %v (code %s) with %d messages", err, voluntree.ErrorCode(err), len(msgs))
			}
			return
		}
		for _, m := range msgs {
			if err := m.Validate(); err != nil {
				t.Fatalf("an invalid message was kept: %v", err)
			}
			if _, err := json.Marshal(m); err != nil {
				t.Fatalf("a kept message cannot be stored: %v", err)
			}
			if !m.ReceivedAt.Equal(received) || m.Source != voluntree.SourceWebhook {
				t.Fatalf("message %+v: received or source not set", m)
			}
		}
		for _, r := range rejected {
			if len(r.Raw) == 0 || !json.Valid(r.Raw) || (r.Reason != RejectMalformed && r.Reason != RejectInvalid) ||
				voluntree.ErrorCode(r.Err) != voluntree.EINVALID {
				t.Fatalf("rejection %+v", r)
			}
		}
		again, rejAgain, err := ParseEvents(body, received)
		if err != nil || !reflect.DeepEqual(again, msgs) || len(rejAgain) != len(rejected) {
			t.Fatalf("parsing twice differs: %v", err)
		}
		slow, slowRejected, err := parseEventByEvent(body, received)
		if err != nil {
			t.Fatalf("the event-by-event parse refused a body the one-pass parse took: %v", err)
		}
		if !reflect.DeepEqual(slow, msgs) || len(slowRejected) != len(rejected) {
			t.Fatalf("one-pass and event-by-event parses differ: %d/%d messages, %d/%d rejected",
				len(msgs), len(slow), len(rejected), len(slowRejected))
		}
	})
}

// FuzzVerifySignature: any header is either the body's signature or refused (401 for none,
// 403 otherwise), never a panic; the real signature always passes.
func FuzzVerifySignature(f *testing.F) {
	secret := []byte("fuzz-secret")
	f.Add([]byte(`{"object":"page"}`), Sign(secret, []byte(`{"object":"page"}`)))
	f.Add([]byte("x"), "sha256=")
	f.Add([]byte("x"), "sha256=zz")
	f.Add([]byte("x"), "")
	f.Add([]byte("x"), "sha1=abcd")
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		err := VerifySignature(secret, body, header)
		switch {
		case header == "" && !errors.Is(err, ErrNoSignature):
			t.Fatalf("no header: %v", err)
		case header == Sign(secret, body) && err != nil:
			t.Fatalf("the right signature was refused: %v", err)
		case err != nil && !errors.Is(err, ErrNoSignature) && !errors.Is(err, ErrBadSignature):
			t.Fatalf("unexpected error %v", err)
		}
		if err := VerifySignature(secret, body, Sign(secret, body)); err != nil {
			t.Fatalf("Sign and VerifySignature disagree: %v", err)
		}
	})
}
