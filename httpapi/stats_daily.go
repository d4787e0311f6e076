package httpapi

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
)

// The stats page's data: a daily series of messages (by intent) and bookings over a date
// range, and the funnel from message to booked slot.

// MaxStatsDays bounds the daily series.
const MaxStatsDays = 366

type dayStats struct {
	Date     string                     `json:"date"`
	Messages int64                      `json:"messages"`
	Intents  map[voluntree.Intent]int64 `json:"intents"`
	Bookings int                        `json:"bookings"`
}

// funnel counts, over the organization's signups, how far people went.
type funnel struct {
	Messages      int64 `json:"messages"`       // in the range
	Interested    int64 `json:"interested"`     // in the range
	Volunteers    int   `json:"volunteers"`     // people in a signup's conversation (every one, now)
	Answered      int   `json:"answered"`       // ... who answered the invitation
	EmailVerified int   `json:"email_verified"` // ... whose email is verified
	Booked        int   `json:"booked"`         // ... booked on a slot
	Waitlisted    int   `json:"waitlisted"`
	Declined      int   `json:"declined"` // declined or cancelled
}

// statsDays lists the UTC days of [from, to).
func statsDays(from, to time.Time) []string {
	var days []string
	for d := from.UTC().Truncate(24 * time.Hour); d.Before(to) && len(days) < MaxStatsDays; d = d.Add(24 * time.Hour) {
		days = append(days, d.Format(time.DateOnly))
	}
	return days
}

// dailyStats answers GET /api/v1/stats/daily?from=&to= (the same range as /stats).
func (s *Server) dailyStats(c *fiber.Ctx) error {
	from, to, err := statsRange(c.Query("from"), c.Query("to"), s.now())
	if err != nil {
		return err
	}
	ctx, orgID := c.UserContext(), principal(c).OrgID
	days := statsDays(from, to)
	counts, err := s.cfg.Store.OrgDaily(ctx, orgID, days)
	if err != nil {
		return err
	}
	signups, err := s.cfg.Store.Signups(ctx, orgID, 0, 1<<30)
	if err != nil {
		return err
	}
	ids := make([]string, len(signups.Items))
	for i, su := range signups.Items {
		ids[i] = su.ID
	}
	bookings, err := s.cfg.Store.BookingsByDay(ctx, ids)
	if err != nil {
		return err
	}
	out := make([]dayStats, len(days))
	var f funnel
	for i, d := range days {
		out[i] = dayStats{Date: d, Intents: counts[i], Bookings: bookings[d]}
		for _, n := range counts[i] {
			out[i].Messages += n
		}
		f.Messages += out[i].Messages
		f.Interested += counts[i][voluntree.IntentInterested]
	}
	for _, id := range ids {
		vs, err := s.allVolunteers(ctx, id)
		if err != nil {
			return err
		}
		for _, v := range vs {
			countFunnel(&f, v)
		}
	}
	return c.JSON(fiber.Map{"from": from, "to": to, "days": out, "funnel": f})
}

func countFunnel(f *funnel, v voluntree.Volunteer) {
	f.Volunteers++
	switch v.Stage {
	case "", "new", "interested", "invited":
	default:
		f.Answered++
	}
	if v.EmailVerified {
		f.EmailVerified++
	}
	switch v.Stage {
	case "booked":
		f.Booked++
	case "waitlisted":
		f.Waitlisted++
	case "declined", "cancelled":
		f.Declined++
	}
}
