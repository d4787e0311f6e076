package retry

import (
	"context"
	"testing"
)

func TestBackoffDoublesToItsLimitAndResets(t *testing.T) {
	b := New()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Wait returns at once; only the pause sequence is under test
	var got []string
	for range 8 {
		got = append(got, b.d.String())
		b.Wait(ctx)
	}
	want := []string{"50ms", "100ms", "200ms", "400ms", "800ms", "1.6s", "2s", "2s"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pauses %v, want %v", got, want)
		}
	}
	b.Reset()
	if b.d != first {
		t.Errorf("after Reset %s, want %s", b.d, first)
	}
}
