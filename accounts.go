package voluntree

import (
	"strings"
	"time"
)

// Who runs an organization: people (users) who are its members with a role each. A person
// signs in (GitHub, Facebook Login, or a one-time link) and acts for one of their
// organizations at a time; scripts use the organization's API tokens instead.

// Role is what a member (or an API token) may do in an organization.
type Role string

// Roles, from the most to the least powerful.
const (
	// RoleOwner does everything an admin does, and manages members, invitations, tokens and
	// the organization itself.
	RoleOwner Role = "owner"
	// RoleAdmin runs the organization's signups, posts, pages and conversations.
	RoleAdmin Role = "admin"
	// RoleViewer reads everything an admin sees, and can neither change nor export anything.
	RoleViewer Role = "viewer"
)

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { return r == RoleOwner || r == RoleAdmin || r == RoleViewer }

// rank orders roles: viewer < admin < owner (0 for an invalid role).
func (r Role) rank() int {
	switch r {
	case RoleOwner:
		return 3
	case RoleAdmin:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// AtLeast reports whether r may do what min may.
func (r Role) AtLeast(min Role) bool { return r.rank() > 0 && r.rank() >= min.rank() }

// ParseRole reads a role; EINVALID names the field otherwise.
func ParseRole(field, s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", FieldErrorf(field, "%s must be owner, admin or viewer, got %.32q", field, s)
	}
	return r, nil
}

// User is a person who signs in. Identities link their accounts elsewhere to them.
type User struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Email       string    `json:"email,omitempty"`
	GitHubLogin string    `json:"github_login,omitempty"`
	GitHubID    int64     `json:"github_id,omitempty"`
	FacebookID  string    `json:"facebook_id,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// Member is a user's membership of an organization.
type Member struct {
	OrgID    string    `json:"org_id"`
	UserID   string    `json:"user_id"`
	Role     Role      `json:"role"`
	JoinedAt time.Time `json:"joined_at"`
	User     *User     `json:"user,omitempty"` // filled in lists
}

// Invitation asks someone, by email, to join an organization with a role. Its token is sent
// by email and never stored (its SHA-256 is its id).
type Invitation struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"org_id"`
	Email     string    `json:"email"`
	Role      Role      `json:"role"`
	InvitedBy string    `json:"invited_by"` // user id
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}
