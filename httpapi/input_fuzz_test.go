package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/actors"
	"github.com/voluntree/voluntree/redisstore"
)

// is4xx reports whether err maps to a client error of the API's status table.
func is4xx(err error) bool {
	st := statusOf[voluntree.ErrorCode(err)]
	return st >= 400 && st < 500
}

// FuzzClassifyBody: any body is texts the model may take (1–256 of at most 5,000 characters)
// or a 400, never a panic.
func FuzzClassifyBody(f *testing.F) {
	for _, b := range []string{`{"texts":["count me in","where?"]}`, `{"texts":[]}`, `{"texts":null}`, `{"texts":"x"}`,
		`{"texts":[1]}`, `{}`, `[]`, `{"texts":["\ud800"]}`, `{"texts":["a"],"texts":["b"]}`, ``} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		texts, err := parseClassifyBody(body)
		if err != nil {
			if !is4xx(err) || voluntree.ErrorCode(err) != voluntree.EINVALID {
				t.Fatalf("error %v is not a 400", err)
			}
			return
		}
		if err := voluntree.ValidateTexts(texts); err != nil || len(texts) == 0 {
			t.Fatalf("accepted %d texts that do not validate: %v", len(texts), err)
		}
	})
}

// FuzzFeedQuery: any post, since, tail, intent and ticket of /ws/signups is a subscription the hub
// accepts or a 4xx, never a panic.
func FuzzFeedQuery(f *testing.F) {
	f.Add("111_2", "1732262400000-0", "", "question,donate", "wst_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	f.Add("", "", "100", "all", "")
	f.Add("", "0-0", "-1", ",", "x")
	f.Add("", "99999999999999999999-1", "1001", "interested,interested", "wst_")
	f.Add("{}", "1-", "9999999999999999999999", "QUESTION", "wst_\x00")
	f.Fuzz(func(t *testing.T, post, since, tail, intent, ticket string) {
		opts, err := parseFeedQuery(post, since, tail, intent)
		if err != nil {
			if !is4xx(err) {
				t.Fatalf("error %v is not a 4xx", err)
			}
		} else {
			opts.Org = "org"
			if err := actors.ValidateSubscribe(opts); err != nil {
				t.Fatalf("accepted options the hub refuses: %v", err)
			}
			if opts.Tail < 0 || opts.Tail > actors.MaxTail {
				t.Fatalf("tail %d accepted", opts.Tail)
			}
			if len(opts.Intents) > len(voluntree.Intents()) || (intent != "" && len(opts.Intents) == 0) {
				t.Fatalf("intent %q gave intents %q", intent, opts.Intents)
			}
		}
		if redisstore.ValidTicketFormat(ticket) && (len(ticket) != 47 || ticket[:4] != "wst_") {
			t.Fatalf("ticket %q passes the format check", ticket)
		}
	})
}

// FuzzAdminBodies: any JSON body of the admin API's write routes (signup create, replace and
// patch, post, email, code, demo comment) decodes and validates into a record or a 400 that
// may name a field, never a panic or a 5xx.
func FuzzAdminBodies(f *testing.F) {
	seeds := []struct {
		kind uint8
		body string
	}{
		{0, `{"title":"Cleanup","time_zone":"Europe/Paris","slots":[{"date":"2030-05-04","start":"09:00","end":"12:00","required":5}]}`},
		{0, `{"title":"x","time_zone":"Mars/Olympus","slots":[{"date":"2030-02-30","start":"25:00","end":"09:00","required":-1}]}`},
		{1, `{"disabled":true}`},
		{1, `{"slots":null,"facts":7}`},
		{2, `{"signup_id":"su_1","page_id":"111","message":"Join us","publish_at":"2030-01-01T09:00:00Z"}`},
		{2, `{"signup_id":"","page_id":"../x","publish_at":"yesterday","photo_url":"javascript:alert(1)"}`},
		{3, `{"email":"admin@example.org"}`},
		{4, `{"code":"123456"}`},
		{5, `{"name":"Ada","text":"Count me in"}`},
		{5, `{"name":"","text":"` + "\u0000" + `"}`},
		{0, `{"title":"a","unknown":1}`},
		{2, `{"signup_id":"su_1"} {"extra":1}`},
	}
	for _, s := range seeds {
		f.Add(s.kind, []byte(s.body))
	}
	srv := &Server{cfg: Config{Now: func() time.Time { return time.Unix(1732262400, 0) }}}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		var err error
		switch kind % 6 {
		case 0, 1: // POST/PUT (replace) and PATCH of a signup
			var in signupInput
			if err = decodeJSON(body, &in); err == nil {
				su := voluntree.Signup{ID: "su_1", OrgID: "o"}
				err = in.applyTo(&su, kind%6 == 0)
			}
		case 2:
			var in postInput
			if err = decodeJSON(body, &in); err == nil {
				p := voluntree.Post{ID: "po_1", OrgID: "o", SignupID: in.SignupID, PageID: in.PageID,
					Message: in.Message, PhotoURL: in.PhotoURL}
				if err = p.Validate(); err == nil {
					_, err = srv.parsePublishAt(in.PublishAt)
				}
			}
		case 3:
			var in struct {
				Email string `json:"email"`
			}
			if err = decodeOptionalJSON(body, &in); err == nil {
				_, err = voluntree.NormalizeEmail(in.Email)
			}
		case 4:
			var in struct {
				Code string `json:"code"`
			}
			err = decodeJSON(body, &in)
		case 5:
			_, err = parseDemoComment(body)
		}
		if err != nil && !is4xx(err) {
			t.Fatalf("kind %d: error %v maps to %d, want a 4xx", kind%6, err, statusOf[voluntree.ErrorCode(err)])
		}
	})
}

