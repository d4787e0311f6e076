package voluntree

import "time"

// BookingRecord is what a signup's bookings keep of a person's booking.
type BookingRecord struct {
	SlotID   string    `json:"slot_id"`
	Name     string    `json:"name,omitempty"`
	Channel  string    `json:"channel,omitempty"` // messenger, webchat
	PostKey  string    `json:"post_key,omitempty"`
	Interest string    `json:"interest_id,omitempty"`
	At       time.Time `json:"at"`
}

// BookingStatus is the outcome of BookingStore.Book.
type BookingStatus string

// Outcomes of BookingStore.Book.
const (
	Booked     BookingStatus = "booked"
	Waitlisted BookingStatus = "waitlisted"
)

// BookResult is what BookingStore.Book did.
type BookResult struct {
	Status   BookingStatus
	Position int      // on the waitlist, from 1
	Offered  []string // people offered a freed place by the slot's sweep
}

// SlotCounts is a slot's booked, held and waiting people.
type SlotCounts struct {
	Booked, Held, Waiting int
}
