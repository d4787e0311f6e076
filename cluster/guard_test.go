package cluster

import (
	"testing"
	"time"
)

// TestGuardReportsALeftOutNode walks the guard through a cluster's life: starting alone is not
// an exclusion, losing peers that are really gone is not either, but seeing a minority while a
// majority of the peers answer, for the hold time, is.
func TestGuardReportsALeftOutNode(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	g := &guardState{peers: 3, hold: 5 * time.Second}
	steps := []struct {
		members, answering, sec int
		want                    bool
		what                    string
	}{
		{1, 3, 0, false, "starting: alone while the others come up"},
		{1, 3, 10, false, "still starting: it never saw a majority"},
		{3, 0, 11, false, "the cluster formed"},
		{2, 2, 12, false, "a peer died: a majority remains"},
		{1, 1, 13, false, "two peers died: the others are gone, go on alone"},
		{1, 1, 30, false, "still gone"},
		{1, 3, 31, false, "a partition healed and the others are a cluster without it: the exclusion begins"},
		{1, 3, 35, false, "4 s: not yet"},
		{1, 3, 36, true, "5 s: left out"},
	}
	for _, s := range steps {
		if got := g.observe(s.members, s.answering, at(s.sec)); got != s.want {
			t.Fatalf("%s: observe(%d members, %d answering) = %v", s.what, s.members, s.answering, got)
		}
	}
	// A dip that heals before the hold time is not reported.
	g = &guardState{peers: 3, hold: 5 * time.Second}
	g.observe(3, 3, at(0))
	if g.observe(1, 3, at(1)) || g.observe(3, 3, at(3)) || g.observe(1, 3, at(7)) {
		t.Fatal("a short dip was reported")
	}
	// One node alone, or no peers: never.
	one := &guardState{peers: 1, hold: time.Second}
	if one.observe(0, 3, at(0)) || one.observe(0, 3, at(100)) {
		t.Fatal("a one-node cluster was reported left out")
	}
}