// FuzzChatInput: the web chat's outside input — a session request, a client frame, the since
// parameter — is taken or refused with a 4xx or an error frame, never a panic; a frame taken
// always makes a message the ingest stream accepts.
func FuzzChatInput(f *testing.F) {
	f.Add(uint8(0), []byte(`{"signup_id":"su_1","name":"Grace Hopper"}`))
	f.Add(uint8(0), []byte(`{"signup_id":"../x","name":""}`))
	f.Add(uint8(1), []byte(`{"text":"yes"}`))
	f.Add(uint8(1), []byte(`{"payload":"SLOT:am:ab12cd34","text":"Sat 4 May 09:00","id":"c-1"}`))
	f.Add(uint8(1), []byte(`{"id":"a b","text":"x"}`))
	f.Add(uint8(1), []byte(`[1,2]`))
	f.Add(uint8(2), []byte(`1732262400000-0`))
	f.Add(uint8(2), []byte(`99999999999999999999-1`))
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		switch kind % 5 {
		case 0:
			req, err := parseChatSession(body)
			if err != nil && !is4xx(err) {
				t.Fatalf("session: error %v is not a 4xx", err)
			}
			if err == nil && (!voluntree.ValidID(req.SignupID) || req.Name == "") {
				t.Fatalf("session request taken: %+v", req)
			}
		case 1:
			fr, msg := parseChatFrame(body)
			if msg != "" {
				return
			}
			m := voluntree.Message{ID: "wc.wc_1.c" + fr.ID, Kind: voluntree.KindMessage, Source: voluntree.SourceWebChat,
				PageID: voluntree.WebChatPage, SenderID: "wc_1", Text: fr.Text, Payload: fr.Payload, SignupID: "su_1"}
			if err := m.Validate(); err != nil {
				t.Fatalf("a frame taken makes an invalid message: %v (%q)", err, body)
			}
		case 2:
			if streamIDPattern.MatchString(string(body)) && !strings.Contains(string(body), "-") {
				t.Fatalf("since %q passes", body)
			}
		}
	})
}

