package redisstore_test

import (
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// FuzzMessageEncoding: a message that validates can always be stored, and reads back equal;
// one that cannot be stored is refused with EINVALID (the webhook rejects it alone); and no
// stored bytes, however damaged, make the reader panic.
func FuzzMessageEncoding(f *testing.F) {
	f.Add("111_2_3", "comment", "111", "111_2", "u1", "Ada", "Count me in!", "", int64(1732262400), int64(0))
	f.Add("m.1", "message", "111", "", "u1", "", "yes", "SLOT:sl_1:x", int64(1732262400), int64(999))
	f.Add("m.2", "postback", "111", "", "u1", "", "Yes", "CONFIRM", int64(253402300800), int64(0)) // year 10000
	f.Add("m.3", "message", "111", "", "u1", "", "\xff", "", int64(-62135596801), int64(0))        // before year 1
	f.Fuzz(func(t *testing.T, id, kind, page, post, sender, name, text, payload string, created, nanos int64) {
		m := voluntree.Message{ID: id, Kind: voluntree.MessageKind(kind), Source: voluntree.SourceWebhook,
			PageID: page, PostID: post, SenderID: sender, SenderName: name, Text: text, Payload: payload,
			CreatedAt: time.Unix(created, nanos%1e9).UTC(), ReceivedAt: time.Unix(1732262400, 0).UTC()}
		valid := m.Validate() == nil
		b, err := redisstore.EncodeMessage(m)
		if err != nil {
			if valid {
				t.Fatalf("a valid message cannot be stored: %v", err)
			}
			if voluntree.ErrorCode(err) != voluntree.EINVALID {
				t.Fatalf("encoding error %v is not EINVALID", err)
			}
			return
		}
		got, err := redisstore.DecodeMessage(b)
		if valid {
			if err != nil {
				t.Fatalf("a valid message does not read back: %v", err)
			}
			if got.ID != m.ID || got.Kind != m.Kind || got.Text != m.Text || got.Payload != m.Payload ||
				got.SenderName != m.SenderName || !got.CreatedAt.Equal(m.CreatedAt) || !got.ReceivedAt.Equal(m.ReceivedAt) {
				t.Fatalf("read back %+v, stored %+v", got, m)
			}
		}
		// Damaged bytes: an error, never a panic.
		for _, cut := range []int{len(b) / 2, len(b) - 1} {
			if cut > 0 {
				_, _ = redisstore.DecodeMessage(b[:cut])
			}
		}
	})
}
