package redisstore_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// TestBookLastPlacesAtOnce: 50 people book the last 3 places of a slot at the same moment:
// exactly 3 are booked, 47 waitlisted in distinct positions 1..47, and the slot never holds
// more than its capacity.
func TestBookLastPlacesAtOnce(t *testing.T) {
	st, _ := newStore(t, redisstore.Config{})
	ctx := testCtx(t)
	const capacity = 10
	for i := range capacity - 3 { // 7 of 10 places are taken already
		if r, err := st.Book(ctx, "su1", "sl1", capacity, fmt.Sprintf("early-%d", i), redisstore.BookingRecord{}, 0); err != nil || r.Status != redisstore.Booked {
			t.Fatalf("early booking %d: %+v %v", i, r, err)
		}
	}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		booked    []string
		positions []int
	)
	start := make(chan struct{})
	for i := range 50 {
		wg.Go(func() {
			<-start
			person := fmt.Sprintf("p-%d", i)
			r, err := st.Book(ctx, "su1", "sl1", capacity, person, redisstore.BookingRecord{Name: person, Channel: "messenger"}, 0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("%s: %v", person, err)
			case r.Status == redisstore.Booked:
				booked = append(booked, person)
			case r.Status == redisstore.Waitlisted:
				positions = append(positions, r.Position)
			default:
				t.Errorf("%s: %+v", person, r)
			}
		})
	}
	close(start)
	wg.Wait()
	slices.Sort(positions)
	want := make([]int, 47)
	for i := range want {
		want[i] = i + 1
	}
	if len(booked) != 3 || !slices.Equal(positions, want) {
		t.Fatalf("booked %v, waitlist positions %v; want 3 booked and positions 1..47", booked, positions)
	}
	counts, err := st.SlotBookingCounts(ctx, &voluntree.Signup{ID: "su1", Slots: []voluntree.Slot{{ID: "sl1"}}})
	if err != nil || counts["sl1"] != (redisstore.SlotCounts{Booked: 10, Waiting: 47}) {
		t.Fatalf("counts %+v %v", counts, err)
	}
	// Booking again is idempotent, for the booked and the waiting alike.
	if r, err := st.Book(ctx, "su1", "sl1", capacity, booked[0], redisstore.BookingRecord{}, 0); err != nil || r.Status != redisstore.Booked {
		t.Fatalf("booking again: %+v %v", r, err)
	}
	rec, ok, err := st.Booking(ctx, "su1", booked[0])
	if err != nil || !ok || rec.SlotID != "sl1" || rec.Name != booked[0] || rec.Channel != "messenger" {
		t.Fatalf("booking record: %+v %v %v", rec, ok, err)
	}
}

// TestCancelOffersThePlaceToTheFirstWaiting: a cancellation holds the freed place for the
// first person waiting; nobody else can take it; they book it; an expired offer passes to
// the next person.
func TestCancelOffersThePlaceToTheFirstWaiting(t *testing.T) {
	st, _ := newStore(t, redisstore.Config{})
	ctx := testCtx(t)
	book := func(person string, hold time.Duration) redisstore.BookResult {
		t.Helper()
		r, err := st.Book(ctx, "su2", "a", 2, person, redisstore.BookingRecord{}, hold)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	book("ann", 0)
	book("bob", 0)
	if r := book("cat", 0); r.Status != redisstore.Waitlisted || r.Position != 1 {
		t.Fatalf("cat: %+v", r)
	}
	if r := book("dan", 0); r.Status != redisstore.Waitlisted || r.Position != 2 {
		t.Fatalf("dan: %+v", r)
	}
	removed, offered, err := st.CancelBooking(ctx, "su2", "a", 2, "ann", 0)
	if err != nil || !removed || !slices.Equal(offered, []string{"cat"}) {
		t.Fatalf("cancel: removed %v, offered %v, %v", removed, offered, err)
	}
	if _, ok, _ := st.Booking(ctx, "su2", "ann"); ok {
		t.Fatal("ann's booking record is still there")
	}
	// The place is cat's: dan (waiting) and eve (new) cannot take it.
	if r := book("dan", 0); r.Status != redisstore.Waitlisted || r.Position != 1 {
		t.Fatalf("dan after the offer: %+v", r)
	}
	if r := book("eve", 0); r.Status != redisstore.Waitlisted || r.Position != 2 {
		t.Fatalf("eve: %+v", r)
	}
	if r := book("cat", 0); r.Status != redisstore.Booked {
		t.Fatalf("cat takes the offer: %+v", r)
	}
	// Cancelling twice changes nothing.
	if removed, offered, err := st.CancelBooking(ctx, "su2", "a", 2, "ann", 0); err != nil || removed || len(offered) != 0 {
		t.Fatalf("second cancel: %v %v %v", removed, offered, err)
	}
	// bob cancels; dan gets an offer of 1 ms, which expires: the next change offers it to eve.
	if _, offered, err := st.CancelBooking(ctx, "su2", "a", 2, "bob", time.Millisecond); err != nil || !slices.Equal(offered, []string{"dan"}) {
		t.Fatalf("bob cancels: %v %v", offered, err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		r := book("fay", 0)
		if slices.Equal(r.Offered, []string{"eve"}) {
			if r.Status != redisstore.Waitlisted {
				t.Fatalf("fay: %+v", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dan's expired offer never passed on: %+v", r)
		}
	}
	counts, _ := st.SlotBookingCounts(ctx, &voluntree.Signup{ID: "su2", Slots: []voluntree.Slot{{ID: "a"}}})
	if counts["a"] != (redisstore.SlotCounts{Booked: 1, Held: 1, Waiting: 1}) {
		t.Fatalf("counts %+v, want cat booked, eve held, fay waiting", counts["a"])
	}
}
