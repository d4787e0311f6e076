package httpapi_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
)

// TestVolunteersAndCSV: a signup's volunteers as JSON (all, and one slot's) and as a CSV file:
// RFC 4180 with CRLF, UTF-8, quoted cells, formula-looking cells defused; viewers cannot export.
func TestVolunteersAndCSV(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	ctx := context.Background()
	owner := e.org(t, "org_a")
	e.page(t, "org_a", "1001")
	su := e.createSignup(t, owner, "Cleanup")
	slot := su.Slots[0]
	people := []struct {
		name, email string
		slot        bool
	}{
		{"Zoë Ångström", "zoe@example.org", true},
		{`=HYPERLINK("http://evil.example","click")`, "eve@example.org", true},
		{"+33 6 12", "", false},
		{"@sum(A1)", "", false},
		{"-2+3", "", false},
		{"Line\nbreak, \"quoted\"", "lb@example.org", false},
	}
	for i, p := range people {
		st := &grainpb.ConversationState{OrgId: "org_a", SignupId: su.ID, SenderName: p.name, Channel: "messenger",
			Stage: "email", Email: p.email, EmailVerified: p.email != ""}
		if p.slot {
			st.SlotId, st.Stage = slot.ID, "booked"
		}
		b, _ := proto.Marshal(st)
		if _, err := e.store.SaveConversationEffects(ctx, fmt.Sprintf("1001:p%d", i), su.ID, 0, b, nil, "", st.Stage); err != nil {
			t.Fatal(err)
		}
	}
	var list struct {
		Items []struct {
			Name          string `json:"name"`
			Stage         string `json:"stage"`
			SlotID        string `json:"slot_id"`
			EmailVerified bool   `json:"email_verified"`
		} `json:"items"`
		Total int `json:"total"`
	}
	e.must(t, 200, owner, "GET", "/api/v1/signups/"+su.ID+"/volunteers?limit=4", nil, &list)
	if list.Total != 6 || len(list.Items) != 4 || list.Items[0].Name != "Zoë Ångström" || !list.Items[0].EmailVerified {
		t.Fatalf("volunteers %+v", list)
	}
	e.must(t, 200, owner, "GET", "/api/v1/signups/"+su.ID+"/volunteers?slot="+slot.ID, nil, &list)
	if list.Total != 2 || list.Items[1].SlotID != slot.ID || list.Items[1].Stage != "booked" {
		t.Fatalf("slot's volunteers %+v", list)
	}
	e.mustFail(t, 400, owner, "GET", "/api/v1/signups/"+su.ID+"/volunteers?slot=sl_nope", nil)

	status, raw, hdr := request(t, "GET", e.url("/api/v1/signups/"+su.ID+"/volunteers.csv"), nil,
		map[string]string{"Authorization": "Bearer " + owner})
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv; charset=utf-8") ||
		!strings.Contains(hdr.Get("Content-Disposition"), "attachment") {
		t.Fatalf("CSV: %d %q %q", status, hdr.Get("Content-Type"), hdr.Get("Content-Disposition"))
	}
	if !bytes.HasSuffix(raw, []byte("\r\n")) || bytes.Count(raw, []byte("\r\n")) < 7 {
		t.Fatalf("CSV lines do not end in CRLF: %q", raw)
	}
	rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v\n%s", err, raw)
	}
	if len(rows) != 7 || strings.Join(rows[0], ",") != "name,channel,stage,email,email_verified,slot,slot_date,slot_start,slot_end,joined_at" {
		t.Fatalf("CSV rows %q", rows)
	}
	want := []string{"Zoë Ångström", `'=HYPERLINK("http://evil.example","click")`, "'+33 6 12", "'@sum(A1)", "'-2+3", "Line\nbreak, \"quoted\""}
	for i, w := range want {
		if rows[i+1][0] != w {
			t.Errorf("row %d name %q, want %q", i+1, rows[i+1][0], w)
		}
	}
	if r := rows[1]; r[4] != "yes" || r[5] != slot.ID && r[5] != slot.Title || r[6] != slot.Date || r[7] != slot.Start {
		t.Errorf("booked row %q", r)
	}
	// A viewer reads the list and cannot export.
	_, viewer, _ := e.member(t, "org_a", voluntree.RoleViewer)
	if status, _ := e.call(t, viewer, "GET", "/api/v1/signups/"+su.ID+"/volunteers", nil); status != 200 {
		t.Fatalf("viewer's list: %d", status)
	}
	if status, _ := e.call(t, viewer, "GET", "/api/v1/signups/"+su.ID+"/volunteers.csv", nil); status != 403 {
		t.Fatalf("viewer's export: %d, want 403", status)
	}
}
