package voluntree

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// What an administrator manages: organizations own Facebook pages, signups (events with
// date-time slots) and posts that advertise a signup on a page. Every record names its
// organization; the admin API checks it on every access.

// Organization is a nonprofit using Voluntree.
type Organization struct {
	ID              string     `json:"id"`
	Name            string     `json:"name"`
	Email           string     `json:"email,omitempty"` // verified before a page can be connected
	EmailVerifiedAt *time.Time `json:"email_verified_at,omitempty"`
	// GitHubOrg, when set, is the GitHub organization a person signing in with GitHub must
	// be a member of (checked at sign-in and again as the session goes on).
	GitHubOrg string    `json:"github_org,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Page is a Facebook page connected to an organization. AccessToken is the page access token
// the Graph API calls use; it never leaves the server.
type Page struct {
	ID             string    `json:"id"` // Facebook page id
	OrgID          string    `json:"org_id"`
	Name           string    `json:"name"`
	AccessToken    string    `json:"access_token,omitempty"`
	TokenExpiresAt time.Time `json:"token_expires_at,omitzero"` // zero: does not expire
	// SubscribedFields are the webhook fields the app is subscribed to on the page.
	SubscribedFields []string  `json:"subscribed_fields,omitempty"`
	ConnectedAt      time.Time `json:"connected_at"`
	// DisconnectedAt is set when Graph refused the page's token (code 190): messages wait
	// for the page to be connected again.
	DisconnectedAt *time.Time `json:"disconnected_at,omitempty"`
	Error          string     `json:"error,omitempty"`
}

// Slot is one date-time slot of a signup, in the signup's time zone.
type Slot struct {
	ID       string `json:"id"`
	Date     string `json:"date"`  // YYYY-MM-DD
	Start    string `json:"start"` // HH:MM
	End      string `json:"end"`   // HH:MM, after Start
	Title    string `json:"title,omitempty"`
	Required int    `json:"required"` // volunteers needed
	// Cancelled slots stay (their volunteers are told and freed) but are offered to no one.
	Cancelled bool `json:"cancelled,omitempty"`
}

// Signup is what volunteers sign up for: an event with slots. Facts is free text questions
// are answered from.
type Signup struct {
	ID          string `json:"id"`
	OrgID       string `json:"org_id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Facts       string `json:"facts,omitempty"`
	TimeZone    string `json:"time_zone"` // IANA name of the slots' zone
	Slots       []Slot `json:"slots"`
	Disabled    bool   `json:"disabled"`
	// PublicReply also answers an interested comment in public ("we've sent you a message"),
	// besides the private reply.
	PublicReply bool      `json:"public_reply"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// PostStatus is where a post is on its way to the page.
type PostStatus string

// Post statuses: draft → scheduled → publishing → published | failed. Cancel returns a
// scheduled post to draft; retry sends a failed one back to scheduled.
const (
	PostDraft      PostStatus = "draft"
	PostScheduled  PostStatus = "scheduled"
	PostPublishing PostStatus = "publishing"
	PostPublished  PostStatus = "published"
	PostFailed     PostStatus = "failed"
)

// Post advertises a signup on one page. FacebookPostID is set once published; Error holds the
// Graph API's message of a permanent failure.
type Post struct {
	ID             string     `json:"id"`
	OrgID          string     `json:"org_id"`
	SignupID       string     `json:"signup_id"`
	PageID         string     `json:"page_id"`
	Message        string     `json:"message"`
	AppendSummary  bool       `json:"append_summary"` // append each slot's date, time and "x of y filled"
	PhotoURL       string     `json:"photo_url,omitempty"`
	Status         PostStatus `json:"status"`
	PublishAt      *time.Time `json:"publish_at,omitempty"`
	FacebookPostID string     `json:"facebook_post_id,omitempty"`
	Error          string     `json:"error,omitempty"`
	ErrorCode      int        `json:"error_code,omitempty"`
	Attempts       int        `json:"attempts"`
	LastAttemptAt  *time.Time `json:"last_attempt_at,omitempty"`
	// PublishedText is the exact text of the last publish attempt; Unconfirmed says that attempt
	// may have created the Facebook post although it did not answer (5xx, timeout, crash): the
	// next attempt first looks for it on the page instead of publishing it twice.
	PublishedText string     `json:"published_text,omitempty"`
	Unconfirmed   bool       `json:"unconfirmed,omitempty"`
	PublishedAt   *time.Time `json:"published_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// Limits of admin records.
const (
	MaxTitleRunes       = 200
	MaxDescriptionRunes = 5000
	MaxFactsRunes       = 20000
	MaxSlots            = 200
	MaxRequired         = 100000
	MaxPostRunes        = 60000 // a page post's text limit is 63,206 characters
	MaxNameRunes        = 200
)

// NewID returns a random id with a readable prefix ("su_", "po_", "sl_", "org_").
func NewID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

var (
	datePattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	timePattern = regexp.MustCompile(`^([01]\d|2[0-3]):[0-5]\d$`)
	idPattern   = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)
)

