package httpapi

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"google.golang.org/protobuf/proto"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
)

// A signup's volunteers: the people who entered its conversation flow (Messenger or web chat),
// with their stage, email and slot; as JSON pages and as a CSV file.

// volunteerOf is the view of one person of a signup (the one the live feed's volunteer
// events carry).
func volunteerOf(p voluntree.SignupPerson) voluntree.Volunteer {
	v := voluntree.Volunteer{ConversationID: p.ConversationID, JoinedAt: p.JoinedAt}
	st := &grainpb.ConversationState{}
	if p.State != nil && proto.Unmarshal(p.State, st) == nil {
		v.SignupID, v.Name, v.Channel, v.Stage = st.SignupId, st.SenderName, st.Channel, st.Stage
		v.Email, v.EmailVerified, v.SlotID, v.Handoff = st.Email, st.EmailVerified, st.SlotId, st.Handoff
		v.Version = st.EffectSeq
		if st.UpdatedAtUnixNano != 0 {
			v.UpdatedAt = time.Unix(0, st.UpdatedAtUnixNano).UTC()
		}
	}
	return v
}

// ownSignup loads the signup of the path's :id and checks it is the caller's.
func (s *Server) ownSignup(c *fiber.Ctx) (voluntree.Signup, error) {
	id, err := pathID(c, "id", "signup")
	if err != nil {
		return voluntree.Signup{}, err
	}
	su, err := s.cfg.Store.Signup(c.UserContext(), id)
	if err != nil {
		return su, err
	}
	return su, s.ownedBy(c, "signup", su.OrgID)
}

// signupVolunteers answers GET /api/v1/signups/:id/volunteers[?slot=]: a page of volunteers,
// oldest first (a slot filter keeps that slot's).
func (s *Server) signupVolunteers(c *fiber.Ctx) error {
	limit, offset, err := pagination(c)
	if err != nil {
		return err
	}
	su, err := s.ownSignup(c)
	if err != nil {
		return err
	}
	slot := c.Query("slot")
	if slot != "" {
		if _, ok := su.Slot(slot); !ok {
			return voluntree.FieldErrorf("slot", "signup %s has no slot %.64q", su.ID, slot)
		}
	}
	if slot == "" {
		people, total, err := s.cfg.Store.SignupPeople(c.UserContext(), su.ID, offset, limit)
		if err != nil {
			return err
		}
		items := make([]voluntree.Volunteer, len(people))
		for i, p := range people {
			items[i] = volunteerOf(p)
		}
		return c.JSON(listOf(items, total, limit, offset))
	}
	all, err := s.allVolunteers(c.UserContext(), su.ID)
	if err != nil {
		return err
	}
	var items []voluntree.Volunteer
	for _, v := range all {
		if v.SlotID == slot {
			items = append(items, v)
		}
	}
	total := len(items)
	items = items[min(offset, total):min(offset+limit, total)]
	return c.JSON(listOf(items, total, limit, offset))
}

// maxExport bounds a CSV export (and a slot's filtered list).
const maxExport = 50000

// allVolunteers reads every volunteer of a signup (up to maxExport), a page of 1,000 at a time.
func (s *Server) allVolunteers(ctx context.Context, signupID string) ([]voluntree.Volunteer, error) {
	var out []voluntree.Volunteer
	for offset := 0; offset < maxExport; offset += 1000 {
		people, total, err := s.cfg.Store.SignupPeople(ctx, signupID, offset, 1000)
		if err != nil {
			return nil, err
		}
		for _, p := range people {
			out = append(out, volunteerOf(p))
		}
		if offset+1000 >= total {
			break
		}
	}
	return out, nil
}

// csvCell makes a cell safe to open in a spreadsheet: a value a spreadsheet would read as a
// formula (starting with = + - @, or a tab or carriage return) gets a leading apostrophe.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// exportVolunteers answers GET /api/v1/signups/:id/volunteers.csv: RFC 4180 (CRLF, quoted
// as needed), UTF-8, one row per volunteer with the slot's date and times.
func (s *Server) exportVolunteers(c *fiber.Ctx) error {
	su, err := s.ownSignup(c)
	if err != nil {
		return err
	}
	all, err := s.allVolunteers(c.UserContext(), su.ID)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8; header=present")
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="volunteers-%s.csv"`, su.ID))
	c.Set(fiber.HeaderCacheControl, "no-store")
	w := csv.NewWriter(c.Response().BodyWriter())
	w.UseCRLF = true
	_ = w.Write([]string{"name", "channel", "stage", "email", "email_verified", "slot", "slot_date", "slot_start", "slot_end", "joined_at"})
	for _, v := range all {
		var title, date, start, end string
		if sl, ok := su.Slot(v.SlotID); ok {
			title, date, start, end = cmp.Or(sl.Title, sl.ID), sl.Date, sl.Start, sl.End
		}
		verified := "no"
		if v.EmailVerified {
			verified = "yes"
		}
		row := []string{v.Name, v.Channel, v.Stage, v.Email, verified, title, date, start, end, v.JoinedAt.Format(time.RFC3339)}
		for i := range row {
			row[i] = csvCell(row[i])
		}
		_ = w.Write(row)
	}
	w.Flush()
	s.cfg.Logger.Info("volunteers exported", "action", "export", "org", principal(c).OrgID, "signup", su.ID, "rows", len(all))
	return w.Error()
}
