package httpapi

import (
	"context"
	"slices"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
)

// Signups of the admin API: CRUD with slots, and the slots' fills.

// signupInput is the editable part of a signup. Absent fields are nil: PATCH leaves them as
// they are, POST and PUT make them empty.
type signupInput struct {
	Title       *string           `json:"title"`
	Description *string           `json:"description"`
	Facts       *string           `json:"facts"`
	TimeZone    *string           `json:"time_zone"`
	Slots       *[]voluntree.Slot `json:"slots"`
	Disabled    *bool             `json:"disabled"`
	PublicReply *bool             `json:"public_reply"`
}

// applyTo sets su's editable fields from in (all of them when replace), then normalizes and
// validates su.
func (in *signupInput) applyTo(su *voluntree.Signup, replace bool) error {
	if replace {
		su.Title, su.Description, su.Facts, su.TimeZone, su.Slots, su.Disabled = "", "", "", "", nil, false
		su.PublicReply = false
	}
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&su.Title, in.Title)
	set(&su.Description, in.Description)
	set(&su.Facts, in.Facts)
	set(&su.TimeZone, in.TimeZone)
	if in.Slots != nil {
		su.Slots = slices.Clone(*in.Slots) // Normalize writes ids: keep the input as sent
	}
	if in.Disabled != nil {
		su.Disabled = *in.Disabled
	}
	if in.PublicReply != nil {
		su.PublicReply = *in.PublicReply
	}
	if su.Slots == nil {
		su.Slots = []voluntree.Slot{}
	}
	su.Normalize()
	return su.Validate()
}

type slotFillView struct {
	SlotID   string `json:"slot_id"`
	Filled   int    `json:"filled"`
	Required int    `json:"required"`
}

// signupView is one signup with how full its slots are.
type signupView struct {
	voluntree.Signup
	Fills []slotFillView `json:"fills"`
}

func newSignupView(su voluntree.Signup, fills []voluntree.SlotFill) signupView {
	v := signupView{Signup: su, Fills: make([]slotFillView, 0, len(su.Slots))}
	filled := make(map[string]int, len(fills))
	for _, f := range fills {
		filled[f.Slot.ID] = f.Filled
	}
	for _, sl := range su.Slots {
		v.Fills = append(v.Fills, slotFillView{SlotID: sl.ID, Filled: filled[sl.ID], Required: sl.Required})
	}
	return v
}

// signupWithFills answers with the signup and its fills.
func (s *Server) signupWithFills(c *fiber.Ctx, su voluntree.Signup) error {
	fills, err := s.cfg.Store.SlotFills(c.UserContext(), &su)
	if err != nil {
		return err
	}
	return c.JSON(newSignupView(su, fills))
}

func (s *Server) listSignups(c *fiber.Ctx) error {
	limit, offset, err := pagination(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	pg, err := s.cfg.Store.Signups(ctx, principal(c).OrgID, offset, limit)
	if err != nil {
		return err
	}
	fills, people, err := s.cfg.Store.SignupsOverview(ctx, pg.Items)
	if err != nil {
		return err
	}
	items := make([]signupListItem, len(pg.Items))
	for i, su := range pg.Items {
		items[i] = signupListItem{signupView: newSignupView(su, fills[i]), Volunteers: people[i]}
	}
	return c.JSON(listOf(items, pg.Total, limit, offset))
}

// signupListItem is a signup in the list: with its fills and its number of volunteers.
type signupListItem struct {
	signupView
	Volunteers int64 `json:"volunteers"`
}

func (s *Server) createSignup(c *fiber.Ctx) error {
	var in signupInput
	if err := decodeJSON(c.Body(), &in); err != nil {
		return err
	}
	now := s.now()
	su := voluntree.Signup{ID: voluntree.NewID("su_"), OrgID: principal(c).OrgID, CreatedAt: now, UpdatedAt: now}
	if err := in.applyTo(&su, true); err != nil {
		return err
	}
	if err := s.cfg.Store.CreateSignup(c.UserContext(), su); err != nil {
		return err
	}
	s.cfg.Logger.Info("signup created", "action", "admin_signup", "org", su.OrgID, "signup", su.ID)
	c.Location("/api/v1/signups/" + su.ID)
	return c.Status(fiber.StatusCreated).JSON(newSignupView(su, nil))
}

func (s *Server) getSignup(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "signup")
	if err != nil {
		return err
	}
	su, err := s.cfg.Store.Signup(c.UserContext(), id)
	if err != nil {
		return err
	}
	if err := s.ownedBy(c, "signup", su.OrgID); err != nil {
		return err
	}
	return s.signupWithFills(c, su)
}

func (s *Server) replaceSignup(c *fiber.Ctx) error { return s.updateSignup(c, true) }
func (s *Server) patchSignup(c *fiber.Ctx) error   { return s.updateSignup(c, false) }

// updateSignup handles PUT (replace: every editable field) and PATCH (only those present).
// Slots keep the ids they are sent with, so their volunteers stay attached; a slot with
// volunteers cannot be removed.
func (s *Server) updateSignup(c *fiber.Ctx, replace bool) error {
	id, err := pathID(c, "id", "signup")
	if err != nil {
		return err
	}
	var in signupInput
	if err := decodeJSON(c.Body(), &in); err != nil {
		return err
	}
	ctx := c.UserContext()
	su, err := s.cfg.Store.UpdateSignupWithEffects(ctx, id, func(su *voluntree.Signup) error {
		if err := s.ownedBy(c, "signup", su.OrgID); err != nil {
			return err
		}
		old := *su
		old.Slots = slices.Clone(su.Slots)
		if err := in.applyTo(su, replace); err != nil {
			return err
		}
		if err := s.checkRemovedSlots(ctx, &old, su); err != nil {
			return err
		}
		su.UpdatedAt = s.now()
		return nil
	}, s.cfg.SlotChanges) // booked volunteers are told of a moved or cancelled slot
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("signup updated", "action", "admin_signup", "org", su.OrgID, "signup", su.ID, "disabled", su.Disabled)
	return s.signupWithFills(c, su)
}

// checkRemovedSlots refuses an update that drops a slot someone signed up for.
func (s *Server) checkRemovedSlots(ctx context.Context, old, updated *voluntree.Signup) error {
	gone := voluntree.Signup{ID: old.ID}
	for _, sl := range old.Slots {
		if _, ok := updated.Slot(sl.ID); !ok {
			gone.Slots = append(gone.Slots, sl)
		}
	}
	if len(gone.Slots) == 0 {
		return nil
	}
	counts, err := s.cfg.Store.SlotBookingCounts(ctx, &gone)
	if err != nil {
		return err
	}
	for _, sl := range gone.Slots {
		if c := counts[sl.ID]; c.Booked+c.Held+c.Waiting > 0 {
			return voluntree.Errorf(voluntree.ECONFLICT,
				"slot %s (%s %s–%s) has %d volunteer(s) booked and %d waiting: it cannot be removed; cancel it instead (\"cancelled\": true), which tells them",
				sl.ID, sl.Date, sl.Start, sl.End, c.Booked, c.Held+c.Waiting)
		}
	}
	return nil
}

func (s *Server) deleteSignup(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "signup")
	if err != nil {
		return err
	}
	err = s.cfg.Store.DeleteSignup(c.UserContext(), id, func(su *voluntree.Signup) error {
		return s.ownedBy(c, "signup", su.OrgID)
	})
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("signup deleted", "action", "admin_signup", "org", principal(c).OrgID, "signup", id)
	return c.SendStatus(fiber.StatusNoContent)
}