// ValidID reports whether s can be a record id (letters, digits and _.:- only).
func ValidID(s string) bool { return idPattern.MatchString(s) }

func checkText(field, s string, required bool, max int) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return FieldErrorf(field, "%s is required", field)
	case !utf8.ValidString(s):
		return FieldErrorf(field, "%s is not valid UTF-8", field)
	case utf8.RuneCountInString(s) > max:
		return FieldErrorf(field, "%s: at most %d characters, got %d", field, max, utf8.RuneCountInString(s))
	}
	return nil
}

// Normalize trims the signup's texts, defaults its time zone to UTC and gives slots without an
// id a new one. Call it before Validate on input.
func (s *Signup) Normalize() {
	s.Title = strings.TrimSpace(s.Title)
	s.Description = strings.TrimSpace(s.Description)
	s.TimeZone = strings.TrimSpace(s.TimeZone)
	if s.TimeZone == "" {
		s.TimeZone = "UTC"
	}
	for i := range s.Slots {
		s.Slots[i].Title = strings.TrimSpace(s.Slots[i].Title)
		if s.Slots[i].ID == "" {
			s.Slots[i].ID = NewID("sl_")
		}
	}
}

// Validate checks a signup; errors name the field at fault (e.g. "slots[2].end").
func (s *Signup) Validate() error {
	if err := checkText("title", s.Title, true, MaxTitleRunes); err != nil {
		return err
	}
	if err := checkText("description", s.Description, false, MaxDescriptionRunes); err != nil {
		return err
	}
	if err := checkText("facts", s.Facts, false, MaxFactsRunes); err != nil {
		return err
	}
	loc, err := time.LoadLocation(s.TimeZone)
	if err != nil || s.TimeZone == "Local" {
		return FieldErrorf("time_zone", "time_zone: unknown time zone %q (use an IANA name such as Europe/Paris)", s.TimeZone)
	}
	if len(s.Slots) > MaxSlots {
		return FieldErrorf("slots", "slots: at most %d, got %d", MaxSlots, len(s.Slots))
	}
	seen := make(map[string]bool, len(s.Slots))
	for i, sl := range s.Slots {
		f := fmt.Sprintf("slots[%d]", i)
		if !ValidID(sl.ID) {
			return FieldErrorf(f+".id", "%s.id: letters, digits and _.:- only, at most 64", f)
		}
		if seen[sl.ID] {
			return FieldErrorf(f+".id", "%s.id: %q is used by another slot", f, sl.ID)
		}
		seen[sl.ID] = true
		if _, err := time.Parse("2006-01-02", sl.Date); err != nil || !datePattern.MatchString(sl.Date) {
			return FieldErrorf(f+".date", "%s.date: want a date as YYYY-MM-DD, got %q", f, sl.Date)
		}
		if _, err := sl.StartTime(loc); err != nil {
			return FieldErrorf(f+".start", "%s.start: want HH:MM, got %q", f, sl.Start)
		}
		if !timePattern.MatchString(sl.End) {
			return FieldErrorf(f+".end", "%s.end: want HH:MM, got %q", f, sl.End)
		}
		if sl.End <= sl.Start {
			return FieldErrorf(f+".end", "%s.end: must be after start (%s), got %s", f, sl.Start, sl.End)
		}
		if err := checkText(f+".title", sl.Title, false, MaxTitleRunes); err != nil {
			return err
		}
		if sl.Required < 1 || sl.Required > MaxRequired {
			return FieldErrorf(f+".required", "%s.required: between 1 and %d, got %d", f, MaxRequired, sl.Required)
		}
	}
	return nil
}