// FuzzAccountBodies: any body of the people and token routes (a token's label, role and
// lifetime; a member's role; the organization a session switches to; an invitation) is a value within its
// bounds or a 400, never a panic; and no token is ever granted more power than its maker.
func FuzzAccountBodies(f *testing.F) {
	for _, s := range []struct {
		kind   uint8
		caller string
		body   string
	}{
		{0, "owner", `{"label":"ci","role":"viewer","expires_in":3600}`},
		{0, "admin", `{"role":"owner"}`},
		{0, "viewer", `{"expires_in":-1,"label":"a\nb"}`},
		{0, "owner", `{"expires_in":1e30}`},
		{1, "owner", `{"role":"ADMIN "}`},
		{1, "owner", `{"role":["x"]}`},
		{2, "viewer", `{"org_id":"org_b"}`},
		{2, "viewer", `{"org_id":"../x"}`},
		{3, "owner", `{"email":"cy@example.org","role":"admin"}`},
		{3, "admin", `{"email":"Cy <cy@example.org>","role":"owner"}`},
		{4, "owner", `{"name":"Acme","github_org":"acme-gh"}`},
		{4, "owner", `{"github_org":"-x","name":" "}`},
	} {
		f.Add(s.kind, s.caller, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, kind uint8, caller string, body []byte) {
		var err error
		switch kind % 5 {
		case 0:
			var opts redisstore.TokenOptions
			opts, err = parseTokenBody(body, voluntree.Role(caller))
			if err == nil {
				if !opts.Role.Valid() || !voluntree.Role(caller).AtLeast(opts.Role) || opts.TTL < 0 || opts.TTL > MaxTokenTTL || len(opts.Label) > 100 {
					t.Fatalf("accepted %+v for a %q", opts, caller)
				}
			}
		case 1:
			var r voluntree.Role
			if r, err = parseRoleBody(body); err == nil && !r.Valid() {
				t.Fatalf("accepted role %q", r)
			}
		case 2:
			var org string
			if org, err = parseOrgBody(body); err == nil && !voluntree.ValidID(org) {
				t.Fatalf("accepted org %q", org)
			}
		case 3:
			var email string
			var r voluntree.Role
			if email, r, err = parseInvitationBody(body, voluntree.Role(caller)); err == nil {
				if _, e := voluntree.NormalizeEmail(email); e != nil || !r.Valid() || !voluntree.Role(caller).AtLeast(r) {
					t.Fatalf("accepted invitation %q %q for a %q", email, r, caller)
				}
			}
		case 4:
			var name, gate *string
			if name, gate, err = parseOrgPatch(body); err == nil {
				if name != nil && (*name == "" || len(*name) > 200) || gate != nil && len(*gate) > 39 {
					t.Fatalf("accepted name %v, gate %v", name, gate)
				}
			}
		}
		if err != nil && (!is4xx(err) || voluntree.ErrorCode(err) != voluntree.EINVALID) {
			t.Fatalf("error %v is not a 400", err)
		}
	})
}

// FuzzCSVCell: whatever a volunteer calls themselves, an exported cell never starts as a
// spreadsheet formula, and keeps the whole value.
func FuzzCSVCell(f *testing.F) {
	for _, s := range []string{"Ada", "=1+1", "+33", "-x", "@a", "\t=x", "\r=x", "'=x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := csvCell(s)
		if out != "" && strings.ContainsRune("=+-@\t\r", rune(out[0])) {
			t.Fatalf("cell %q starts a formula", out)
		}
		if out != s && out != "'"+s {
			t.Fatalf("cell %q from %q", out, s)
		}
	})
}

// FuzzModelUpload: a model upload's declaration and its path (id, chunk number) are taken or
// refused with a 4xx, never a panic; a declaration taken is one the store accepts.
func FuzzModelUpload(f *testing.F) {
	f.Add([]byte(`{"tag":"v2","size":4201594,"sha256":"`+strings.Repeat("ab", 32)+`","note":"retrained"}`), "mu_0123456789abcdef0123", "3")
	f.Add([]byte(`{"tag":"../x","size":-1,"sha256":"AB"}`), "mu_zz", "-1")
	f.Add([]byte(`{"tag":"v","size":99999999999,"sha256":""}`), "", "01")
	f.Add([]byte(`[]`), "mu_0123456789abcdef0123", "99999999999999999999")
	f.Fuzz(func(t *testing.T, body []byte, id, n string) {
		u, err := parseUpload(body)
		if err != nil && !is4xx(err) {
			t.Fatalf("declaration: error %v maps to %d, want a 4xx", err, statusOf[voluntree.ErrorCode(err)])
		}
		if err == nil && (u.Size < 1 || u.Size > redisstore.MaxModelSize || redisstore.ValidModelTag(u.Tag) != nil) {
			t.Fatalf("declaration %q taken as %+v", body, u)
		}
		for _, chunk := range []bool{false, true} {
			_, i, err := uploadRef(id, n, chunk)
			if err != nil && !is4xx(err) {
				t.Fatalf("path %q %q: error %v maps to %d, want a 4xx", id, n, err, statusOf[voluntree.ErrorCode(err)])
			}
			if err == nil && chunk && (i < 0 || i > redisstore.MaxModelSize/redisstore.ModelChunkSize) {
				t.Fatalf("chunk %q taken as %d", n, i)
			}
		}
	})
}
