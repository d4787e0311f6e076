package voluntree

import (
	"testing"
	"time"
)

func TestMessageValidate(t *testing.T) {
	ok := Message{ID: "111_2_3", Kind: KindComment, PageID: "111", PostID: "111_2", SenderID: "u1",
		Text: "Count me in", CreatedAt: time.Unix(1732262400, 0)}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a valid comment: %v", err)
	}
	cases := map[string]func(*Message){
		"id not ASCII":        func(m *Message) { m.ID = "\xa2" },
		"id with a NUL":       func(m *Message) { m.ID = "1\x002" },
		"id with a space":     func(m *Message) { m.ID = "1 2" },
		"id with braces":      func(m *Message) { m.ID = "{1}" },
		"parent not ASCII":    func(m *Message) { m.ParentID = "é" },
		"post id too long":    func(m *Message) { m.PostID = string(make([]byte, MaxIDLength+1)) },
		"no post on comment":  func(m *Message) { m.PostID = "" },
		"unknown kind":        func(m *Message) { m.Kind = "reaction" },
		"text not UTF-8":      func(m *Message) { m.Text = "\xff" },
		"name not UTF-8":      func(m *Message) { m.SenderName = "\xff" },
		"payload too long":    func(m *Message) { m.Payload = string(make([]byte, MaxPayloadBytes+1)) },
		"created past 9999":   func(m *Message) { m.CreatedAt = time.Unix(253402300800, 0) },
		"created before 1970": func(m *Message) { m.CreatedAt = time.Unix(-1, 0) },
	}
	for name, change := range cases {
		m := ok
		change(&m)
		if err := m.Validate(); ErrorCode(err) != EINVALID {
			t.Errorf("%s: Validate = %v, want EINVALID", name, err)
		}
	}
	// Messenger messages have no post; the zero time is allowed (unknown).
	m := Message{ID: "m_AbC-_$.1", Kind: KindMessage, PageID: "111", SenderID: "u1", Text: "hi"}
	if err := m.Validate(); err != nil {
		t.Fatalf("a Messenger message without post or time: %v", err)
	}
}