// StartTime is the slot's start as an instant in loc.
func (sl Slot) StartTime(loc *time.Location) (time.Time, error) {
	if !timePattern.MatchString(sl.Start) {
		return time.Time{}, fmt.Errorf("slot %s: start %q: want HH:MM", sl.ID, sl.Start)
	}
	return time.ParseInLocation("2006-01-02 15:04", sl.Date+" "+sl.Start, loc)
}

// Slot returns the signup's slot with id.
func (s *Signup) Slot(id string) (Slot, bool) {
	for _, sl := range s.Slots {
		if sl.ID == id {
			return sl, true
		}
	}
	return Slot{}, false
}

// Validate checks a post's own fields (the signup and page are checked against the store).
func (p *Post) Validate() error {
	if p.SignupID == "" {
		return FieldErrorf("signup_id", "signup_id is required")
	}
	if p.PageID == "" {
		return FieldErrorf("page_id", "page_id is required")
	}
	if err := checkText("message", p.Message, true, MaxPostRunes); err != nil {
		return err
	}
	if p.PhotoURL != "" {
		u, err := url.Parse(p.PhotoURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return FieldErrorf("photo_url", "photo_url: want an http(s) URL, got %q", p.PhotoURL)
		}
	}
	return nil
}

// SlotFill is how many volunteers a slot has.
type SlotFill struct {
	Slot   Slot
	Filled int
}

// PostText is what is published: the message and, when asked, one line per slot with its
// date, time and "x of y filled".
func PostText(p *Post, s *Signup, fills []SlotFill) string {
	if !p.AppendSummary || len(fills) == 0 {
		return p.Message
	}
	var b strings.Builder
	b.WriteString(p.Message)
	b.WriteString("\n")
	for _, f := range fills {
		b.WriteString("\n")
		date := f.Slot.Date
		if d, err := time.Parse("2006-01-02", f.Slot.Date); err == nil {
			date = d.Format("Mon 2 Jan 2006")
		}
		fmt.Fprintf(&b, "• %s, %s–%s", date, f.Slot.Start, f.Slot.End)
		if f.Slot.Title != "" {
			fmt.Fprintf(&b, " (%s)", f.Slot.Title)
		}
		fmt.Fprintf(&b, ": %d of %d filled", f.Filled, f.Slot.Required)
	}
	return b.String()
}

// Stats summarizes an organization's activity over [From, To).
type Stats struct {
	From          time.Time          `json:"from"`
	To            time.Time          `json:"to"`
	ActiveSignups int                `json:"active_signups"`  // not disabled, with a slot in the range
	Posts         int                `json:"posts"`           // published in the range
	Interests     int                `json:"interests"`       // recorded in the range
	Volunteers    int                `json:"volunteers"`      // distinct people behind those interests
	NewVolunteers int                `json:"new_volunteers"`  // ... whose first interest in the organization is in the range
	PostsByStatus map[PostStatus]int `json:"posts_by_status"` // every post of the organization, now
}
